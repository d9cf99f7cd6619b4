use super::*;
use proptest::prelude::*;

const OWN: Own<'static> = Own { pid: 4242, keep_alive: false, local_redirect: None, refusal: false };

fn pairs<'a>(list: &'a [(&'a str, &'a str)]) -> impl Iterator<Item = (&'a str, &'a [u8])> {
    list.iter().map(|(n, v)| (*n, v.as_bytes()))
}

/// A head and its fields as `parse` hands them over.
type Read = Option<(ResponseHead, Vec<(String, Vec<u8>)>)>;

/// The fields `parse` hands over, collected.
fn read(bytes: &[u8]) -> Result<Read, ResponseHeadError> {
    let mut fields = Vec::new();
    let head = parse(bytes, |name, value| {
        fields.push((name.to_string(), value.to_vec()));
        Ok(())
    })?;
    Ok(head.map(|head| (head, fields)))
}

#[test]
fn a_head_is_written_with_the_workers_own_fields_last() {
    let bytes = write(201, "Created", pairs(&[("Content-Length", "3"), ("X-A", "b")]), &OWN).unwrap();
    assert_eq!(
        String::from_utf8(bytes.clone()).unwrap(),
        "HTTP/1.1 201 Created\r\nX-A: b\r\nx-weir-worker-pid: 4242\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    );
    let (head, fields) = read(&bytes).unwrap().unwrap();
    assert_eq!(head, ResponseHead { status: 201, len: bytes.len() });
    assert_eq!(fields.len(), 4);
    let kept = Own { keep_alive: true, local_redirect: Some("/next?a=1"), ..OWN };
    let bytes = write(200, "OK", [], &kept).unwrap();
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.contains("x-weir-local-redirect: /next?a=1\r\n"), "{text}");
    assert!(text.ends_with("Connection: keep-alive\r\n\r\n"), "{text}");
}

#[test]
fn only_the_worker_marks_its_own_refusal() {
    let refused = Own { refusal: true, ..OWN };
    let text = String::from_utf8(write(404, "Not Found", [], &refused).unwrap()).unwrap();
    assert!(text.contains("\r\nx-weir-refusal: 1\r\n"), "{text}");
    // Code's copy of the mark is dropped like any internal field.
    let forged = write(404, "Not Found", pairs(&[("X-Weir-Refusal", "1")]), &OWN).unwrap();
    assert!(!String::from_utf8(forged).unwrap().to_ascii_lowercase().contains("refusal"));
}

#[test]
fn code_cannot_write_framing_internal_or_broken_fields() {
    let forged = [
        ("X-Weir-Local-Redirect", "/secret"),
        ("x-weir-worker-pid", "1"),
        ("Transfer-Encoding", "identity"),
        ("Connection", "keep-alive"),
    ];
    let bytes = write(200, "OK", pairs(&forged), &OWN).unwrap();
    let (_, fields) = read(&bytes).unwrap().unwrap();
    let names: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["x-weir-worker-pid", "Transfer-Encoding", "Connection"]);
    assert_eq!(fields[0].1, b"4242");

    let bad_value = write(200, "OK", pairs(&[("X-A", "a\r\nX-Injected: 1")]), &OWN);
    assert!(matches!(bad_value, Err(ResponseHeadError::BadValue { ref name, .. }) if name == "X-A"));
    for name in ["Bad Name", "", "X-A:\r\nX-B", "x(y)"] {
        assert_eq!(write(200, "OK", [(name, &b"1"[..])], &OWN), Err(ResponseHeadError::BadName(name.into())));
    }
    assert_eq!(write(200, "OK\r\nX-B: 1", [], &OWN), Err(ResponseHeadError::BadReason));
    let remote = Own { local_redirect: Some("//elsewhere/x"), ..OWN };
    assert!(matches!(write(200, "OK", [], &remote), Err(ResponseHeadError::BadValue { .. })));
}

#[test]
fn only_final_statuses_are_written() {
    for status in [100, 101, 103, 199] {
        assert_eq!(write(status, "X", [], &OWN), Err(ResponseHeadError::Informational(status)));
    }
    for status in [0, 99, 600, 999, 1000, u16::MAX] {
        assert_eq!(write(status, "X", [], &OWN), Err(ResponseHeadError::BadStatus(status)));
    }
    assert!(write(200, "", [], &OWN).is_ok() && write(599, "", [], &OWN).is_ok());
}

#[test]
fn the_limits_are_the_readers() {
    let many: Vec<(String, String)> =
        (0..MAX_RESPONSE_FIELDS).map(|i| (format!("x-{i}"), "v".into())).collect();
    let fit = many[..MAX_RESPONSE_FIELDS - 3].iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    let bytes = write(200, "OK", fit, &OWN).unwrap();
    assert_eq!(read(&bytes).unwrap().unwrap().1.len(), MAX_RESPONSE_FIELDS);
    let over = many[..MAX_RESPONSE_FIELDS - 2].iter().map(|(n, v)| (n.as_str(), v.as_bytes()));
    assert_eq!(write(200, "OK", over, &OWN), Err(ResponseHeadError::TooManyFields));
    let long = "v".repeat(MAX_RESPONSE_HEAD);
    assert_eq!(write(200, "OK", [("x-a", long.as_bytes())], &OWN), Err(ResponseHeadError::TooLarge));
    let mut unended = b"HTTP/1.1 200 OK\r\nx-a: ".to_vec();
    unended.extend_from_slice(long.as_bytes());
    assert_eq!(read(&unended), Err(ResponseHeadError::TooLarge));
}

#[test]
fn the_reader_takes_continue_and_chunked_finals_only() {
    assert_eq!(read(CONTINUE).unwrap().unwrap().0, ResponseHead { status: 100, len: CONTINUE.len() });
    assert_eq!(read(&CONTINUE[..10]), Ok(None), "a partial head waits for more");
    let cases: [(&[u8], ResponseHeadError); 6] = [
        (
            b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\nTransfer-Encoding: chunked\r\n\r\n",
            ResponseHeadError::Informational(103),
        ),
        (b"HTTP/1.1 100 Continue\r\nX-A: 1\r\n\r\n", ResponseHeadError::Informational(100)),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", ResponseHeadError::Informational(101)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc", ResponseHeadError::NotChunked),
        (b"HTTP/1.1 099 Odd\r\nTransfer-Encoding: chunked\r\n\r\n", ResponseHeadError::BadStatus(99)),
        (b"garbage\r\n\r\n", ResponseHeadError::Malformed("invalid HTTP version".into())),
    ];
    for (bytes, error) in cases {
        assert_eq!(read(bytes), Err(error), "{:?}", String::from_utf8_lossy(bytes));
    }
    assert!(read(b"HTTP/1.1 2000 OK\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
    assert!(read(b"HTTP/1.1 200 OK\r\nBad Name: x\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
}

fn token() -> impl Strategy<Value = String> {
    "[!#$%&'*+.^_`|~0-9A-Za-z-]{1,12}"
}

fn value() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![Just(b'\t'), 0x20u8..0x7f, 0x80u8..=0xff];
    proptest::collection::vec(byte, 0..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// What a worker writes the edge reads back: the status and code's fields in order (values
    /// without the whitespace at their ends), then the worker's own.
    #[test]
    fn every_head_round_trips(
        status in 200u16..600,
        reason in "[ -~\t]{0,20}",
        list in proptest::collection::vec((token(), value()), 0..30),
        keep_alive in any::<bool>(),
    ) {
        let own = Own { pid: 7, keep_alive, local_redirect: None, refusal: false };
        let bytes = write(status, &reason, list.iter().map(|(n, v)| (n.as_str(), v.as_slice())), &own)
            .expect("a head of valid parts is written");
        let (head, fields) = read(&bytes).expect("what was written is read").expect("whole");
        prop_assert_eq!(head, ResponseHead { status, len: bytes.len() });
        let expected: Vec<(String, Vec<u8>)> = list
            .iter()
            .filter(|(n, _)| !is_framing(n) && !crate::is_internal(n))
            .map(|(n, v)| (n.clone(), crate::fields::trimmed(v).to_vec()))
            .collect();
        prop_assert_eq!(&fields[..expected.len()], &expected[..]);
        prop_assert_eq!(fields.len(), expected.len() + 3);
    }

    /// Whatever bytes code puts in a name, a value or the reason, the head reads as the fields
    /// written or is not written: the worker's own fields stay the last three.
    #[test]
    fn code_adds_no_field_of_its_own(
        name in proptest::collection::vec(any::<u8>(), 0..12),
        value in proptest::collection::vec(any::<u8>(), 0..30),
        reason in proptest::collection::vec(any::<u8>(), 0..12),
    ) {
        let name = String::from_utf8_lossy(&name).into_owned();
        let reason = String::from_utf8_lossy(&reason).into_owned();
        if let Ok(bytes) = write(200, &reason, [(name.as_str(), value.as_slice())], &OWN) {
            let (_, fields) = read(&bytes).expect("read").expect("whole");
            prop_assert!(fields.len() <= 4);
            prop_assert_eq!(&fields[fields.len() - 3].1, b"4242");
        }
    }
}
