//! The edge–worker contract seen from outside: every head the edge admits reaches the worker
//! whole, and a worker's response can only be what HTTP and CGI/1.1 allow: no informational
//! status from code, no header a Handler or script smuggles past the framing, no internal header
//! a script sets itself.

use crate::support::client::{Client, Proto};
use crate::support::{h2, procs, raw, wait_until, Site, Weir};

/// A script that counts the `X-F…` request fields it was given, and tells the length of its
/// QUERY_STRING.
const COUNT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
                     echo \"fields=$(env | grep -c '^HTTP_X_F[0-9]')\"\n\
                     echo \"query=${#QUERY_STRING}\"\n";

/// What one exchange produced, whatever the protocol.
#[derive(Debug)]
struct Answer {
    status: u16,
    /// Names lowercased.
    headers: Vec<(String, String)>,
    body: String,
    /// How many responses came (HTTP/1.1 only: an interim one counts too).
    responses: usize,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// `GET target` with `fields` besides Host: over HTTP/1.1 as raw bytes (nothing tidies the
/// request or the response on the way), over h2 through hyper.
fn get(weir: &Weir, proto: Proto, target: &str, fields: &[(String, String)]) -> Answer {
    match proto {
        Proto::H1 => {
            let mut request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
            for (name, value) in fields {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            let client = Client::new(weir.addr(), &weir.cert_pem);
            let bytes = client.raw(request.as_bytes()).unwrap_or_else(|e| panic!("GET {target}: {e}"));
            let responses = raw::responses(&bytes).unwrap_or_else(|e| {
                panic!("GET {target}: {e}\n{}\n{}", String::from_utf8_lossy(&bytes), weir.logs())
            });
            let first = responses.first().unwrap_or_else(|| panic!("GET {target}: no response"));
            Answer {
                status: first.status,
                headers: first.headers.clone(),
                body: first.text(),
                responses: responses.len(),
            }
        }
        Proto::H2 => h2_get(weir, target, fields),
    }
}

fn h2_get(weir: &Weir, target: &str, fields: &[(String, String)]) -> Answer {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        tokio::time::timeout(std::time::Duration::from_secs(60), async {
            let mut sender = h2::connect(weir).await;
            let mut request = http::Request::builder().uri(format!("https://localhost{target}"));
            for (name, value) in fields {
                request = request.header(name.as_str(), value.as_str());
            }
            // The sender dropped at once: an empty body, ended.
            let (_, receiver) = tokio::sync::mpsc::channel(1);
            let request = request.body(h2::Fed(receiver)).expect("request");
            let response = sender.send_request(request).await.expect("h2 response");
            let (parts, body) = response.into_parts();
            let body = http_body_util::BodyExt::collect(body).await.expect("h2 body").to_bytes();
            Answer {
                status: parts.status.as_u16(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (n.as_str().to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned())
                    })
                    .collect(),
                body: String::from_utf8_lossy(&body).into_owned(),
                responses: 1,
            }
        })
        .await
        .expect("h2 exchange within a minute")
    })
}

/// `count` fields named `X-F0000`…, each `line` bytes long as a field line (name, colon, space
/// and value).
fn fields(count: usize, line: usize) -> Vec<(String, String)> {
    (0..count)
        .map(|i| {
            let name = format!("X-F{i:04}");
            let value = "v".repeat(line - name.len() - 2);
            (name, value)
        })
        .collect()
}

#[test]
fn every_head_the_edge_admits_reaches_a_script() {
    let site = Site::new();
    site.script("count", COUNT);
    let weir = site.start("");
    // The defaults: 100 fields of up to 8190 bytes, a request line of up to 8190. Host and
    // Connection are two of the hundred.
    let widest = fields(98, 8190);
    let answer = get(&weir, Proto::H1, "/cgi-bin/count", &widest);
    assert_eq!((answer.status, answer.body.as_str()), (200, "fields=98\nquery=0\n"), "{}", weir.logs());
    let h2_fields: Vec<_> = fields(99, 8000);
    let answer = get(&weir, Proto::H2, "/cgi-bin/count", &h2_fields);
    assert_eq!((answer.status, answer.body.as_str()), (200, "fields=99\nquery=0\n"), "h2\n{}", weir.logs());
    let query = "q".repeat(8190 - "GET /cgi-bin/count? HTTP/1.1".len());
    let longest = format!("/cgi-bin/count?{query}");
    let answer = get(&weir, Proto::H1, &longest, &[]);
    assert_eq!((answer.status, answer.body), (200, format!("fields=0\nquery={}\n", query.len())));

    // One past each limit is the edge's to refuse.
    let answer = get(&weir, Proto::H1, "/cgi-bin/count", &fields(99, 100));
    assert_eq!(answer.status, 431, "101 fields");
    let mut one_long = fields(1, 8191);
    one_long.extend(fields(3, 100));
    assert_eq!(get(&weir, Proto::H1, "/cgi-bin/count", &one_long).status, 431, "an 8191-byte field");
    assert_eq!(get(&weir, Proto::H1, &format!("{longest}q"), &[]).status, 414, "an 8191-byte line");
    drop(weir);

    // Raised limits are the worker's too.
    let site = Site::new();
    site.script("count", COUNT);
    let weir = site.start("LimitRequestFields 1000\nLimitRequestFieldSize 200\nLimitRequestLine 65536\n");
    let answer = get(&weir, Proto::H1, "/cgi-bin/count", &fields(998, 200));
    assert_eq!((answer.status, answer.body.as_str()), (200, "fields=998\nquery=0\n"), "{}", weir.logs());
    let answer = get(&weir, Proto::H2, "/cgi-bin/count", &fields(999, 150));
    assert_eq!((answer.status, answer.body.as_str()), (200, "fields=999\nquery=0\n"), "h2\n{}", weir.logs());
    let query = "q".repeat(65_000);
    let answer = get(&weir, Proto::H1, &format!("/cgi-bin/count?{query}"), &fields(998, 200));
    assert_eq!((answer.status, answer.body.as_str()), (200, "fields=998\nquery=65000\n"));
    assert_eq!(get(&weir, Proto::H1, "/cgi-bin/count", &fields(999, 100)).status, 431, "1001 fields");
    assert!(!weir.logs().contains("malformed request from the edge"), "{}", weir.logs());
}

/// A response whose interim status would be followed by the script's body, which a client
/// reads as the next response.
const EARLY_HINTS: &str =
    "#!/bin/sh\nprintf 'Status: 103 Early Hints\\r\\nLink: </s.css>; rel=preload\\r\\n\\r\\n'\n\
     printf 'HTTP/1.1 200 OK\\r\\nContent-Length: 9\\r\\nX-Smuggled: 1\\r\\n\\r\\nsmuggled\\n'\n";

#[test]
fn an_informational_status_from_code_is_a_502() {
    let site = Site::new().with_example("testapp");
    site.script("early", EARLY_HINTS);
    site.script(
        "continue",
        "#!/bin/sh\nprintf 'Status: 100 Continue\\r\\n\\r\\nHTTP/1.1 200 OK\\r\\n\\r\\n'\n",
    );
    site.script(
        "nph-switch",
        "#!/bin/sh\nprintf 'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: x\\r\\n\\r\\nraw'\n",
    );
    let weir = site.start("");
    for proto in [Proto::H1, Proto::H2] {
        for target in
            ["/cgi-bin/early", "/cgi-bin/continue", "/cgi-bin/nph-switch", "/app/respond?status=103"]
        {
            let answer = get(&weir, proto, target, &[]);
            assert_eq!((answer.status, answer.responses), (502, 1), "{proto:?} {target}: {answer:?}");
            assert!(answer.header("x-smuggled").is_none(), "{proto:?} {target}: {answer:?}");
            assert!(!answer.body.contains("smuggled"), "{proto:?} {target}: {answer:?}");
        }
    }
    // The worker says why, naming the script.
    let logged = wait_until(std::time::Duration::from_secs(5), || {
        std::fs::read_to_string(weir.path().join("error.log"))
            .is_ok_and(|log| log.contains("informational status") && log.contains("early"))
    });
    assert!(logged, "{}", weir.logs());
}

/// RFC 9110 defines no status class above 5xx, and clients differ on what such a code means: a
/// script or Handler that answers one gets a 5xx from weir, never its own code relayed.
#[test]
fn a_status_above_599_from_code_is_never_relayed() {
    let site = Site::new().with_example("testapp");
    site.script(
        "odd",
        "#!/bin/sh\nprintf 'Status: 999 Odd\\r\\nContent-Type: text/plain\\r\\n\\r\\nodd\\n'\n",
    );
    let weir = site.start("");
    for proto in [Proto::H1, Proto::H2] {
        for target in ["/cgi-bin/odd", "/app/respond?status=600"] {
            let answer = get(&weir, proto, target, &[]);
            assert!((500..=502).contains(&answer.status), "{proto:?} {target}: {answer:?}");
            assert!(!answer.body.contains("odd\n"), "{proto:?} {target}: {answer:?}");
        }
    }
}

/// `value` percent-encoded for a query.
fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn handler_header_names_and_values_are_checked_not_written_raw() {
    let weir = Site::new().with_example("testapp").start("");
    let respond =
        |name: &str, value: &str| format!("/app/respond?name={}&value={}", encode(name), encode(value));
    let bad = [
        ("X-Test", "a\r\nX-Injected: 1"),
        ("X-Test", "a\nX-Injected: 1"),
        ("X-Test", "a\rX-Injected: 1"),
        ("X-Test", "a\0b"),
        ("X-Test: a\r\nX-Injected", "1"),
        ("Bad Name", "x"),
        ("", "x"),
        ("X-Test(", "x"),
    ];
    for proto in [Proto::H1, Proto::H2] {
        for (name, value) in bad {
            let answer = get(&weir, proto, &respond(name, value), &[]);
            assert_eq!(answer.status, 500, "{proto:?} {name:?}: {value:?}: {answer:?}");
            assert_eq!(answer.responses, 1, "{proto:?} {name:?}: {value:?}: {answer:?}");
            assert!(answer.header("x-injected").is_none(), "{proto:?} {name:?}: {value:?}: {answer:?}");
        }
        // What is valid goes through as it was given (obs-text and inner tabs included).
        let answer = get(&weir, proto, &respond("X-Fine", "ok\tthen \u{e9}"), &[]);
        assert_eq!(answer.status, 200, "{proto:?}: {answer:?}");
        assert_eq!(answer.header("x-fine"), Some("ok\tthen \u{e9}"), "{proto:?}: {answer:?}");
    }
    let log = std::fs::read_to_string(weir.path().join("error.log")).unwrap_or_default();
    assert!(log.contains("AH02430") && log.contains("AH02429"), "{}", weir.logs());
}

#[test]
fn the_internal_headers_a_script_can_cause_are_cgis_own() {
    let site = Site::new().with_example("testapp");
    site.doc("secret.txt", b"SECRET\n");
    site.script(
        "forge",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nX-Weir-Local-Redirect: /secret.txt\\r\\n\
         X-WEIR-Worker-Pid: 1\\r\\nx-weir-ssl-cipher: forged\\r\\n\\r\\nscript body\\n'\n",
    );
    site.script("local", "#!/bin/sh\nprintf 'Location: /secret.txt\\r\\n\\r\\n'\n");
    site.script("relative", "#!/bin/sh\nprintf 'Location: //evil.example/secret.txt\\r\\n\\r\\n'\n");
    site.script(
        "with-fields",
        "#!/bin/sh\nprintf 'Location: /secret.txt\\r\\nContent-Type: text/html\\r\\n\\r\\nsee there\\n'\n",
    );
    site.script(
        "with-status",
        "#!/bin/sh\nprintf 'Status: 200 OK\\r\\nLocation: /secret.txt\\r\\n\\r\\nhere\\n'\n",
    );
    let d = site.path().display().to_string();
    let conf = site
        .config("")
        .replace(&format!("CustomLog {d}/access.log combined"), &format!("CustomLog {d}/access.log json"));
    let weir = site.start_with(&conf);
    for proto in [Proto::H1, Proto::H2] {
        // An internal header a script writes is dropped, never acted on.
        let answer = get(&weir, proto, "/cgi-bin/forge", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (200, "script body\n"), "{proto:?}: {answer:?}");
        assert!(answer.headers.iter().all(|(n, _)| !n.starts_with("x-weir")), "{proto:?}: {answer:?}");
        let handler = "/app/respond?name=X-Weir-Local-Redirect&value=/secret.txt";
        let answer = get(&weir, proto, handler, &[]);
        assert_eq!((answer.status, answer.body.as_str()), (200, "responded\n"), "{proto:?}: {answer:?}");

        // A local redirect is a Location with a local path and nothing else (RFC 3875 6.2.2).
        let answer = get(&weir, proto, "/cgi-bin/local", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (200, "SECRET\n"), "{proto:?}: {answer:?}");
        // `//host/…` is a URL for another host, not a local path: a client redirect, as sent.
        let answer = get(&weir, proto, "/cgi-bin/relative", &[]);
        assert_eq!(answer.status, 302, "{proto:?}: {answer:?}");
        assert_eq!(answer.header("location"), Some("//evil.example/secret.txt"), "{proto:?}");
        // With other fields it is a document with a Location, a client redirect; with a Status,
        // the status the script gave.
        let answer = get(&weir, proto, "/cgi-bin/with-fields", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (302, "see there\n"), "{proto:?}: {answer:?}");
        assert_eq!(answer.header("location"), Some("/secret.txt"), "{proto:?}");
        let answer = get(&weir, proto, "/cgi-bin/with-status", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (200, "here\n"), "{proto:?}: {answer:?}");
    }
    // The access log names the worker that answered, not the pid a script claimed.
    let forged = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(weir.path().join("access.log"))
            .unwrap_or_default()
            .lines()
            .filter_map(|line| serde_json::from_str(line).ok())
            .filter(|entry: &serde_json::Value| {
                entry["request"].as_str().is_some_and(|r| r.contains("/cgi-bin/forge"))
            })
            .collect()
    };
    let logged = wait_until(std::time::Duration::from_secs(10), || forged().len() == 2);
    let access = std::fs::read_to_string(weir.path().join("access.log")).unwrap_or_default();
    assert!(logged, "{access}\n{}", weir.logs());
    for entry in forged() {
        assert!(entry["worker_pid"].as_i64().is_some_and(|pid| pid > 1), "{entry}");
    }
}

#[test]
fn a_worker_that_read_the_largest_heads_gives_the_memory_back() {
    let site = Site::new();
    site.script("count", COUNT);
    let weir = site.start("StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nMaxRequestWorkers 1\n");
    let mut worker = 0;
    let one = wait_until(std::time::Duration::from_secs(10), || {
        let workers = weir.workers();
        worker = workers.first().map_or(0, |w| w.pid);
        workers.len() == 1
    });
    assert!(one, "expected one worker\n{}", weir.logs());
    // After one ordinary request, as a worker is once it has served.
    assert_eq!(get(&weir, Proto::H1, "/cgi-bin/count", &fields(3, 100)).status, 200);
    let before = procs::status_kib(worker, "VmRSS");
    for _ in 0..3 {
        let answer = get(&weir, Proto::H1, "/cgi-bin/count", &fields(98, 8190));
        assert_eq!((answer.status, answer.body.as_str()), (200, "fields=98\nquery=0\n"));
    }
    assert_eq!(weir.workers().first().map(|w| w.pid), Some(worker), "the same worker served them");
    let peak = procs::status_kib(worker, "VmHWM");
    let settled =
        wait_until(std::time::Duration::from_secs(6), || procs::status_kib(worker, "VmRSS") <= before + 64);
    let now = procs::status_kib(worker, "VmRSS");
    eprintln!("worker {worker}: VmRSS {before} KiB before, peak {peak}, {now} after");
    assert!(settled, "worker {worker} kept {now} KiB resident after three 800 KB heads ({before} before)");
}
