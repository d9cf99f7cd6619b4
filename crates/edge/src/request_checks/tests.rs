use super::*;

const SMALL: Limits = Limits { request_line: 30, field_size: 20, fields: 3 };

/// An h2 request as hyper hands it over: `uri` carries `:scheme`, `:authority` and `:path`.
fn h2_parts(method: &str, uri: &str, fields: &[(&str, &str)]) -> Parts {
    let mut builder = http::Request::builder().method(method).uri(uri).version(http::Version::HTTP_2);
    for (name, value) in fields {
        builder = builder.header(*name, *value);
    }
    builder.body(()).expect("test request").into_parts().0
}

fn check(method: &str, uri: &str, fields: &[(&str, &str)]) -> Result<(), Refusal> {
    h2(&mut h2_parts(method, uri, fields), &SMALL)
}

#[test]
fn limits_admit_up_to_and_including_the_limit() {
    assert_eq!(SMALL.request_line(30), Ok(()));
    assert_eq!(SMALL.request_line(31), Err(Refusal::LineTooLong));
    assert_eq!(SMALL.field_line(20), Ok(()));
    assert_eq!(SMALL.field_line(21), Err(Refusal::FieldTooLarge));
    assert_eq!(SMALL.field_count(3), Ok(()));
    assert_eq!(SMALL.field_count(4), Err(Refusal::TooManyFields));
    assert_eq!(request_line_len(&Method::GET, "/a"), "GET /a HTTP/1.1".len());
    assert_eq!(field_line_len("x-a", b"vv"), "x-a: vv".len());
    assert!(body_fits(10, 0) && body_fits(10, 10) && !body_fits(11, 10));
    let statuses: Vec<u16> = [
        Refusal::LineTooLong,
        Refusal::FieldTooLarge,
        Refusal::TooManyFields,
        Refusal::Malformed("x"),
        Refusal::ExpectationFailed,
    ]
    .iter()
    .map(|r| r.status().as_u16())
    .collect();
    assert_eq!(statuses, [414, 431, 431, 400, 417]);
}

#[test]
fn the_h2_header_list_has_room_for_every_admitted_field_and_no_more_than_a_mebibyte() {
    let defaults = Limits::default();
    assert!(defaults.h2_header_list_size() as usize >= 100 * (8190 + 32) + 8190);
    let huge = Limits { request_line: 1 << 20, field_size: 1 << 20, fields: 10_000 };
    assert_eq!(huge.h2_header_list_size(), 1 << 20);
}

#[test]
fn authorities_are_host_names_addresses_and_ports_only() {
    for good in ["h", "a-b.example_c~d", "h:1", "h:65535", "127.0.0.1:8443", "[::1]", "[::1]:443"] {
        assert_eq!(authority(good), Ok(()), "{good}");
    }
    for bad in [
        "", ":80", "u@h", "u:p@h", "h:", "h:8x", "h:65536", "h:123456", "h:1:2", "%68", "a,b", "a!b", "h/x",
        "[::g]", "[::1", "[::1]x", "exa mple",
    ] {
        assert!(authority(bad).is_err(), "{bad}");
    }
}

#[test]
fn host_and_authority_must_agree() {
    let fields = |hosts: &[&str]| {
        let mut map = HeaderMap::new();
        for host in hosts {
            map.append(HOST, HeaderValue::from_str(host).unwrap());
        }
        map
    };
    assert_eq!(host(&fields(&[]), None), Ok(None));
    assert_eq!(host(&fields(&["h"]), None), Ok(Some("h")));
    assert_eq!(host(&fields(&["H:1"]), Some("h:1")), Ok(Some("h:1")), "case does not matter");
    assert_eq!(host(&fields(&[]), Some("h")), Ok(Some("h")));
    assert_eq!(host(&fields(&["a", "a"]), None), Err(Refusal::Malformed("more than one Host")));
    assert_eq!(host(&fields(&["u@h"]), None), Err(Refusal::Malformed("invalid Host")));
    assert_eq!(host(&fields(&[]), Some("u@h")), Err(Refusal::Malformed("invalid host")));
    assert_eq!(
        host(&fields(&["b"]), Some("a")),
        Err(Refusal::Malformed("Host differs from the target's authority"))
    );
}

#[test]
fn content_length_is_one_field_of_digits() {
    let fields = |values: &[&str]| {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(CONTENT_LENGTH, HeaderValue::from_str(value).unwrap());
        }
        map
    };
    assert_eq!(content_length(&fields(&[])), Ok(None));
    assert_eq!(content_length(&fields(&["0"])), Ok(Some(0)));
    assert_eq!(
        content_length(&fields(&["18446744073709551615"])),
        Err(Refusal::Malformed("Content-Length too long"))
    );
    assert_eq!(content_length(&fields(&["9999999999999999999"])), Ok(Some(9_999_999_999_999_999_999)));
    for bad in ["+5", "5 5", "0x5", "5,5", "", "-1"] {
        assert_eq!(
            content_length(&fields(&[bad])),
            Err(Refusal::Malformed("invalid Content-Length")),
            "{bad}"
        );
    }
    assert_eq!(content_length(&fields(&["5", "5"])), Err(Refusal::Malformed("more than one Content-Length")));
}

/// Each h2 request and what HTTP/1.1 would answer the request it stands for. SMALL allows a
/// 30-byte request line, 20-byte field lines and 3 field lines (`:authority` is one of them).
#[test]
fn h2_requests_are_checked_as_their_http1_form() {
    let ok = Ok(());
    /// Name, method, URI, fields, and the verdict.
    type Case<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], Result<(), Refusal>);
    let cases: &[Case] = &[
        ("plain GET", "GET", "https://h/", &[], ok),
        ("request line at the limit", "GET", "https://h/aaaaaaaaaaaaaaaa", &[], ok),
        ("request line over the limit", "GET", "https://h/aaaaaaaaaaaaaaaaa", &[], Err(Refusal::LineTooLong)),
        ("three field lines with :authority", "GET", "https://h/", &[("a", "1"), ("b", "2")], ok),
        (
            "four field lines with :authority",
            "GET",
            "https://h/",
            &[("a", "1"), ("b", "2"), ("c", "3")],
            Err(Refusal::TooManyFields),
        ),
        (
            "host and :authority are one line",
            "GET",
            "https://h/",
            &[("host", "h"), ("a", "1"), ("b", "2")],
            ok,
        ),
        (
            "cookie crumbs are one line",
            "GET",
            "https://h/",
            &[("cookie", "a"), ("cookie", "b"), ("cookie", "c"), ("x", "1")],
            ok,
        ),
        ("field line at the limit", "GET", "https://h/", &[("x-long", "vvvvvvvvvvvv")], ok),
        (
            "field line over the limit",
            "GET",
            "https://h/",
            &[("x-long", "vvvvvvvvvvvvv")],
            Err(Refusal::FieldTooLarge),
        ),
        (
            "joined cookie over the limit",
            "GET",
            "https://h/",
            &[("cookie", "a=11111"), ("cookie", "b=22222")],
            Err(Refusal::FieldTooLarge),
        ),
        (
            "long :authority is a long Host line",
            "GET",
            "https://hhhhhhhhhhhhhhh/",
            &[],
            Err(Refusal::FieldTooLarge),
        ),
        ("userinfo in :authority", "GET", "https://u@h/", &[], Err(Refusal::Malformed("invalid host"))),
        ("bad port in :authority", "GET", "https://h:99999/", &[], Err(Refusal::Malformed("invalid port"))),
        ("sub-delim in :authority", "GET", "https://a,b/", &[], Err(Refusal::Malformed("invalid host"))),
        (
            "host differs from :authority",
            "GET",
            "https://h/",
            &[("host", "evil")],
            Err(Refusal::Malformed("Host differs from the target's authority")),
        ),
        (
            "two hosts",
            "GET",
            "/",
            &[("host", "h"), ("host", "h")],
            Err(Refusal::Malformed("more than one Host")),
        ),
        ("host without :authority", "GET", "/", &[("host", "h")], ok),
        ("neither", "GET", "/", &[], Err(Refusal::Malformed("request without :authority or Host"))),
        ("CONNECT", "CONNECT", "h:443", &[], Err(Refusal::Malformed("CONNECT is not supported"))),
        ("another scheme", "GET", "ftp://h/", &[], Err(Refusal::Malformed("unsupported :scheme"))),
        (
            "asterisk with GET",
            "GET",
            "*",
            &[("host", "h")],
            Err(Refusal::Malformed("asterisk-form target with a method other than OPTIONS")),
        ),
        ("asterisk with OPTIONS", "OPTIONS", "*", &[("host", "h")], ok),
        (
            "non-ASCII in the path",
            "GET",
            "https://h/caf\u{e9}",
            &[],
            Err(Refusal::Malformed("invalid byte in request target")),
        ),
        (
            "leading space in a value",
            "GET",
            "https://h/",
            &[("x", " v")],
            Err(Refusal::Malformed("whitespace around a field value")),
        ),
        (
            "trailing tab in a value",
            "GET",
            "https://h/",
            &[("x", "v\t")],
            Err(Refusal::Malformed("whitespace around a field value")),
        ),
        ("inner tab in a value", "GET", "https://h/", &[("x", "v\tw")], ok),
        (
            "two content-lengths",
            "POST",
            "https://h/",
            &[("content-length", "5"), ("content-length", "5")],
            Err(Refusal::Malformed("more than one Content-Length")),
        ),
        ("100-continue", "POST", "https://h/", &[("expect", "100-continue")], ok),
        ("another expectation", "POST", "https://h/", &[("expect", "x")], Err(Refusal::ExpectationFailed)),
    ];
    for (name, method, uri, fields, want) in cases {
        assert_eq!(&check(method, uri, fields), want, "{name}");
    }
}

#[test]
fn cookie_crumbs_become_one_field_joined_with_semicolons() {
    let mut parts = h2_parts("GET", "https://h/", &[("cookie", "a=1"), ("x", "1"), ("cookie", "b=2")]);
    assert_eq!(h2(&mut parts, &Limits::default()), Ok(()));
    let cookies: Vec<_> = parts.headers.get_all(COOKIE).iter().collect();
    assert_eq!(cookies, ["a=1; b=2"]);
    let mut one = h2_parts("GET", "https://h/", &[("cookie", "a=1, b=2")]);
    assert_eq!(h2(&mut one, &Limits::default()), Ok(()));
    assert_eq!(one.headers[COOKIE], "a=1, b=2", "one field is left as sent");
}
