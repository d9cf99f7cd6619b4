//! One request checker for HTTP/1.1 and h2: the same limits, the same Host rules and the same
//! body limit, whichever protocol carries a request; an over-limit h2 body gets its 413 every
//! time; and h2 cookie fields reach scripts as one HTTP/1.1 `Cookie` would.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::client::Client;
use crate::support::h2::{self, RawH2, NO_ERROR};
use crate::support::raw;
use crate::support::{Site, Weir};

/// Prints its whole environment: one `NAME=value` line per meta-variable.
const ENV_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n";

/// Counts its request body.
const COUNT_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n";

const CURL: &str = "/usr/bin/curl";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// The status of one HTTP/1.1 request sent as raw bytes on its own connection.
fn h1_status(weir: &Weir, request: &str) -> u16 {
    let bytes = Client::new(weir.addr(), &weir.cert_pem).raw(request.as_bytes()).expect("raw exchange");
    let responses = raw::responses(&bytes).unwrap_or_else(|e| panic!("{e}\n{}", weir.logs()));
    responses.first().map_or(0, |r| r.status)
}

/// Fields as the raw h2 client takes them.
fn fields(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// The finding's numbers with the default limits (LimitRequestFields 100, LimitRequestFieldSize
/// and LimitRequestLine 8190), and each limit at its exact edge: an h2 request is measured as
/// the HTTP/1.1 request it stands for (`:authority` is its Host line, `name: value` a field
/// line, `METHOD :path HTTP/1.1` its request line), so both protocols give the same answer.
#[test]
fn fields_and_targets_are_limited_alike_over_http1_and_h2() {
    let weir = Site::new().with_example("testapp").start("");
    // "GET " + target + " HTTP/1.1" is 8190 bytes with an 8177-byte target.
    let target = |len: usize| format!("/app/{}", "t".repeat(len - 5));
    let cases: Vec<(&str, String, Shape, u16)> = vec![
        ("150 fields", "/app/f".into(), Shape::Lines(150), 431),
        ("one 20 KB field", "/app/f".into(), Shape::Long(20_000), 431),
        ("100 field lines", "/app/f".into(), Shape::Lines(100), 200),
        ("101 field lines", "/app/f".into(), Shape::Lines(101), 431),
        // "x-long: " + value is 8190 bytes with an 8182-byte value.
        ("a field line of 8190 bytes", "/app/f".into(), Shape::Long(8182), 200),
        ("a field line of 8191 bytes", "/app/f".into(), Shape::Long(8183), 431),
        ("a request line of 8190 bytes", target(8177), Shape::Plain, 200),
        ("a request line of 8191 bytes", target(8178), Shape::Plain, 414),
    ];
    let mut failures = Vec::new();
    for (name, path, shape, want) in &cases {
        // Over HTTP/1.1: Host, Connection: close and the rest; over h2, `:authority` and the rest.
        let mut request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (n, v) in shape.fields(2) {
            request.push_str(&format!("{n}: {v}\r\n"));
        }
        let h1 = h1_status(&weir, &(request + "\r\n"));
        let mut h2_fields = h2::get(path);
        h2_fields.extend(shape.fields(1));
        let h2 = runtime().block_on(h2::exchange(&weir, &h2_fields, None));
        eprintln!("{name:<32} want {want} HTTP/1.1 {h1} h2 {:?}", h2.status);
        if h1 != *want || h2.status != Some(*want) {
            failures.push(format!("{name}: want {want}, HTTP/1.1 {h1}, h2 {:?} ({})", h2.status, h2.frames));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The fields a limit case adds to a request.
enum Shape {
    /// Nothing more.
    Plain,
    /// As many fields as make this many field lines in all.
    Lines(usize),
    /// One `x-long` field with a value of this many bytes.
    Long(usize),
}

impl Shape {
    /// The fields to add to a request that already has `present` field lines.
    fn fields(&self, present: usize) -> Vec<(String, String)> {
        match self {
            Shape::Plain => Vec::new(),
            Shape::Lines(n) => (present..*n).map(|i| (format!("x-f{i}"), "v".to_string())).collect(),
            Shape::Long(len) => vec![("x-long".to_string(), "v".repeat(*len))],
        }
    }
}

/// `:authority u@evil.example` reached SERVER_NAME. A Host or `:authority` with userinfo, a
/// character outside a host name, or a bad port is refused with 400 over both protocols, as is
/// an `:authority` that a `host` field contradicts; none reaches a script.
#[test]
fn a_bad_authority_is_refused_over_both_protocols_and_never_reaches_server_name() {
    let site = Site::new();
    site.script("env", ENV_SCRIPT);
    let weir = site.start("");
    let h1 = |host: &str| {
        h1_status(&weir, &format!("GET /cgi-bin/env HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"))
    };
    let mut failures = Vec::new();
    // `local%68ost` is no authority to the `http` crate: the h2 layer resets the stream as
    // malformed (RFC 9113 8.1.1) before weir sees it. Every other one is weir's 400.
    let cases = [
        ("u@evil.example", false),
        ("u:p@localhost", false),
        ("localhost:99999", false),
        ("localhost:8x", false),
        ("local%68ost", true),
        ("localhost,evil.example", false),
        ("local!host", false),
    ];
    for (authority, malformed) in cases {
        let h1 = h1(authority);
        let mut request = h2::get("/cgi-bin/env");
        request[2].1 = authority.to_string();
        let h2 = runtime().block_on(h2::exchange(&weir, &request, None));
        eprintln!("{authority:<24} HTTP/1.1 {h1} h2 {:?} {}", h2.status, h2.frames);
        let refused = if malformed {
            h2.status.is_none() && h2.reset == Some(h2::PROTOCOL_ERROR)
        } else {
            h2.status == Some(400)
        };
        if h1 != 400 || !refused || h2.text().contains("SERVER_NAME") {
            failures.push(format!("{authority}: HTTP/1.1 {h1}, h2 {:?} {}", h2.status, h2.text()));
        }
    }
    // Both an `:authority` and a `host`: they must agree (RFC 9113 8.3.1).
    let mut request = h2::get("/cgi-bin/env");
    request.push(("host".into(), "evil.example".into()));
    let h2 = runtime().block_on(h2::exchange(&weir, &request, None));
    if h2.status != Some(400) {
        failures.push(format!(":authority localhost, host evil.example: h2 {:?} {}", h2.status, h2.text()));
    }
    // The control: a good authority, its port included, is the script's SERVER_NAME.
    let mut request = h2::get("/cgi-bin/env");
    request[2].1 = "LocalHost:8443".to_string();
    request.push(("host".into(), "localhost:8443".into()));
    let h2 = runtime().block_on(h2::exchange(&weir, &request, None));
    assert_eq!(h2.status, Some(200), "{}\n{}", h2.frames, weir.logs());
    assert!(h2.text().lines().any(|l| l == "SERVER_NAME=LocalHost"), "{}", h2.text());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// RFC 9113 8.2.3: h2 cookie fields become one `Cookie` joined with "; " before they reach an
/// HTTP/1.1 context: a script sees the same HTTP_COOKIE as from one HTTP/1.1 field. Crumbs count
/// as that one field against LimitRequestFields.
#[test]
fn h2_cookie_crumbs_reach_a_script_joined_with_semicolons() {
    let site = Site::new();
    site.script("env", ENV_SCRIPT);
    let weir = site.start("LimitRequestFields 5\n");
    let cookie = |text: &str| text.lines().find_map(|l| l.strip_prefix("HTTP_COOKIE=")).map(str::to_string);
    let bytes = Client::new(weir.addr(), &weir.cert_pem)
        .raw(b"GET /cgi-bin/env HTTP/1.1\r\nHost: localhost\r\nCookie: a=1; b=2; c=3; d=4; e=5; f=6\r\nConnection: close\r\n\r\n")
        .expect("raw exchange");
    let responses = raw::responses(&bytes).expect("a response");
    assert_eq!(cookie(&responses[0].text()).as_deref(), Some("a=1; b=2; c=3; d=4; e=5; f=6"));
    let mut request = h2::get("/cgi-bin/env");
    for crumb in ["a=1", "b=2", "c=3", "d=4", "e=5", "f=6"] {
        request.push(("cookie".into(), crumb.into()));
    }
    let h2 = runtime().block_on(h2::exchange(&weir, &request, None));
    assert_eq!(h2.status, Some(200), "{}\n{}", h2.frames, weir.logs());
    assert_eq!(cookie(&h2.text()).as_deref(), Some("a=1; b=2; c=3; d=4; e=5; f=6"), "{}", h2.text());
}

/// A site whose LimitRequestBody is 100,000 bytes, with a script that counts its body.
fn limited_site() -> Weir {
    let site = Site::new();
    site.script("count", COUNT_SCRIPT);
    site.start("LimitRequestBody 100000\n")
}

/// Over h2 an over-limit body got its 413 in 2 of 20 tries with curl, which otherwise reported
/// the stream closed without a status. Now it is 20 of 20, with a declared length and streamed;
/// and a body within the limit still goes through.
#[test]
fn curl_gets_an_h2_413_every_time_declared_or_streamed() {
    if !Path::new(CURL).exists() {
        if std::env::var("WEIR_REQUIRE_CURL").as_deref() == Ok("1") {
            panic!("{CURL} is missing and WEIR_REQUIRE_CURL=1");
        }
        eprintln!("skipping curl_gets_an_h2_413_every_time_declared_or_streamed: {CURL} is not installed");
        return;
    }
    let weir = limited_site();
    let big = weir.path().join("big.bin");
    std::fs::write(&big, vec![b'x'; 1_000_000]).unwrap();
    let small = weir.path().join("small.bin");
    std::fs::write(&small, vec![b'x'; 100_000]).unwrap();
    let url = format!("https://127.0.0.1:{}/cgi-bin/count", weir.addr().port());
    // `--data-binary @file` declares the length; `-T -` from a pipe streams it with none.
    let curl = |file: &Path, streamed: bool| {
        let mut command = Command::new(CURL);
        command.args([
            "--http2",
            "-k",
            "-s",
            "-S",
            "--max-time",
            "30",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ]);
        if streamed {
            command.args(["-X", "POST", "-T", "-"]).stdin(Stdio::from(std::fs::File::open(file).unwrap()));
        } else {
            command.arg("--data-binary").arg(format!("@{}", file.display())).stdin(Stdio::null());
        }
        let out = command.arg(&url).output().expect("run curl");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (text, out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    for streamed in [false, true] {
        let mut tally = std::collections::BTreeMap::new();
        for _ in 0..20 {
            let (answer, code, stderr) = curl(&big, streamed);
            *tally.entry(format!("{answer} exit {code:?} {}", stderr.trim())).or_insert(0) += 1;
        }
        eprintln!("streamed={streamed}: {tally:?}");
        assert_eq!(
            tally.get("413 2 exit Some(0) "),
            Some(&20),
            "streamed={streamed}: {tally:?}\n{}",
            weir.logs()
        );
        let (answer, code, stderr) = curl(&small, streamed);
        assert_eq!((answer.as_str(), code), ("200 2", Some(0)), "streamed={streamed}: {stderr}");
    }
}

/// The exact frames of an over-limit h2 body: the 413's HEADERS, its body ending the stream, and
/// only then the end of the request side: read to its end (or to a bound) and dropped, or a
/// RST_STREAM with NO_ERROR (RFC 9113 8.1), never any other code and never before the answer.
/// A body whose sender never ends it gets that RST_STREAM(NO_ERROR) within the bound.
#[test]
fn an_h2_413_comes_whole_before_the_request_stream_ends() {
    let weir = limited_site();
    let mut failures = Vec::new();
    for (what, declared) in [("declared", true), ("streamed", false)] {
        let outcome = runtime().block_on(async {
            let mut h2 = RawH2::connect(&weir).await;
            let mut request = h2::request("POST", "/cgi-bin/count");
            if declared {
                request.push(("content-length".into(), "1000000".into()));
            }
            h2.headers(1, &request, false).await;
            let sent = h2.data(1, 1_000_000, true, Duration::from_secs(10)).await;
            (sent, h2.finish(1, Duration::from_secs(15), Duration::from_secs(3)).await)
        });
        let (sent, outcome) = outcome;
        eprintln!("{what}: sent {sent}; {}", outcome.frames);
        let clean_end = matches!(outcome.reset, None | Some(NO_ERROR)) && !outcome.reset_first;
        if outcome.status != Some(413)
            || !outcome.complete
            || !outcome.text().contains("Payload Too Large")
            || !clean_end
            || outcome.goaway.is_some_and(|c| c != NO_ERROR)
        {
            failures.push(format!("{what}: {outcome:?}"));
        }
        // The edge read the rest of a 1 MB body (within its bound) instead of refusing it.
        if sent != 1_000_000 {
            failures.push(format!("{what}: only {sent} bytes of the body could be sent: {}", outcome.frames));
        }
    }
    // A body that never ends: the answer, then RST_STREAM(NO_ERROR) once the bound is reached.
    let outcome = runtime().block_on(async {
        let mut h2 = RawH2::connect(&weir).await;
        h2.headers(1, &h2::request("POST", "/cgi-bin/count"), false).await;
        h2.data(1, 200_000, false, Duration::from_secs(10)).await;
        h2.finish(1, Duration::from_secs(15), Duration::from_secs(15)).await
    });
    eprintln!("never ends: {}", outcome.frames);
    if outcome.status != Some(413)
        || !outcome.complete
        || outcome.reset != Some(NO_ERROR)
        || outcome.reset_first
    {
        failures.push(format!("never-ending body: {outcome:?}"));
    }
    assert!(failures.is_empty(), "{}\n{}", failures.join("\n"), weir.logs());
}

/// The same fields over HTTP/1.1 reach a script unchanged, and an `:authority` that fits is
/// no reason to refuse: the checker refuses only what HTTP/1.1 refuses.
#[test]
fn ordinary_h2_requests_pass_the_checker() {
    let site = Site::new();
    site.script("env", ENV_SCRIPT);
    let weir = site.start("");
    for authority in ["localhost", "127.0.0.1", "[::1]:443", "a-b.example_c~d:1"] {
        let mut request = h2::get("/cgi-bin/env?x=1");
        request[2].1 = authority.to_string();
        request.extend(fields(&[("user-agent", "t/1"), ("accept", "*/*"), ("x-custom", "v\tw")]));
        let h2 = runtime().block_on(h2::exchange(&weir, &request, None));
        assert_eq!(h2.status, Some(200), "{authority}: {}\n{}", h2.frames, weir.logs());
        assert!(h2.text().contains("HTTP_X_CUSTOM=v\tw"), "{}", h2.text());
    }
}

/// A response read slowly over h2 outlasts the idle limit (the header stage's longest wait or
/// KeepAliveTimeout): its stream is in flight until the last byte, so the connection is not
/// taken for idle and cut. It was cut at about 7 s here (16.6 of 20 MB read at 2 MB/s).
#[test]
fn a_slowly_read_h2_response_is_not_cut_as_idle() {
    if !Path::new(CURL).exists() {
        if std::env::var("WEIR_REQUIRE_CURL").as_deref() == Ok("1") {
            panic!("{CURL} is missing and WEIR_REQUIRE_CURL=1");
        }
        eprintln!("skipping a_slowly_read_h2_response_is_not_cut_as_idle: {CURL} is not installed");
        return;
    }
    const SIZE: usize = 9_000_000;
    let site = Site::new();
    site.script(
        "big",
        &format!("#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nhead -c {SIZE} /dev/zero\n"),
    );
    // Idle after max(header 2 s, KeepAliveTimeout 1 s); the download takes about 6 s.
    let weir = site.start("RequestReadTimeout handshake=5 header=1-2,MinRate=500\nKeepAliveTimeout 1\n");
    let url = format!("https://127.0.0.1:{}/cgi-bin/big", weir.addr().port());
    let output = Command::new(CURL)
        .args(["-sk", "--http2", "-o", "/dev/null", "-w", "%{http_version} %{http_code} %{size_download}"])
        .args(["--limit-rate", "1500K", "--max-time", "60", &url])
        .stderr(Stdio::null())
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert_eq!(text, format!("2 200 {SIZE}"), "curl exit {:?}\n{}", output.status.code(), weir.logs());
}
