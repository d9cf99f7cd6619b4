use super::*;
use crate::limits::{ADDED_FIELDS, ADDED_VALUE, CERT_DATA, CERT_FIELDS};
use proptest::prelude::*;

fn fields<'a>(list: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    list.iter().map(|(n, v)| (*n, v.as_bytes()))
}

/// A client head at Apache's default limits, every field the edge adds at its longest, and a
/// certificate chain filling [`CERT_DATA`]: the worker reads it.
#[test]
fn a_full_head_with_exported_certificates_is_read() {
    let limits = HeadLimits::default();
    let value = "v".repeat(limits.field_size - 8);
    let client: Vec<(String, String)> =
        (0..limits.fields).map(|i| (format!("x-{i:04}"), value.clone())).collect();
    let added = "s".repeat(ADDED_VALUE);
    let cert = "A".repeat(CERT_DATA / CERT_FIELDS);
    let mut all: Vec<(&str, &[u8])> = client.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
    for _ in 0..ADDED_FIELDS {
        all.push(("x-weir-ssl-client-s-dn", added.as_bytes()));
    }
    for name in [crate::SSL_SERVER_CERT, crate::SSL_CLIENT_CERT, crate::SSL_CLIENT_CERT_CHAIN] {
        all.push((name, cert.as_bytes()));
    }
    let target = format!("/{}", "a".repeat(limits.request_line - 20));
    let bytes = write("GET", &target, all.iter().copied(), &limits).expect("written");
    let (head, _) = parse(&bytes, &limits).expect("read").expect("whole");
    assert_eq!(head.fields.len(), limits.fields + ADDED_FIELDS + CERT_FIELDS);
}

#[test]
fn a_head_is_written_and_read_back() {
    let limits = HeadLimits::default();
    let bytes = write("GET", "/a?b=c", fields(&[("host", "example.com"), ("x-a", "1 2")]), &limits).unwrap();
    assert_eq!(bytes, b"GET /a?b=c HTTP/1.1\r\nhost: example.com\r\nx-a: 1 2\r\n\r\n");
    let (head, used) = parse(&bytes, &limits).unwrap().unwrap();
    assert_eq!(used, bytes.len());
    assert_eq!((head.method.as_str(), head.target.as_str(), head.minor_version), ("GET", "/a?b=c", 1));
    assert_eq!(head.fields, vec![("host".into(), b"example.com".to_vec()), ("x-a".into(), b"1 2".to_vec())]);
    assert_eq!(parse(&bytes[..bytes.len() - 1], &limits), Ok(None), "a partial head waits for more");
}

#[test]
fn nothing_that_would_read_as_more_is_written() {
    let limits = HeadLimits::default();
    let write_one = |name: &str, value: &[u8]| write("GET", "/", [(name, value)], &limits);
    assert_eq!(write_one("x-a", b"1\r\nx-injected: 1"), Err(RequestHeadError::BadValue("x-a".into())));
    assert_eq!(write_one("x-a", b"1\nx"), Err(RequestHeadError::BadValue("x-a".into())));
    assert_eq!(write_one("x-a", b"1\0"), Err(RequestHeadError::BadValue("x-a".into())));
    assert_eq!(write_one("x a", b"1"), Err(RequestHeadError::BadName("x a".into())));
    assert_eq!(write_one("", b"1"), Err(RequestHeadError::BadName(String::new())));
    assert_eq!(write("GE T", "/", [], &limits), Err(RequestHeadError::BadMethod));
    assert_eq!(write("GET", "/a b", [], &limits), Err(RequestHeadError::BadTarget));
    assert_eq!(write("GET", "/a\r\nx: 1", [], &limits), Err(RequestHeadError::BadTarget));
    assert_eq!(write("GET", "", [], &limits), Err(RequestHeadError::BadTarget));
}

#[test]
fn both_sides_refuse_beyond_the_limits_and_nothing_within() {
    let limits = HeadLimits { request_line: 40, field_size: 20, fields: 2 };
    let longest_target = format!("/{}", "a".repeat(limits.max_line() - "GET / HTTP/1.1".len()));
    assert!(write("GET", &longest_target, [], &limits).is_ok());
    let too_long = format!("{longest_target}a");
    assert_eq!(write("GET", &too_long, [], &limits), Err(RequestHeadError::LineTooLong));
    assert_eq!(RequestHeadError::LineTooLong.status(), 414);

    let many: Vec<(String, String)> =
        (0..limits.max_fields() + 1).map(|i| (format!("x-{i}"), "v".into())).collect();
    let all = many.iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    assert_eq!(write("GET", "/", all, &limits), Err(RequestHeadError::TooManyFields));
    let fit = many[..limits.max_fields()].iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    let bytes = write("GET", "/", fit, &limits).unwrap();
    assert_eq!(parse(&bytes, &limits).unwrap().unwrap().0.fields.len(), limits.max_fields());
    // The reader counts the same way.
    let mut over = bytes[..bytes.len() - 2].to_vec();
    over.extend_from_slice(b"x-over: 1\r\n\r\n");
    assert_eq!(parse(&over, &limits), Err(RequestHeadError::TooManyFields));
    assert_eq!(RequestHeadError::TooManyFields.status(), 431);

    let huge = "v".repeat(limits.max_head());
    assert_eq!(write("GET", "/", [("x-a", huge.as_bytes())], &limits), Err(RequestHeadError::TooLarge));
    let unended = format!("GET / HTTP/1.1\r\nx-a: {huge}");
    assert_eq!(parse(unended.as_bytes(), &limits), Err(RequestHeadError::TooLarge));
}

#[test]
fn the_reader_refuses_what_is_no_head() {
    let limits = HeadLimits::default();
    for bad in [&b"GET / HTTP/1.1\r\nbad name: x\r\n\r\n"[..], b"GET\r\n\r\n", b"\x00\x01\r\n\r\n"] {
        assert!(matches!(parse(bad, &limits), Err(RequestHeadError::Malformed(_))), "{bad:?}");
    }
}

#[test]
fn head_end_finds_a_blank_line_split_across_reads() {
    let bytes = b"GET / HTTP/1.1\r\nA: b\r\n\r\nbody";
    assert_eq!(head_end(bytes, 0), Some(24));
    assert_eq!(head_end(bytes, 22), Some(24), "the line end began before the new bytes");
    assert_eq!(head_end(&bytes[..23], 0), None);
    assert_eq!(head_end(bytes, 100), None);
}

fn token() -> impl Strategy<Value = String> {
    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}"
}

/// Values as the edge may hold them: any bytes a field value may have, obs-text included.
fn value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff];
    proptest::collection::vec(byte, 0..40)
}

fn target() -> impl Strategy<Value = String> {
    "/[!-~é]{0,30}"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// What the edge writes the worker reads back as it was: the method, the target, every
    /// field in order (values without the whitespace at their ends, which HTTP does not carry).
    #[test]
    fn every_head_round_trips(
        method in token(),
        target in target(),
        list in proptest::collection::vec((token(), value()), 0..20),
    ) {
        let limits = HeadLimits::default();
        let bytes = write(&method, &target, list.iter().map(|(n, v)| (n.as_str(), v.as_slice())), &limits)
            .expect("a head of valid parts is written");
        let (head, used) = parse(&bytes, &limits).expect("what was written is read").expect("whole");
        prop_assert_eq!(used, bytes.len());
        prop_assert_eq!(head.method, method);
        prop_assert_eq!(head.target, target);
        let expected: Vec<(String, Vec<u8>)> =
            list.iter().map(|(n, v)| (n.clone(), crate::fields::trimmed(v).to_vec())).collect();
        prop_assert_eq!(head.fields, expected);
    }

    /// Whatever bytes a value holds, the written head reads as exactly the fields written, or
    /// is not written at all: nothing smuggles a field in.
    #[test]
    fn no_value_adds_a_field(raw in proptest::collection::vec(any::<u8>(), 0..30), name in token()) {
        let limits = HeadLimits::default();
        if let Ok(bytes) = write("GET", "/", [(name.as_str(), raw.as_slice()), ("x-last", &b"1"[..])], &limits) {
            let (head, _) = parse(&bytes, &limits).expect("read").expect("whole");
            prop_assert_eq!(head.fields.len(), 2);
            prop_assert_eq!(&head.fields[1], &("x-last".to_string(), b"1".to_vec()));
        }
    }

}

proptest! {
    // Each case writes and reads a head of a hundred kilobytes or more.
    #![proptest_config(ProptestConfig::with_cases(100))]

    /// Every head a client may send within its limits, re-written with every field the edge
    /// adds at its longest, goes to the worker and is read there.
    #[test]
    fn what_the_edge_admits_the_worker_reads(
        request_line in 16usize..300,
        field_size in 8usize..300,
        fields in 1usize..40,
        target_fill in 0.0f64..=1.0,
        field_fill in 0.0f64..=1.0,
    ) {
        let limits = HeadLimits { request_line, field_size, fields };
        // A target that filled the client's line, every byte of it sent raw and now escaped.
        let target_len = ((request_line - "GET  HTTP/1.1".len().min(request_line)) as f64 * target_fill) as usize;
        let target = format!("/{}", "%22".repeat(target_len.saturating_sub(1)));
        let value_len = ((field_size.saturating_sub(8)) as f64 * field_fill) as usize;
        let client: Vec<(String, String)> =
            (0..fields).map(|i| (format!("x-{i:04}"), "v".repeat(value_len))).collect();
        let host = "h".repeat(field_size.max(request_line));
        let subject = "s".repeat(ADDED_VALUE);
        let mut all: Vec<(&str, &[u8])> = client.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        for _ in 0..2 {
            all.push(("x-forwarded-host", host.as_bytes()));
        }
        for _ in 2..ADDED_FIELDS {
            all.push(("x-weir-ssl-client-s-dn", subject.as_bytes()));
        }
        let bytes = write("GET", &target, all.iter().copied(), &limits).expect("written");
        let (head, _) = parse(&bytes, &limits).expect("read").expect("whole");
        prop_assert_eq!(head.fields.len(), fields + ADDED_FIELDS);
    }
}
