//! CGI/1.1 through the pool: meta-variables, bodies, redirects, nph-, stderr, timeouts, refusals,
//! resource limits and PHP through `CGIInterpreter`.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::client::{Client, Proto};
use crate::support::{payload, procs, wait_until, Site};

const MIB: usize = 1024 * 1024;

/// Prints its whole environment: one `NAME=value` line per meta-variable.
const ENV_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n";

/// Sends its request body back unchanged.
const ECHO_SCRIPT: &str =
    "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nexec cat\n";

const PHP_CGI: &str = "/usr/bin/php-cgi";

/// A response read off the wire, for requests sent with `Client::raw`.
struct RawReply {
    status: u16,
    /// Header names lowercased, in order.
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl RawReply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` as-is over a new TLS connection and splits the answer into status, headers
/// and body (de-chunked when the server chose chunked framing).
fn send_raw(client: &Client, request: &[u8]) -> RawReply {
    let bytes = client.raw(request).expect("raw exchange");
    let split = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(&bytes)));
    let head = String::from_utf8_lossy(&bytes[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut reply = RawReply { status, headers, body: bytes[split + 4..].to_vec() };
    if reply.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")) {
        reply.body = dechunk(&reply.body);
    }
    reply
}

/// The payload of a chunked body.
fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = bytes.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size_text = String::from_utf8_lossy(&bytes[..line_end]);
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16).expect("chunk size");
        bytes = &bytes[line_end + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&bytes[..size]);
        bytes = &bytes[size + 2..];
    }
}

/// `env` output as a map. Later duplicates win, which never matters for the names checked.
fn env_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Live processes whose command line contains `needle`. Needles are full paths under this
/// test's directory or numbers no other test uses, since tests run side by side.
fn processes_matching(needle: &str) -> Vec<procs::Proc> {
    procs::all().into_iter().filter(|p| p.cmdline.contains(needle)).collect()
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|e| panic!("canonicalize {}: {e}", path.display()))
}

#[test]
fn meta_variables_follow_rfc_3875_and_resist_spoofing() {
    let site = Site::new();
    site.script("env", ENV_SCRIPT);
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let request = b"POST /cgi-bin/env/p/q?a=1 HTTP/1.1\r\n\
        Host: localhost\r\n\
        Content-Type: text/x-test\r\n\
        X-Custom: v\r\n\
        Authorization: Basic Zm9vOmJhcg==\r\n\
        X_Forwarded_For: 6.6.6.6\r\n\
        X-Forwarded-For: 7.7.7.7\r\n\
        X-Weir-SSL-Client-S-DN: CN=forged\r\n\
        Content-Length: 5\r\n\
        Connection: close\r\n\
        \r\n\
        hello";
    let reply = send_raw(&client, request);
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    let env = env_map(&text);
    let var = |name: &str| {
        env.get(name).map(String::as_str).unwrap_or_else(|| panic!("{name} missing from\n{text}"))
    };

    let port = weir.addr().port().to_string();
    for (name, expected) in [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        // ServerTokens defaults to Prod: no version.
        ("SERVER_SOFTWARE", "weir"),
        ("SERVER_NAME", "localhost"),
        ("SERVER_PORT", port.as_str()),
        ("REQUEST_METHOD", "POST"),
        ("QUERY_STRING", "a=1"),
        ("CONTENT_LENGTH", "5"),
        ("CONTENT_TYPE", "text/x-test"),
        ("SCRIPT_NAME", "/cgi-bin/env"),
        ("PATH_INFO", "/p/q"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("REQUEST_URI", "/cgi-bin/env/p/q?a=1"),
        ("HTTPS", "on"),
        ("SSL_PROTOCOL", "TLSv1.3"),
        ("SSL_CLIENT_VERIFY", "NONE"),
        ("HTTP_X_CUSTOM", "v"),
        // The edge owns X-Forwarded-For: the client's copy is replaced, not appended to.
        ("HTTP_X_FORWARDED_FOR", "127.0.0.1"),
    ] {
        assert_eq!(var(name), expected, "{name} in\n{text}");
    }
    let remote_port: u16 = var("REMOTE_PORT").parse().expect("REMOTE_PORT is a number");
    assert!(remote_port > 0);
    assert!(var("SSL_CIPHER").starts_with("TLS_"), "{text}");

    let htdocs = canonical(&weir.path().join("htdocs"));
    assert_eq!(canonical(Path::new(var("DOCUMENT_ROOT"))), htdocs);
    let translated = var("PATH_TRANSLATED");
    assert!(
        translated.ends_with("/p/q") && Path::new(translated).starts_with(&htdocs),
        "PATH_TRANSLATED={translated}, DocumentRoot {}",
        htdocs.display()
    );
    assert_eq!(canonical(Path::new(var("SCRIPT_FILENAME"))), canonical(&weir.path().join("cgi-bin/env")));

    // Credentials are not for scripts (RFC 3875 4.1.18), internal headers cannot be forged, and
    // a name with '_' cannot pose as the edge's X-Forwarded-For.
    assert!(!env.contains_key("HTTP_AUTHORIZATION"), "{text}");
    assert!(!env.contains_key("SSL_CLIENT_S_DN"), "{text}");
    for forged in ["6.6.6.6", "7.7.7.7", "CN=forged", "Zm9vOmJhcg=="] {
        assert!(!env.values().any(|v| v.contains(forged)), "{forged} reached the script:\n{text}");
    }

    // With ServerTokens Full the version is there.
    let site = Site::new();
    site.script("env", ENV_SCRIPT);
    let full = site.start("ServerTokens Full\n");
    let reply = Client::new(full.addr(), &full.cert_pem).get("/cgi-bin/env").unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    let env = env_map(&reply.text());
    let software = env.get("SERVER_SOFTWARE").expect("SERVER_SOFTWARE");
    assert!(software.starts_with("weir/"), "{software}");
}

#[test]
fn a_mebibyte_post_body_round_trips_through_a_script() {
    let site = Site::new();
    site.script("echo", ECHO_SCRIPT);
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let data = payload(MIB);
    for proto in [Proto::H1, Proto::H2] {
        let reply = client.request(proto, "POST", "/cgi-bin/echo", data.clone()).unwrap();
        assert_eq!(reply.status, 200, "{proto:?}: {}", reply.text());
        assert_eq!(reply.body.len(), MIB, "{proto:?}");
        assert!(reply.body == data, "{proto:?}: echoed body differs");
    }
}

#[test]
fn location_and_status_headers_redirect_and_set_the_status() {
    let site = Site::new();
    site.script("away", "#!/bin/sh\nprintf 'Location: https://example.com/elsewhere\\r\\n\\r\\n'\n");
    site.script(
        "gone",
        "#!/bin/sh\nprintf 'Status: 404 Gone Away\\r\\nContent-Type: text/plain\\r\\n\\r\\nnot here\\n'\n",
    );
    site.script("local", "#!/bin/sh\nprintf 'Location: /cgi-bin/target?x=1\\r\\n\\r\\n'\n");
    site.script(
        "target",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
         echo \"method=$REQUEST_METHOD query=$QUERY_STRING length=$CONTENT_LENGTH\"\n",
    );
    site.script("home", "#!/bin/sh\nprintf 'Location: /index.html\\r\\n\\r\\n'\n");
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);

    // An absolute URL is a client redirect: 302 unless the script says otherwise.
    let reply = client.get("/cgi-bin/away").unwrap();
    assert_eq!(reply.status, 302, "{}", reply.text());
    assert_eq!(reply.header("location"), Some("https://example.com/elsewhere"));

    let reply = client.get("/cgi-bin/gone").unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (404, "not here\n"));

    // A local path without Status is a local redirect (RFC 3875 6.2.2): the client gets the
    // target's response, fetched as a GET without the original body.
    for method in ["GET", "POST"] {
        let body = if method == "POST" { b"ignored".to_vec() } else { Vec::new() };
        let reply = client.request(Proto::H1, method, "/cgi-bin/local", body).unwrap();
        assert_eq!(
            (reply.status, reply.text().as_str()),
            (200, "method=GET query=x=1 length=\n"),
            "{method}"
        );
        assert_eq!(reply.header("location"), None, "{method}");
    }

    // The target of a local redirect may be a static file.
    let reply = client.get("/cgi-bin/home").unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "<h1>index</h1>\n"));
}

#[test]
fn nph_scripts_write_their_own_status_line() {
    let site = Site::new();
    site.script(
        "nph-raw",
        "#!/bin/sh\nprintf 'HTTP/1.1 202 Accepted\\r\\nContent-Type: text/plain\\r\\nX-Nph: yes\\r\\n\\r\\nnph body'\n",
    );
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get("/cgi-bin/nph-raw").unwrap();
    assert_eq!(reply.status, 202, "{}", reply.text());
    assert_eq!(reply.header("x-nph"), Some("yes"));
    assert_eq!(reply.text(), "nph body");
}

#[test]
fn script_stderr_goes_to_the_error_log_with_the_script_name() {
    let site = Site::new();
    site.script(
        "noisy",
        "#!/bin/sh\necho \"marker-$$ something broke\" >&2\n\
         printf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"pid=$$\"\n",
    );
    let weir = site.start("");
    let script = weir.path().join("cgi-bin/noisy").display().to_string();
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get("/cgi-bin/noisy").unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The pid makes the marker this request's own.
    let pid = reply.text().trim().strip_prefix("pid=").expect("pid line").to_string();
    let marker = format!("marker-{pid} something broke");
    let logged = wait_until(Duration::from_secs(10), || {
        weir.logs().lines().any(|line| line.contains(&marker) && line.contains(&script))
    });
    assert!(logged, "no log line with {marker:?} and {script}\n{}", weir.logs());
}

#[test]
fn timeout_kills_the_scripts_whole_process_group() {
    let site = Site::new();
    // Two sleeps with numbers no other test uses: one in the background, one in the foreground.
    site.script("hang", "#!/bin/sh\nsleep 3600.4242 &\nsleep 3600.4243\n");
    let weir = site.start("Timeout 2\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let started = Instant::now();
    let request = std::thread::spawn(move || client.get("/cgi-bin/hang"));
    // Both must have been running, or their absence afterwards would prove nothing.
    assert!(
        wait_until(Duration::from_secs(10), || {
            !processes_matching("3600.4242").is_empty() && !processes_matching("3600.4243").is_empty()
        }),
        "the script's sleeps never started\n{}",
        weir.logs()
    );
    let reply = request.join().unwrap().expect("an answer");
    let took = started.elapsed();
    assert_eq!(reply.status, 504, "{}", reply.text());
    assert!(took < Duration::from_secs(10), "504 took {took:?}");
    let gone = wait_until(Duration::from_secs(10), || {
        processes_matching("3600.4242").is_empty() && processes_matching("3600.4243").is_empty()
    });
    assert!(
        gone,
        "left running after the timeout: {:?} {:?}",
        processes_matching("3600.4242"),
        processes_matching("3600.4243")
    );
}

#[test]
fn non_executable_scripts_and_escapes_from_the_script_directory_are_refused() {
    let site = Site::new();
    // Scripts run as the unprivileged account when the tests run as root: give them a place to
    // leave a mark.
    let marks = site.path().join("marks");
    std::fs::create_dir(&marks).unwrap();
    std::fs::set_permissions(&marks, std::fs::Permissions::from_mode(0o777)).unwrap();
    let ran = marks.join("plain-ran");
    let control_ran = marks.join("control-ran");
    std::fs::write(
        site.path().join("cgi-bin/plain"),
        format!("#!/bin/sh\ntouch {}\nprintf 'Content-Type: text/plain\\r\\n\\r\\nran\\n'\n", ran.display()),
    )
    .unwrap();
    std::fs::set_permissions(site.path().join("cgi-bin/plain"), std::fs::Permissions::from_mode(0o644))
        .unwrap();
    // The same script, executable: shows the mark would be there if the script had run.
    site.script(
        "control",
        &format!(
            "#!/bin/sh\ntouch {}\nprintf 'Content-Type: text/plain\\r\\n\\r\\nran\\n'\n",
            control_ran.display()
        ),
    );
    site.doc("run-me", b"#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nescaped\\n'\n");
    std::fs::set_permissions(site.path().join("htdocs/run-me"), std::fs::Permissions::from_mode(0o755))
        .unwrap();
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);

    let reply = client.get("/cgi-bin/control").unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(control_ran.exists(), "the control script left no mark");

    let reply = client.get("/cgi-bin/plain").unwrap();
    assert_eq!(reply.status, 403, "{}", reply.text());
    assert!(!ran.exists(), "the non-executable script ran");

    for path in [
        "/cgi-bin/../htdocs/index.html",
        "/cgi-bin/../htdocs/run-me",
        "/cgi-bin/%2e%2e/x",
        "/cgi-bin/%2e%2e/htdocs/run-me",
        "/cgi-bin/..%2fhtdocs%2frun-me",
    ] {
        let reply = client.get(path).unwrap();
        assert!(reply.status == 403 || reply.status == 404, "{path}: {} {}", reply.status, reply.text());
        let text = reply.text();
        assert!(!text.contains("<h1>index</h1>") && !text.contains("escaped"), "{path}: {text}");
    }
}

#[test]
fn rlimit_cpu_stops_a_script_that_spins() {
    let site = Site::new();
    site.script("spin", "#!/bin/sh\nwhile :; do :; done\n");
    let weir = site.start("RLimitCPU 1\n");
    let script = weir.path().join("cgi-bin/spin").display().to_string();
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let started = Instant::now();
    let reply = client.get("/cgi-bin/spin").unwrap();
    let took = started.elapsed();
    assert!([500, 502, 504].contains(&reply.status), "{} {}", reply.status, reply.text());
    // The default Timeout is 20 s: an answer well before that is the CPU limit's doing.
    assert!(took < Duration::from_secs(20), "answer took {took:?}");
    assert!(
        wait_until(Duration::from_secs(10), || processes_matching(&script).is_empty()),
        "the spinning script is still running: {:?}",
        processes_matching(&script)
    );
}

#[test]
fn php_runs_through_php_cgi() {
    if !Path::new(PHP_CGI).exists() {
        if std::env::var("WEIR_REQUIRE_PHP").as_deref() == Ok("1") {
            panic!("{PHP_CGI} is missing and WEIR_REQUIRE_PHP=1");
        }
        eprintln!("skipping php_runs_through_php_cgi: {PHP_CGI} is not installed");
        return;
    }
    let site = Site::new();
    site.doc(
        "app/info.php",
        br#"<?php header('X-From-PHP: 1'); echo "php ok ", $_SERVER['REQUEST_METHOD'], " ", $_GET['x'] ?? '', " ", $_SERVER['SCRIPT_NAME'], " ", $_SERVER['PATH_INFO'] ?? '', "\n";"#,
    );
    site.doc("app/index.php", br#"<?php echo "index via php\n";"#);
    site.doc("app/post.php", br#"<?php echo "posted ", $_POST['x'] ?? 'nothing', "\n";"#);
    // In cgi-bin and not executable: the interpreter runs it all the same.
    std::fs::write(
        site.path().join("cgi-bin/t.php"),
        r#"<?php echo "cgi-bin php ", $_SERVER['SCRIPT_NAME'], "\n";"#,
    )
    .unwrap();
    let weir = site.start(&format!("CGIInterpreter .php {PHP_CGI}\nDirectoryIndex index.php index.html\n"));
    let client = Client::new(weir.addr(), &weir.cert_pem);

    let reply = client.get("/app/info.php/extra?x=5").unwrap();
    let text = reply.text();
    assert_eq!(reply.status, 200, "{text}");
    assert_eq!(reply.header("x-from-php"), Some("1"));
    assert_eq!(text, "php ok GET 5 /app/info.php /extra\n");

    let reply = client.get("/app/").unwrap();
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.text(), "index via php\n");

    let reply = send_raw(
        &client,
        b"POST /app/post.php HTTP/1.1\r\nHost: localhost\r\n\
          Content-Type: application/x-www-form-urlencoded\r\n\
          Content-Length: 3\r\nConnection: close\r\n\r\nx=7",
    );
    assert_eq!((reply.status, reply.text().as_str()), (200, "posted 7\n"));

    let reply = client.get("/cgi-bin/t.php").unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "cgi-bin php /cgi-bin/t.php\n"));

    // Source is never sent, whichever way a file is reached.
    for path in ["/app/info.php", "/app/", "/app/index.php", "/cgi-bin/t.php"] {
        let reply = client.get(path).unwrap();
        assert!(!reply.text().contains("<?php"), "{path} sent its source");
    }
}
