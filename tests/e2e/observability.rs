//! What operators and their tools read: server-status in Apache's formats, the access log in
//! Combined Log Format, and the error log in Apache's words.

use std::time::Duration;

use crate::support::client::{Client, Proto};
use crate::support::{wait_until, Site, Weir};

/// Apache 2.4 prefork's `?auto` fields, in Apache's order, after the host name line.
const AUTO_FIELDS: [&str; 29] = [
    "ServerVersion",
    "ServerMPM",
    "Server Built",
    "CurrentTime",
    "RestartTime",
    "ParentServerConfigGeneration",
    "ParentServerMPMGeneration",
    "ServerUptimeSeconds",
    "ServerUptime",
    "Load1",
    "Load5",
    "Load15",
    "Total Accesses",
    "Total kBytes",
    "Total Duration",
    "CPUUser",
    "CPUSystem",
    "CPUChildrenUser",
    "CPUChildrenSystem",
    "CPULoad",
    "Uptime",
    "ReqPerSec",
    "BytesPerSec",
    "BytesPerReq",
    "DurationPerReq",
    "BusyWorkers",
    "GracefulWorkers",
    "IdleWorkers",
    "Scoreboard",
];

/// Fields whose values Apache itself prints as text.
const TEXT_FIELDS: [&str; 7] = [
    "ServerVersion",
    "ServerMPM",
    "Server Built",
    "CurrentTime",
    "RestartTime",
    "ServerUptime",
    "Scoreboard",
];

/// Apache's scoreboard characters.
const SCOREBOARD_CHARS: &str = "_SRWKDCLGI.";

/// The combined format as log analysers (goaccess, fail2ban's apache filters) match it.
/// The request is any quoted string (as goaccess's `"%r"` and fail2ban take it): a malformed
/// request line is logged as sent, escaped, as Apache does.
const COMBINED: &str = r#"^(\S+) (\S+) (\S+) \[(\d{2})/(\w{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-]\d{4})\] "([^"\\]*(?:\\.[^"\\]*)*)" (\d{3}) (\d+|-) "([^"\\]*(?:\\.[^"\\]*)*)" "([^"\\]*(?:\\.[^"\\]*)*)"$"#;
/// A well-formed request's `%r`: method, target, protocol.
const REQUEST: &str = r#""[A-Z]+ \S+ HTTP/\d\.\d" "#;

fn auto(client: &Client) -> Vec<(String, String)> {
    let reply = client.get("/server-status?auto").unwrap();
    assert_eq!(reply.status, 200);
    let text = reply.text();
    let mut lines = text.lines();
    let host = lines.next().unwrap_or_default();
    assert!(!host.contains(':'), "the first line is the host name: {host:?}");
    // apache_exporter's rule: split each line at its first colon, trim the value.
    lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.to_string(), v.trim().to_string()))
        .collect()
}

fn value<'a>(fields: &'a [(String, String)], key: &str) -> &'a str {
    fields.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("no {key}"))
}

#[test]
fn server_status_auto_has_apaches_fields_in_order_and_counts_exactly() {
    let site = Site::new();
    site.doc("a.txt", b"hello");
    let weir = site.start("ServerTokens Prod\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let before = auto(&client);
    let keys: Vec<&str> = before.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(&keys[..AUTO_FIELDS.len()], &AUTO_FIELDS, "Apache's fields, in Apache's order");
    for (key, value) in &before {
        if TEXT_FIELDS.contains(&key.as_str()) {
            continue;
        }
        assert!(value.parse::<f64>().is_ok(), "{key}: {value:?} is not a number");
    }
    // apache_exporter: ServerVersion split on '/', the version has at least three dotted parts.
    let version = value(&before, "ServerVersion");
    assert!(version.ends_with(" (Unix)"), "{version}");
    let (product, rest) = version.split_once('/').expect("product/version");
    assert_eq!(product, "weir", "ServerVersion ignores ServerTokens Prod");
    let number = rest.split_whitespace().next().unwrap();
    assert!(
        number.split('.').count() >= 3 && number.split('.').all(|p| p.parse::<u32>().is_ok()),
        "{number}"
    );
    assert_eq!(value(&before, "ServerMPM"), "prefork");
    let board = value(&before, "Scoreboard");
    assert!(!board.is_empty() && board.chars().all(|c| SCOREBOARD_CHARS.contains(c)), "{board}");
    let idle: usize = value(&before, "IdleWorkers").parse().unwrap();
    assert_eq!(idle, board.chars().filter(|c| *c == '_').count());

    let made = 7;
    for _ in 0..made {
        assert_eq!(client.get("/a.txt").unwrap().status, 200);
    }
    let after = auto(&client);
    let count = |fields: &[(String, String)]| value(fields, "Total Accesses").parse::<u64>().unwrap();
    // The first status request is counted once it has finished; the second is still running.
    assert_eq!(count(&after) - count(&before), made + 1);
    for extra in
        ["QueueLength", "TLSHandshakes", "RejectedMalformed", "RecycledCrash", "SuggestedMaxRequestWorkers"]
    {
        let position = after.iter().position(|(k, _)| k == extra).unwrap_or_else(|| panic!("no {extra}"));
        assert!(position > AUTO_FIELDS.len() - 1, "{extra} comes after Scoreboard");
    }

    let json = client.get("/server-status?json").unwrap();
    let parsed: serde_json::Value = serde_json::from_str(&json.text()).expect("valid JSON");
    assert_eq!(parsed["mpm"], "prefork");
    assert!(parsed["total_accesses"].as_u64().unwrap() >= count(&after));
    assert!(parsed["workers"].as_array().is_some_and(|w| !w.is_empty()));

    let html = client.get("/server-status").unwrap().text();
    for expected in
        ["Server MPM: prefork", "Total accesses:", "Scoreboard Key", "PSS KiB", "Suggested MaxRequestWorkers"]
    {
        assert!(html.contains(expected), "{expected} missing from the HTML page");
    }
}

#[test]
fn server_status_is_local_only_and_forwarded_headers_cannot_fake_it() {
    let weir = Site::new().start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/server-status?auto").unwrap().status, 200);
    let raw = crate::support::raw::exchange(
        weir.addr(),
        crate::support::raw::tls_config(&weir.cert_pem, &[b"http/1.1"], None),
        b"",
        b"GET /server-status?auto HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(20),
    );
    assert!(raw.bytes.starts_with(b"HTTP/1.1 200"), "{}", raw.text());
    for spoof in ["X-Forwarded-For: 127.0.0.1", "Forwarded: for=127.0.0.1", "X-Real-IP: 127.0.0.1"] {
        let request = format!(
            "GET /server-status?auto HTTP/1.1\r\nHost: localhost\r\n{spoof}\r\nConnection: close\r\n\r\n"
        );
        let reply = from_127_0_0_2(&weir, request.as_bytes());
        assert!(reply.starts_with("HTTP/1.1 403"), "{spoof}: {reply}");
        assert!(!reply.contains("Total Accesses"), "{spoof} leaked the status");
    }
}

/// Sends a request over TLS from the source address 127.0.0.2.
fn from_127_0_0_2(weir: &Weir, request: &[u8]) -> String {
    use std::io::{Read, Write};
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.bind(&"127.0.0.2:0".parse::<std::net::SocketAddr>().unwrap().into()).unwrap();
    socket.connect(&weir.addr().into()).unwrap();
    let tcp: std::net::TcpStream = socket.into();
    tcp.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let config = crate::support::raw::tls_config(&weir.cert_pem, &[b"http/1.1"], None);
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let connection = rustls::ClientConnection::new(config, name).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    stream.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn access_log_lines_are_combined_log_format_for_every_kind_of_answer() {
    let site = Site::new().with_example("testapp");
    site.script(
        "fail",
        "#!/bin/sh\nprintf 'Status: 502 Upstream Gone\\r\\nContent-Type: text/plain\\r\\n\\r\\nno\\n'\n",
    );
    let weir = site.start(
        "LimitRequestBody 100\nMaxRequestWorkers 1\nStartServers 1\nMinSpareServers 1\nMaxSpareServers 2\nQueueTimeout 1\n",
    );
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/index.html").unwrap().status, 200);
    assert_eq!(client.request(Proto::H1, "POST", "/app/x", b"reading=1".to_vec()).unwrap().status, 200);
    assert_eq!(client.request(Proto::H1, "POST", "/app/x", vec![b'x'; 101]).unwrap().status, 413);
    assert_eq!(client.request(Proto::H2, "POST", "/app/h2", vec![b'x'; 101]).unwrap().status, 413);
    let bad = client.raw(b"GET /a b HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    assert!(bad.starts_with(b"HTTP/1.1 400"));
    assert_eq!(client.get("/cgi-bin/fail").unwrap().status, 502);
    // Occupy the one worker, then one more request waits out QueueTimeout: 503.
    let sleeper = {
        let client = client.clone();
        std::thread::spawn(move || client.get("/app/sleep?ms=3000"))
    };
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(weir.path().join("access.log")).is_ok_and(|_| true)
            && weir.workers().iter().any(|w| {
                std::fs::read_to_string(format!("/proc/{}/wchan", w.pid))
                    .is_ok_and(|c| c.contains("nanosleep"))
            })
    }));
    assert_eq!(client.get("/app/queued").unwrap().status, 503);
    assert_eq!(sleeper.join().unwrap().unwrap().status, 200);

    let pattern = regex_lite::Regex::new(COMBINED).unwrap();
    let expect = [
        "\" 200 ",
        "\"POST /app/x HTTP/1.1\" 200",
        "\"POST /app/x HTTP/1.1\" 413 ",
        "\"POST /app/h2 HTTP/2.0\" 413 ",
        "\" 400 ",
        "\" 502 ",
        "\" 503 ",
    ];
    let log = weir.path().join("access.log");
    assert!(
        wait_until(Duration::from_secs(5), || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            expect.iter().all(|e| text.contains(e))
        }),
        "{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let request = regex_lite::Regex::new(REQUEST).unwrap();
    for line in std::fs::read_to_string(&log).unwrap().lines() {
        assert!(pattern.is_match(line), "not Combined Log Format: {line}");
        assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
        assert!(line.contains("\"GET /a b HTTP/1.1\" 400") || request.is_match(line), "{line}");
    }
}

#[test]
fn error_log_uses_apaches_words_for_crashes_busy_pools_and_graceful_restarts() {
    let site = Site::new().with_example("testapp");
    let weir = site
        .start("MaxRequestWorkers 1\nStartServers 1\nMinSpareServers 1\nMaxSpareServers 2\nQueueTimeout 1\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let victim = weir.workers()[0].pid;
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(victim, libc::SIGSEGV) };
    let sleeper = {
        let client = client.clone();
        std::thread::spawn(move || client.get("/app/sleep?ms=2500"))
    };
    assert!(wait_until(Duration::from_secs(10), || weir.workers().iter().any(|w| {
        std::fs::read_to_string(format!("/proc/{}/wchan", w.pid)).is_ok_and(|c| c.contains("nanosleep"))
    })));
    assert_eq!(client.get("/app/x").unwrap().status, 503);
    let _ = sleeper.join();
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(weir.pid(), libc::SIGHUP) };
    let expected = [
        "[mpm_prefork:warn] [pid ".to_string(),
        format!("AH00052: child pid {victim} exit signal Segmentation fault (11)"),
        "server reached MaxRequestWorkers setting, consider raising the MaxRequestWorkers setting"
            .to_string(),
        "AH00171: Graceful restart requested, doing restart".to_string(),
        "AH00163: weir/".to_string(),
    ];
    assert!(
        wait_until(Duration::from_secs(15), || {
            let logs = weir.logs();
            expected.iter().all(|e| logs.contains(e.as_str())) && logs.matches("AH00163").count() >= 2
        }),
        "{}",
        weir.logs()
    );
    // Apache's line shape: [date] [module:level] [pid N] text.
    let line_shape = regex_lite::Regex::new(
        r"^\[\w{3} \w{3} \d{2} \d{2}:\d{2}:\d{2}\.\d{6} \d{4}\] \[\w+:(error|warn|notice|info|debug)\] \[pid \d+\] ",
    )
    .unwrap();
    let error_log = std::fs::read_to_string(weir.path().join("error.log")).unwrap();
    for line in error_log.lines().filter(|l| !l.is_empty()) {
        assert!(line_shape.is_match(line), "not Apache's error-log shape: {line}");
    }
}
