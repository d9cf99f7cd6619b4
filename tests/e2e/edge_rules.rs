//! The edge's rules at the door: malformed and smuggling-shaped requests refused before any
//! worker sees them, LimitRequestBody under both framings, the PROXY protocol, what the response
//! headers reveal, and client certificates.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::support::client::{Client, Proto};
use crate::support::raw::{self, Exchange};
use crate::support::{h2, payload, wait_until, Site, Weir};

/// The most one raw exchange may take before the connection counts as left open.
const DEADLINE: Duration = Duration::from_secs(15);

/// A refusal must close the connection well within this (KeepAliveTimeout is set far above it
/// where that matters, so a connection kept alive cannot pass for a prompt close).
const PROMPT: Duration = Duration::from_secs(5);

/// The testapp, recording every request that reaches a worker in a file the tests can read.
/// The file lives in a 0777 directory: when the tests run as root, workers run as `nobody`.
fn recording_site() -> (Site, PathBuf) {
    let site = Site::new().with_example("testapp");
    let dir = site.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    let record = dir.join("record.log");
    let record_text = record.display().to_string();
    (site.env("TESTAPP_RECORD", &record_text), record)
}

/// The lines of the record file (none if no request ever reached a worker).
fn recorded(record: &Path) -> Vec<String> {
    std::fs::read_to_string(record).unwrap_or_default().lines().map(str::to_string).collect()
}

/// `key=value` lines of a testapp reply.
fn field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

/// An HTTP/1.1 exchange with no client certificate.
fn h1_config(weir: &Weir) -> Arc<rustls::ClientConfig> {
    raw::tls_config(&weir.cert_pem, &[b"http/1.1"], None)
}

/// Sends `request` on a new TLS connection and expects exactly one response, then the close.
fn one_response(
    addr: std::net::SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    preface: &[u8],
    request: &[u8],
) -> raw::Response {
    let exchange = raw::exchange(addr, config.clone(), preface, request, DEADLINE);
    assert_eq!(exchange.handshake, Ok(()), "{exchange:?}");
    let responses = raw::responses(&exchange.bytes).unwrap_or_else(|e| panic!("{e}: {:?}", exchange.text()));
    assert_eq!(responses.len(), 1, "{:?}", exchange.text());
    responses.into_iter().next().unwrap()
}

/// One malformed request and what the edge must answer, over HTTP/1.1 and over h2.
struct Case {
    name: &'static str,
    request: Vec<u8>,
    status: u16,
    h2: H2,
}

/// A case over h2.
enum H2 {
    /// The same request as h2 fields (pseudo-header fields first), with a body of this many
    /// bytes, and what it must get.
    Same { fields: Vec<(String, String)>, body: Option<usize>, answer: H2Answer },
    /// The case is about HTTP/1.1's own syntax, which h2 has no way to spell: why.
    NoMeaning(&'static str),
}

/// What an h2 case must get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum H2Answer {
    /// This status, from weir's checker, as over HTTP/1.1.
    Status(u16),
    /// Malformed h2 (RFC 9113 8.1.1), refused by the h2 layer before weir sees a request, with
    /// PROTOCOL_ERROR and no response: the stream is reset, or, for bytes HPACK cannot make a
    /// field of, the whole connection ends with GOAWAY.
    Malformed,
}

/// Builds a case's request for its path.
type Build = Box<dyn Fn(&str) -> String>;

/// Builds a case's h2 form for its path.
type H2Build = Box<dyn Fn(&str) -> H2>;

/// Why some HTTP/1.1 cases have no h2 form.
const NO_CHUNKS: &str = "chunked framing: h2 delimits bodies with DATA frames and END_STREAM";
const NO_LINES: &str = "line endings and folding: HPACK carries each field whole, with no lines";
const NO_COLON: &str = "whitespace before a colon: HPACK carries names and values apart";
const NO_REQUEST_LINE: &str = "request-line whitespace: h2 sends method and target as fields";
const NO_VERSION: &str = "the HTTP version in a request line: h2 is its own";

/// `pairs` as owned fields.
fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// `fields` with the value of `name` replaced.
fn with(mut fields: Vec<(String, String)>, name: &str, value: &str) -> Vec<(String, String)> {
    for field in fields.iter_mut().filter(|(n, _)| n == name) {
        field.1 = value.to_string();
    }
    fields
}

/// An h2 form built from the path.
fn h2_with(fields: impl Fn(&str) -> Vec<(String, String)> + 'static, answer: H2Answer) -> H2Build {
    Box::new(move |p| H2::Same { fields: fields(p), body: None, answer })
}

/// A GET of the path with `extra` fields.
fn h2_get(extra: &'static [(&'static str, &'static str)], answer: H2Answer) -> H2Build {
    h2_with(move |p| [h2::get(p), pairs(extra)].concat(), answer)
}

/// A POST of the path with `extra` fields and a body of `body` bytes.
fn h2_post(extra: &'static [(&'static str, &'static str)], body: usize, answer: H2Answer) -> H2Build {
    Box::new(move |p| H2::Same {
        fields: [h2::request("POST", p), pairs(extra)].concat(),
        body: Some(body),
        answer,
    })
}

fn no_h2(why: &'static str) -> H2Build {
    Box::new(move |_| H2::NoMeaning(why))
}

/// The refused requests, each aimed at its own `/app/case-NN` so the record file can prove it
/// never arrived, with its h2 form aimed at the same path. The weir they run against has
/// LimitRequestLine 200, LimitRequestFieldSize 200, LimitRequestFields 10 and no
/// LimitRequestBody.
fn malformed_cases() -> Vec<Case> {
    let specs: Vec<(&'static str, Build, u16, H2Build)> = vec![
        (
            "Content-Length then Transfer-Encoding",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            }),
            400,
            h2_post(&[("content-length", "5"), ("transfer-encoding", "chunked")], 5, H2Answer::Malformed),
        ),
        (
            "Transfer-Encoding then Content-Length",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n")
            }),
            400,
            h2_post(&[("transfer-encoding", "chunked"), ("content-length", "5")], 5, H2Answer::Malformed),
        ),
        (
            "two different Content-Length",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!")
            }),
            400,
            h2_post(&[("content-length", "5"), ("content-length", "6")], 5, H2Answer::Malformed),
        ),
        (
            "two identical Content-Length",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello")
            }),
            400,
            h2_post(&[("content-length", "5"), ("content-length", "5")], 5, H2Answer::Status(400)),
        ),
        (
            "Content-Length +5",
            Box::new(|p| format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: +5\r\n\r\nhello")),
            400,
            h2_post(&[("content-length", "+5")], 5, H2Answer::Malformed),
        ),
        (
            "Content-Length 5 5",
            Box::new(|p| format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5 5\r\n\r\nhello")),
            400,
            h2_post(&[("content-length", "5 5")], 5, H2Answer::Malformed),
        ),
        (
            "Content-Length 0x5",
            Box::new(|p| format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0x5\r\n\r\nhello")),
            400,
            h2_post(&[("content-length", "0x5")], 5, H2Answer::Malformed),
        ),
        (
            "Content-Length 5,5",
            Box::new(|p| format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5,5\r\n\r\nhello")),
            400,
            h2_post(&[("content-length", "5,5")], 5, H2Answer::Malformed),
        ),
        (
            "Transfer-Encoding xchunked",
            Box::new(|p| {
                format!(
                    "POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
                )
            }),
            400,
            h2_post(&[("transfer-encoding", "xchunked")], 5, H2Answer::Malformed),
        ),
        (
            "Transfer-Encoding chunked, identity",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n")
            }),
            400,
            h2_post(&[("transfer-encoding", "chunked, identity")], 5, H2Answer::Malformed),
        ),
        (
            "Transfer-Encoding gzip, chunked",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
            }),
            400,
            h2_post(&[("transfer-encoding", "gzip, chunked")], 5, H2Answer::Malformed),
        ),
        (
            "Transfer-Encoding with a tab inside",
            Box::new(|p| {
                format!(
                    "POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chun\tked\r\n\r\n0\r\n\r\n"
                )
            }),
            400,
            h2_post(&[("transfer-encoding", "chun\tked")], 5, H2Answer::Malformed),
        ),
        (
            "space before the colon of Transfer-Encoding",
            Box::new(|p| {
                format!(
                    "POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"
                )
            }),
            400,
            no_h2(NO_COLON),
        ),
        (
            "tab before the colon of Transfer-Encoding",
            Box::new(|p| {
                format!(
                    "POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n"
                )
            }),
            400,
            no_h2(NO_COLON),
        ),
        (
            "duplicate Transfer-Encoding",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
            }),
            400,
            h2_post(
                &[("transfer-encoding", "chunked"), ("transfer-encoding", "chunked")],
                5,
                H2Answer::Malformed,
            ),
        ),
        (
            "Transfer-Encoding on HTTP/1.0",
            Box::new(|p| format!("POST {p} HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")),
            400,
            no_h2(NO_VERSION),
        ),
        (
            "invalid chunk size g",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\ng\r\nhello\r\n0\r\n\r\n")
            }),
            400,
            no_h2(NO_CHUNKS),
        ),
        (
            "chunk size of 20 hex digits",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nhello\r\n0\r\n\r\n")
            }),
            400,
            no_h2(NO_CHUNKS),
        ),
        (
            "chunk extension ;=x",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5;=x\r\nhello\r\n0\r\n\r\n")
            }),
            400,
            no_h2(NO_CHUNKS),
        ),
        (
            "no CRLF after chunk data",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n")
            }),
            400,
            no_h2(NO_CHUNKS),
        ),
        (
            "bare LF after a chunk size",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n")
            }),
            400,
            no_h2(NO_CHUNKS),
        ),
        (
            "obs-fold in a trailer",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\nX-T: a\r\n b\r\n\r\n")
            }),
            400,
            no_h2(NO_CHUNKS),
        ),
        (
            "bare CR inside a header value",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nHost: localhost\r\nX-A: a\rb\r\n\r\n")),
            400,
            h2_get(&[("x-a", "a\rb")], H2Answer::Malformed),
        ),
        (
            "bare LF line endings",
            Box::new(|p| format!("GET {p} HTTP/1.1\nHost: localhost\n\n")),
            400,
            no_h2(NO_LINES),
        ),
        (
            "NUL in a header value",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nHost: localhost\r\nX-A: a\0b\r\n\r\n")),
            400,
            h2_get(&[("x-a", "a\0b")], H2Answer::Malformed),
        ),
        (
            "0x01 in a header name",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nHost: localhost\r\nX-\x01A: b\r\n\r\n")),
            400,
            h2_get(&[("x-\x01a", "b")], H2Answer::Malformed),
        ),
        (
            "obs-fold",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n b\r\n\r\n")),
            400,
            no_h2(NO_LINES),
        ),
        (
            "two spaces in the request line",
            Box::new(|p| format!("GET  {p} HTTP/1.1\r\nHost: localhost\r\n\r\n")),
            400,
            no_h2(NO_REQUEST_LINE),
        ),
        (
            "tab in the request line",
            Box::new(|p| format!("GET\t{p} HTTP/1.1\r\nHost: localhost\r\n\r\n")),
            400,
            no_h2(NO_REQUEST_LINE),
        ),
        (
            "invalid method GE(T",
            Box::new(|p| format!("GE(T {p} HTTP/1.1\r\nHost: localhost\r\n\r\n")),
            400,
            h2_with(|p| with(h2::get(p), ":method", "GE(T"), H2Answer::Malformed),
        ),
        (
            "absolute-form for another host",
            Box::new(|p| format!("GET https://evil.example{p} HTTP/1.1\r\nHost: localhost\r\n\r\n")),
            400,
            h2_with(
                |p| {
                    with(h2::get(p), ":authority", "evil.example")
                        .into_iter()
                        .chain(pairs(&[("host", "localhost")]))
                        .collect()
                },
                H2Answer::Status(400),
            ),
        ),
        (
            "HTTP/1.1 without Host",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nX-A: b\r\n\r\n")),
            400,
            h2_with(
                |p| h2::get(p).into_iter().filter(|(n, _)| n != ":authority").collect(),
                H2Answer::Status(400),
            ),
        ),
        (
            "two Host fields",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nHost: localhost\r\nHost: evil.example\r\n\r\n")),
            400,
            h2_get(&[("host", "localhost"), ("host", "evil.example")], H2Answer::Status(400)),
        ),
        (
            "CONNECT",
            Box::new(|p| {
                format!("CONNECT localhost:443 HTTP/1.1\r\nHost: localhost:443\r\nX-Case: {p}\r\n\r\n")
            }),
            400,
            h2_with(
                |p| pairs(&[(":method", "CONNECT"), (":authority", "localhost:443"), ("x-case", p)]),
                H2Answer::Status(400),
            ),
        ),
        ("HTTP/0.9", Box::new(|p| format!("GET {p}\r\n\r\n")), 400, no_h2(NO_VERSION)),
        (
            "HTTP/2.0 in the request line",
            Box::new(|p| format!("GET {p} HTTP/2.0\r\nHost: localhost\r\n\r\n")),
            505,
            no_h2(NO_VERSION),
        ),
        (
            "Expect: something",
            Box::new(|p| {
                format!("POST {p} HTTP/1.1\r\nHost: localhost\r\nExpect: something\r\nContent-Length: 5\r\n\r\nhello")
            }),
            417,
            h2_post(&[("expect", "something"), ("content-length", "5")], 5, H2Answer::Status(417)),
        ),
        (
            "300-byte target over LimitRequestLine 200",
            Box::new(|p| format!("GET {p}/{} HTTP/1.1\r\nHost: localhost\r\n\r\n", "a".repeat(300))),
            414,
            h2_with(|p| h2::get(&format!("{p}/{}", "a".repeat(300))), H2Answer::Status(414)),
        ),
        (
            "300-byte field over LimitRequestFieldSize 200",
            Box::new(|p| {
                format!("GET {p} HTTP/1.1\r\nHost: localhost\r\nX-Long: {}\r\n\r\n", "v".repeat(300))
            }),
            431,
            h2_with(|p| [h2::get(p), pairs(&[("x-long", &"v".repeat(300))])].concat(), H2Answer::Status(431)),
        ),
        (
            "12 fields over LimitRequestFields 10",
            Box::new(|p| {
                let mut s = format!("GET {p} HTTP/1.1\r\nHost: localhost\r\n");
                for i in 1..12 {
                    s.push_str(&format!("X-F{i}: v\r\n"));
                }
                s + "\r\n"
            }),
            431,
            h2_with(
                |p| [h2::get(p), (1..12).map(|i| (format!("x-f{i}"), "v".to_string())).collect()].concat(),
                H2Answer::Status(431),
            ),
        ),
        (
            "Host with userinfo",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nHost: u@evil.example\r\n\r\n")),
            400,
            h2_with(|p| with(h2::get(p), ":authority", "u@evil.example"), H2Answer::Status(400)),
        ),
        (
            "Host with a port over 65535",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nHost: localhost:99999\r\n\r\n")),
            400,
            h2_with(|p| with(h2::get(p), ":authority", "localhost:99999"), H2Answer::Status(400)),
        ),
        (
            "Host with a character outside a host name",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nHost: local!host\r\n\r\n")),
            400,
            h2_with(|p| with(h2::get(p), ":authority", "local!host"), H2Answer::Status(400)),
        ),
        (
            // The `http` crate parses no '%' in an authority: malformed to the h2 layer.
            "Host with percent-encoding",
            Box::new(|p| format!("GET {p} HTTP/1.1\r\nHost: local%68ost\r\n\r\n")),
            400,
            h2_with(|p| with(h2::get(p), ":authority", "local%68ost"), H2Answer::Malformed),
        ),
    ];
    specs
        .into_iter()
        .enumerate()
        .map(|(i, (name, build, status, h2))| {
            let path = format!("/app/case-{:02}", i + 1);
            Case { name, request: build(&path).into_bytes(), status, h2: h2(&path) }
        })
        .collect()
}

/// The weir the malformed cases run against, and its record file.
fn malformed_site() -> (Weir, PathBuf) {
    let (site, record) = recording_site();
    let weir = site.start(
        "LimitRequestLine 200\nLimitRequestFieldSize 200\nLimitRequestFields 10\n\
         LimitRequestBody 0\nKeepAliveTimeout 30\n",
    );
    (weir, record)
}

#[test]
fn malformed_and_smuggling_requests_get_4xx_close_and_never_reach_a_worker() {
    let (weir, record) = malformed_site();
    let tls = h1_config(&weir);
    let cases = malformed_cases();
    assert!(cases.len() >= 30);
    let mut table = Vec::new();
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        // A valid request right behind the bad one: answered only if the edge kept reading.
        let mut bytes = case.request.clone();
        bytes.extend_from_slice(
            format!("GET /app/piped-{:02} HTTP/1.1\r\nHost: localhost\r\n\r\n", i + 1).as_bytes(),
        );
        let exchange = raw::exchange(weir.addr(), tls.clone(), b"", &bytes, DEADLINE);
        let text = exchange.text();
        let status_line = text.lines().next().unwrap_or("").to_string();
        let count = raw::responses(&exchange.bytes).map(|r| r.len());
        table.push(format!(
            "{:02} {:<48} expected {} got {:?} responses {:?} end {:?} in {:?}",
            i + 1,
            case.name,
            case.status,
            status_line,
            count,
            exchange.end,
            exchange.elapsed
        ));
        let mut problems = Vec::new();
        if exchange.handshake.is_err() {
            problems.push(format!("handshake {:?}", exchange.handshake));
        }
        if !text.starts_with(&format!("HTTP/1.1 {} ", case.status)) {
            problems.push(format!("status line {status_line:?}"));
        }
        if count != Ok(1) {
            problems.push(format!("responses {count:?} in {text:?}"));
        }
        if !exchange.end.closed() || exchange.elapsed > PROMPT {
            problems.push(format!("not closed promptly: {:?} after {:?}", exchange.end, exchange.elapsed));
        }
        if !problems.is_empty() {
            failures.push(format!("{:02} {}: {}", i + 1, case.name, problems.join("; ")));
        }
    }

    // The control: a valid HTTP/1.0 request is served, recorded, and ends the connection.
    let control = raw::exchange(
        weir.addr(),
        tls.clone(),
        b"",
        b"GET /app/ok HTTP/1.0\r\n\r\nGET /app/piped-ok HTTP/1.1\r\nHost: localhost\r\n\r\n",
        DEADLINE,
    );
    let responses = raw::responses(&control.bytes).unwrap_or_default();
    table.push(format!(
        "-- {:<48} expected 200 got {:?} responses {} end {:?} in {:?}",
        "control: GET /app/ok HTTP/1.0",
        control.text().lines().next().unwrap_or(""),
        responses.len(),
        control.end,
        control.elapsed
    ));
    eprintln!("{}", table.join("\n"));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(control.handshake, Ok(()));
    assert!(
        control.text().starts_with("HTTP/1.1 200 ") || control.text().starts_with("HTTP/1.0 200 "),
        "{}",
        control.text()
    );
    assert_eq!(responses.len(), 1, "{}", control.text());
    assert_eq!(field(&responses[0].text(), "target"), Some("/app/ok"));
    assert!(control.end.closed() && control.elapsed < PROMPT, "{control:?}");

    // Each response came after the worker wrote its record line, so the file is complete now.
    let lines = recorded(&record);
    assert_eq!(lines, vec!["GET /app/ok 0".to_string()], "{}", weir.logs());
}

/// The same table over h2, with the same limits: each case's h2 form gets the status HTTP/1.1
/// gets, or, where h2 itself calls the request malformed, a PROTOCOL_ERROR reset; none reaches a
/// worker. Cases about HTTP/1.1's own syntax say why they have no h2 form.
#[test]
fn malformed_requests_get_the_same_answers_over_h2() {
    let (weir, record) = malformed_site();
    let cases = malformed_cases();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut table = Vec::new();
    let mut failures = Vec::new();
    let mut with_h2 = 0;
    for (i, case) in cases.iter().enumerate() {
        let (fields, body, answer) = match &case.h2 {
            H2::NoMeaning(why) => {
                table.push(format!("{:02} {:<48} no h2 form: {why}", i + 1, case.name));
                continue;
            }
            H2::Same { fields, body, answer } => (fields, *body, *answer),
        };
        with_h2 += 1;
        if let H2Answer::Status(status) = answer {
            assert_eq!(status, case.status, "{}: the table gives h2 another answer than HTTP/1.1", case.name);
        }
        let outcome = runtime.block_on(h2::exchange(&weir, fields, body));
        let got = match (outcome.status, outcome.reset) {
            (Some(status), _) => status.to_string(),
            (None, Some(code)) => format!("reset, code {code}"),
            (None, None) => "nothing".to_string(),
        };
        table.push(format!(
            "{:02} {:<48} expected {answer:?} got {got}: {}",
            i + 1,
            case.name,
            outcome.frames
        ));
        let ok = match answer {
            H2Answer::Status(status) => {
                outcome.status == Some(status)
                    && outcome.complete
                    && !outcome.reset_first
                    && matches!(outcome.reset, None | Some(h2::NO_ERROR))
            }
            H2Answer::Malformed => {
                outcome.status.is_none()
                    && (outcome.reset == Some(h2::PROTOCOL_ERROR)
                        || outcome.goaway == Some(h2::PROTOCOL_ERROR))
            }
        };
        if !ok {
            failures.push(format!(
                "{:02} {}: expected {answer:?}, got {got}: {}",
                i + 1,
                case.name,
                outcome.frames
            ));
        }
    }
    let control = runtime.block_on(h2::exchange(&weir, &h2::get("/app/ok"), None));
    eprintln!("{}", table.join("\n"));
    assert!(with_h2 >= 25, "only {with_h2} cases have an h2 form");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(control.status, Some(200), "{}\n{}", control.frames, weir.logs());
    assert_eq!(field(&control.text(), "target"), Some("/app/ok"));
    assert_eq!(recorded(&record), vec!["GET /app/ok 0".to_string()], "{}", weir.logs());
}

/// A chunked body of `sizes` chunks of 'x'.
fn chunked(sizes: &[usize]) -> Vec<u8> {
    let mut body = Vec::new();
    for &size in sizes {
        body.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(b'x', size));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

#[test]
fn limit_request_body_counts_both_framings() {
    let (site, record) = recording_site();
    let weir = site.start("LimitRequestBody 1000\n");
    let tls = h1_config(&weir);
    let post = |path: &str, framing: &str, body: &[u8]| {
        let mut request =
            format!("POST {path} HTTP/1.1\r\nHost: localhost\r\n{framing}\r\nConnection: close\r\n\r\n")
                .into_bytes();
        request.extend_from_slice(body);
        one_response(weir.addr(), &tls, b"", &request)
    };

    let over = post("/app/cl-1001", "Content-Length: 1001", &[b'x'; 1001]);
    assert_eq!(over.status, 413, "{}", over.text());
    let over = post("/app/chunked-1001", "Transfer-Encoding: chunked", &chunked(&[600, 401]));
    assert_eq!(over.status, 413, "{}", over.text());
    let exact = post("/app/cl-1000", "Content-Length: 1000", &[b'x'; 1000]);
    assert_eq!(exact.status, 200, "{}", exact.text());
    assert_eq!(field(&exact.text(), "body_len"), Some("1000"));
    let exact = post("/app/chunked-1000", "Transfer-Encoding: chunked", &chunked(&[600, 400]));
    assert_eq!(exact.status, 200, "{}", exact.text());
    assert_eq!(field(&exact.text(), "body_len"), Some("1000"));

    let client = Client::new(weir.addr(), &weir.cert_pem);
    let over = client.request(Proto::H2, "POST", "/app/h2-1001", payload(1001)).unwrap();
    assert_eq!(over.status, 413, "{}", over.text());
    let exact = client.request(Proto::H2, "POST", "/app/h2-1000", payload(1000)).unwrap();
    assert_eq!(exact.status, 200, "{}", exact.text());
    assert_eq!(field(&exact.text(), "body_len"), Some("1000"));
    // Over h2 with no content-length, the DATA frames are counted as chunks are over HTTP/1.1.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let streamed =
        |path: &str, len: usize| runtime.block_on(h2::exchange(&weir, &h2::request("POST", path), Some(len)));
    let over = streamed("/app/h2-streamed-1001", 1001);
    assert_eq!((over.status, over.complete), (Some(413), true), "{}", over.frames);
    let exact = streamed("/app/h2-streamed-1000", 1000);
    assert_eq!(exact.status, Some(200), "{}", exact.frames);
    assert_eq!(field(&exact.text(), "body_len"), Some("1000"));

    let mut lines = recorded(&record);
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "POST /app/chunked-1000 1000",
            "POST /app/cl-1000 1000",
            "POST /app/h2-1000 1000",
            "POST /app/h2-streamed-1000 1000",
        ],
        "only the bodies within the limit reach a worker"
    );
}

/// The access-log line of the request for `path`, once it is written.
fn access_line(weir: &Weir, path: &str) -> String {
    let log = weir.path().join("access.log");
    let needle = format!(" {path} ");
    let mut found = None;
    wait_until(Duration::from_secs(5), || {
        found = std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .find(|line| line.contains(&needle))
            .map(str::to_string);
        found.is_some()
    });
    found.unwrap_or_else(|| {
        panic!("no access-log line for {path}:\n{}", std::fs::read_to_string(&log).unwrap_or_default())
    })
}

/// A refused connection: the handshake failed, or it ended without a byte of HTTP.
fn assert_refused(exchange: &Exchange, what: &str) {
    match &exchange.handshake {
        Err(_) => {}
        Ok(()) => {
            assert!(exchange.end.closed(), "{what}: the connection stayed open: {exchange:?}");
            assert!(!exchange.text().contains("HTTP/"), "{what}: got an HTTP answer: {:?}", exchange.text());
        }
    }
}

#[test]
fn proxy_protocol_sets_the_client_address_and_garbage_is_refused() {
    let (site, record) = recording_site();
    // The fixture's own `Listen` comes first in the file, so the proxy listener is the second.
    let weir = site.start(
        "Listen 127.0.0.1:0 https proxy-protocol\nRemoteIPTrustedProxy 127.0.0.1\nRateLimit 2/s burst=2\n",
    );
    assert_eq!(weir.https.len(), 2, "{:?}", weir.https);
    let (plain, proxied) = (weir.https[0], weir.https[1]);
    let tls = h1_config(&weir);
    let get = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes()
    };

    let v1 = b"PROXY TCP4 203.0.113.9 127.0.0.1 40000 443\r\n";
    let reply = one_response(proxied, &tls, v1, &get("/app/proxy-v1"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(field(&reply.text(), "client"), Some("203.0.113.9"));
    let line = access_line(&weir, "/app/proxy-v1");
    assert!(line.starts_with("203.0.113.9 "), "{line}");

    let v2 = raw::proxy_v2([198, 51, 100, 7], 40001, [127, 0, 0, 1], 443);
    let reply = one_response(proxied, &tls, &v2, &get("/app/proxy-v2"));
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(field(&reply.text(), "client"), Some("198.51.100.7"));
    let line = access_line(&weir, "/app/proxy-v2");
    assert!(line.starts_with("198.51.100.7 "), "{line}");

    // No header, or something else in its place: closed before TLS, nothing served.
    for (name, preface) in [
        ("a ClientHello with no header", &b""[..]),
        ("HELLO", &b"HELLO\r\n"[..]),
        ("text that is not a header", &b"HELLO, THIS IS NOT A PROXY HEADER\r\n"[..]),
        ("PROXY with a bad address", &b"PROXY TCP4 203.0.113.999 127.0.0.1 1 443\r\n"[..]),
    ] {
        let exchange = raw::exchange(proxied, tls.clone(), preface, &get("/app/proxy-garbage"), DEADLINE);
        assert_refused(&exchange, name);
        assert!(exchange.elapsed < PROMPT, "{name}: {exchange:?}");
    }
    // A listener without proxy-protocol takes no header: one sent there is not believed.
    let exchange = raw::exchange(plain, tls.clone(), v1, &get("/app/proxy-spoof"), DEADLINE);
    assert_refused(&exchange, "a PROXY header on the plain listener");

    // RateLimit is kept per PROXY address: three requests at once from one address, then
    // another address. Pipelined on one connection, so the rate cannot refill in between.
    let mut three = Vec::new();
    for n in 1..=3 {
        let close = if n == 3 { "Connection: close\r\n" } else { "" };
        three.extend_from_slice(
            format!("GET /app/rate-{n} HTTP/1.1\r\nHost: localhost\r\n{close}\r\n").as_bytes(),
        );
    }
    let exchange = raw::exchange(
        proxied,
        tls.clone(),
        b"PROXY TCP4 203.0.113.10 127.0.0.1 40002 443\r\n",
        &three,
        DEADLINE,
    );
    let statuses: Vec<u16> = raw::responses(&exchange.bytes)
        .unwrap_or_else(|e| panic!("{e}: {:?}", exchange.text()))
        .iter()
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, vec![200, 200, 429], "{}", exchange.text());
    let other = one_response(
        proxied,
        &tls,
        b"PROXY TCP4 203.0.113.11 127.0.0.1 40003 443\r\n",
        &get("/app/rate-other"),
    );
    assert_eq!(other.status, 200, "{}", other.text());
    assert_eq!(field(&other.text(), "client"), Some("203.0.113.11"));

    let lines = recorded(&record);
    for absent in ["/app/proxy-garbage", "/app/proxy-spoof", "/app/rate-3"] {
        assert!(!lines.iter().any(|l| l.contains(absent)), "{absent} reached a worker: {lines:?}");
    }
    for present in ["/app/proxy-v1", "/app/proxy-v2", "/app/rate-1", "/app/rate-other"] {
        assert!(lines.iter().any(|l| l.contains(present)), "{present} is not in {lines:?}");
    }
}

/// Prints a Server and an X-Powered-By of its own.
const BOASTFUL_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nServer: Apache/2.4 (Evil)\\r\\nX-Powered-By: PHP/5\\r\\n\\r\\nhello\\n'\n";

/// Whether `text` holds a version-like `digits.digits`.
fn has_version_number(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.windows(3).any(|w| w[0].is_ascii_digit() && w[1] == b'.' && w[2].is_ascii_digit())
}

#[test]
fn server_header_and_backend_headers_and_error_pages() {
    let get = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes()
    };

    let (site, _record) = recording_site();
    site.script("boast", BOASTFUL_SCRIPT);
    let weir = site.start("");
    let tls = h1_config(&weir);
    let index = one_response(weir.addr(), &tls, b"", &get("/"));
    assert_eq!(index.status, 200);
    assert_eq!(index.all("server"), vec!["weir"]);
    let app = one_response(weir.addr(), &tls, b"", &get("/app/x"));
    assert_eq!(app.status, 200);
    assert_eq!(app.all("server"), vec!["weir"]);
    assert_eq!(app.header("x-powered-by"), None, "{:?}", app.headers);
    let script = one_response(weir.addr(), &tls, b"", &get("/cgi-bin/boast"));
    assert_eq!(script.status, 200, "{}", script.text());
    assert_eq!(script.text(), "hello\n");
    assert_eq!(script.all("server"), vec!["weir"]);
    assert_eq!(script.header("x-powered-by"), None, "{:?}", script.headers);
    assert!(
        !script.headers.iter().any(|(_, v)| v.contains("Apache") || v.contains("PHP")),
        "{:?}",
        script.headers
    );
    let missing = one_response(weir.addr(), &tls, b"", &get("/missing.html"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.all("server"), vec!["weir"]);
    let page = missing.text();
    assert!(!page.contains("weir/"), "{page}");
    assert!(!has_version_number(&page), "{page}");
    let trace = one_response(
        weir.addr(),
        &tls,
        b"",
        b"TRACE / HTTP/1.1\r\nHost: localhost\r\nX-Secret: cookie\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(trace.status, 405, "{}", trace.text());
    assert!(!trace.text().contains("cookie"), "{}", trace.text());
    drop(weir);

    let (site, _record) = recording_site();
    let weir = site.start(
        "ServerTokens Full\n\
         Header always set Strict-Transport-Security \"max-age=63072000\"\n\
         Header set X-Only-Success yes\n\
         Header unset X-Powered-By\n",
    );
    let tls = h1_config(&weir);
    let index = one_response(weir.addr(), &tls, b"", &get("/"));
    assert_eq!(index.status, 200);
    let server = index.all("server");
    assert_eq!(server.len(), 1, "{server:?}");
    assert!(server[0].starts_with("weir/"), "{server:?}");
    assert_eq!(index.header("strict-transport-security"), Some("max-age=63072000"));
    assert_eq!(index.header("x-only-success"), Some("yes"));
    let app = one_response(weir.addr(), &tls, b"", &get("/app/x"));
    assert_eq!(app.status, 200, "{}", app.text());
    assert_eq!(app.header("x-powered-by"), None);
    assert_eq!(app.header("x-only-success"), Some("yes"));
    let missing = one_response(weir.addr(), &tls, b"", &get("/missing.html"));
    assert_eq!(missing.status, 404);
    assert_eq!(missing.header("strict-transport-security"), Some("max-age=63072000"));
    assert_eq!(missing.header("x-only-success"), None, "{:?}", missing.headers);
    // ServerSignature is Off by default: the page still names no version.
    assert!(!missing.text().contains("weir/"), "{}", missing.text());
    assert!(!has_version_number(&missing.text()), "{}", missing.text());
}

/// Prints what mod_ssl would tell a script about the client certificate.
const CLIENT_CERT_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"dn=$SSL_CLIENT_S_DN\"\necho \"verify=$SSL_CLIENT_VERIFY\"\n";

/// A CA: its certificate's PEM and the issuer that signs with its key.
fn certificate_authority(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert.pem(), rcgen::Issuer::new(params, key))
}

/// A client certificate for meter-0042 signed by `issuer`, with its key.
fn client_certificate(
    issuer: &rcgen::Issuer<'static, rcgen::KeyPair>,
) -> (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "meter-0042");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, "Water Utility");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let key = rcgen::KeyPair::generate().expect("client key");
    let cert = params.signed_by(&key, issuer).expect("client certificate");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (vec![cert.der().clone()], key)
}

#[test]
fn mtls_require_refuses_without_a_certificate_and_passes_the_subject() {
    let (site, record) = recording_site();
    let (ca_pem, ca) = certificate_authority("Water Utility Meter CA");
    let ca_path = site.path().join("client-ca.pem");
    std::fs::write(&ca_path, &ca_pem).unwrap();
    site.script("whoami", CLIENT_CERT_SCRIPT);
    let weir = site.start(&format!("SSLVerifyClient require\nSSLCACertificateFile {}\n", ca_path.display()));
    let get = |path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes()
    };

    // No certificate: TLS 1.3 lets the client finish its side of the handshake, so the refusal
    // may only show on the first read. Either way, no HTTP comes back.
    let anonymous = raw::tls_config(&weir.cert_pem, &[b"http/1.1"], None);
    let exchange = raw::exchange(weir.addr(), anonymous, b"", &get("/app/anonymous"), DEADLINE);
    assert_refused(&exchange, "no client certificate");

    let trusted = raw::tls_config(&weir.cert_pem, &[b"http/1.1"], Some(client_certificate(&ca)));
    let app = one_response(weir.addr(), &trusted, b"", &get("/app/x"));
    assert_eq!(app.status, 200, "{}", app.text());
    let script = one_response(weir.addr(), &trusted, b"", &get("/cgi-bin/whoami"));
    assert_eq!(script.status, 200, "{}", script.text());
    let text = script.text();
    let dn = field(&text, "dn").unwrap_or_default();
    assert!(dn.contains("CN=meter-0042"), "{text}");
    assert!(dn.contains("O=Water Utility"), "{text}");
    assert_eq!(field(&text, "verify"), Some("SUCCESS"), "{text}");

    let (_, stranger) = certificate_authority("Some Other CA");
    let untrusted = raw::tls_config(&weir.cert_pem, &[b"http/1.1"], Some(client_certificate(&stranger)));
    let exchange = raw::exchange(weir.addr(), untrusted, b"", &get("/app/untrusted"), DEADLINE);
    assert_refused(&exchange, "a certificate from an untrusted CA");

    let lines = recorded(&record);
    assert_eq!(lines, vec!["GET /app/x 0".to_string()], "{lines:?}");
}
