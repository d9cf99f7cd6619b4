//! Basic authentication and the Require containers, against password files the real
//! `htpasswd` (apache2-utils) wrote: each format, h1 and h2, the realm, the user in a script's
//! environment and the password kept from it, Apache's container semantics, the failed-attempt
//! block, configtest's refusals, and static files served on time through a password flood.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::attack::{self, Dial};
use crate::support::client::{Client, Proto, Reply};
use crate::support::{wait_until, weir_command, Site};

const HTPASSWD: &str = "htpasswd";

/// Whether `htpasswd` runs here; without it the test is skipped, unless WEIR_REQUIRE_HTPASSWD=1.
fn have_htpasswd() -> bool {
    let present =
        Command::new(HTPASSWD).arg("-nbB").arg("u").arg("p").output().is_ok_and(|o| o.status.success());
    if !present {
        assert_ne!(
            std::env::var("WEIR_REQUIRE_HTPASSWD").as_deref(),
            Ok("1"),
            "{HTPASSWD} is missing and WEIR_REQUIRE_HTPASSWD=1"
        );
        eprintln!("skipped: {HTPASSWD} (apache2-utils) is not installed");
    }
    present
}

/// `htpasswd -b [-c] <flags> file user password`, as an operator runs it.
fn htpasswd(file: &Path, flags: &[&str], user: &str, password: &str) {
    let mut command = Command::new(HTPASSWD);
    if !file.exists() {
        command.arg("-c");
    }
    let output = command.arg("-b").args(flags).arg(file).arg(user).arg(password).output().expect("htpasswd");
    assert!(output.status.success(), "htpasswd {flags:?}: {}", String::from_utf8_lossy(&output.stderr));
}

/// bob (bcrypt), sam (SHA-1), amy (apr1-MD5), all with the password "secret"; and, where this
/// htpasswd writes SHA-crypt (-2, -5), sue and sid too.
fn users(site: &Site) -> std::path::PathBuf {
    let file = site.path().join("users");
    htpasswd(&file, &["-B"], "bob", "secret");
    htpasswd(&file, &["-s"], "sam", "secret");
    htpasswd(&file, &["-m"], "amy", "secret");
    if sha_crypt_written() {
        htpasswd(&file, &["-2"], "sue", "secret");
        htpasswd(&file, &["-5"], "sid", "secret");
    }
    file
}

/// Whether this htpasswd has -2 and -5 (Apache 2.4.59 and later).
fn sha_crypt_written() -> bool {
    Command::new(HTPASSWD).args(["-nb5", "u", "p"]).output().is_ok_and(|o| o.status.success())
}

fn basic(user: &str, password: &str) -> String {
    let text = format!("{user}:{password}");
    format!("Basic {}", base64(text.as_bytes()))
}

/// Standard base64, small enough to write out rather than add a test dependency.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

const REALM: &str = "Meter \\\"A\\\" admin";

fn protected(file: &Path) -> String {
    let f = file.display();
    format!(
        "<Location /private>\n AuthType Basic\n AuthName \"{REALM}\"\n AuthBasicProvider file\n AuthUserFile {f}\n Require valid-user\n</Location>\n"
    )
}

fn get(client: &Client, proto: Proto, path: &str, authorization: Option<&str>) -> Reply {
    let headers: Vec<(&str, &str)> = authorization.map(|a| ("authorization", a)).into_iter().collect();
    client.request_with(proto, "GET", path, &headers, Vec::new()).expect("request")
}

#[test]
fn each_htpasswd_format_right_wrong_and_unknown_over_h1_and_h2() {
    if !have_htpasswd() {
        return;
    }
    let site = Site::new();
    let file = users(&site);
    site.doc("private/report.txt", b"the report\n");
    let weir = site.start(&format!("AuthFailureBlock Off\n{}", protected(&file)));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for proto in [Proto::H1, Proto::H2] {
        let asked = get(&client, proto, "/private/report.txt", None);
        assert_eq!(asked.status, 401, "{proto:?}");
        assert_eq!(
            asked.header("www-authenticate"),
            Some("Basic realm=\"Meter \\\"A\\\" admin\""),
            "{proto:?}"
        );
        assert!(!asked.text().contains("the report"));
        let mut users = vec!["bob", "sam", "amy"];
        if sha_crypt_written() {
            users.extend(["sue", "sid"]);
        }
        for user in users {
            let right = get(&client, proto, "/private/report.txt", Some(&basic(user, "secret")));
            assert_eq!((right.status, right.text().as_str()), (200, "the report\n"), "{user} {proto:?}");
            let wrong = get(&client, proto, "/private/report.txt", Some(&basic(user, "Secret")));
            assert_eq!(wrong.status, 401, "{user} {proto:?}");
            assert!(wrong.header("www-authenticate").is_some_and(|v| v.starts_with("Basic realm=")));
            assert!(!wrong.text().contains("the report"));
        }
        let unknown = get(&client, proto, "/private/report.txt", Some(&basic("mallory", "secret")));
        assert_eq!(unknown.status, 401, "{proto:?}");
        let other_scheme = get(&client, proto, "/private/report.txt", Some("Bearer abc"));
        assert_eq!(other_scheme.status, 401, "{proto:?}");
        assert_eq!(get(&client, proto, "/index.html", None).status, 200, "outside the section");
    }
    // The access log names the user (%u), also the one whose password was wrong, never a password.
    let log_path = weir.path().join("access.log");
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(&log_path)
            .is_ok_and(|log| log.contains("mallory"))),
        "access log"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.lines().any(|l| l.contains(" - bob [") && l.contains("\" 200 ")), "{log}");
    assert!(log.lines().any(|l| l.contains(" - sam [") && l.contains("\" 401 ")), "{log}");
    assert!(log.lines().any(|l| l.starts_with("127.0.0.1 - - [") && l.contains("\" 401 ")), "{log}");
    assert!(!log.contains("secret") && !log.contains("Secret"), "{log}");
}

#[test]
fn the_user_reaches_scripts_and_the_password_does_not() {
    if !have_htpasswd() {
        return;
    }
    let site = Site::new();
    let file = users(&site);
    let env = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\necho \"user=$REMOTE_USER type=$AUTH_TYPE auth=$HTTP_AUTHORIZATION\"\n";
    site.script("env", env);
    site.script("env-pass", env);
    site.script("open", env);
    let f = file.display();
    let weir = site.start(&format!(
        "<Location /cgi-bin/env>\n AuthType Basic\n AuthName scripts\n AuthUserFile {f}\n Require user bob amy\n</Location>\n\
         <Location /cgi-bin/env-pass>\n CGIPassAuth On\n</Location>\n"
    ));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for proto in [Proto::H1, Proto::H2] {
        let forged = [("authorization", basic("bob", "secret")), ("x-weir-remote-user", "admin".to_string())];
        let headers: Vec<(&str, &str)> = forged.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let reply = client.request_with(proto, "GET", "/cgi-bin/env", &headers, Vec::new()).unwrap();
        assert_eq!((reply.status, reply.text().as_str()), (200, "user=bob type=Basic auth=\n"), "{proto:?}");
        // CGIPassAuth On: the script sees the header, as Apache passes it.
        let reply = client.request_with(proto, "GET", "/cgi-bin/env-pass", &headers, Vec::new()).unwrap();
        let expected = format!("user=bob type=Basic auth={}\n", basic("bob", "secret"));
        assert_eq!((reply.status, reply.text()), (200, expected), "{proto:?}");
        // A user the file knows but the rule does not name: 401, as Apache answers.
        let sam = get(&client, proto, "/cgi-bin/env", Some(&basic("sam", "secret")));
        assert_eq!(sam.status, 401, "{proto:?}");
        assert_eq!(sam.header("www-authenticate"), Some("Basic realm=\"scripts\""));
        // No authentication here: a client's claim is no user, and its credentials stay hidden.
        let reply = client.request_with(proto, "GET", "/cgi-bin/open", &headers, Vec::new()).unwrap();
        assert_eq!((reply.status, reply.text().as_str()), (200, "user= type= auth=\n"), "{proto:?}");
    }
}

#[test]
fn require_containers_follow_apache() {
    if !have_htpasswd() {
        return;
    }
    attack::raise_nofile_limit();
    let site = Site::new();
    let file = users(&site);
    for dir in ["lan", "nolan", "any", "none", "lines"] {
        site.doc(&format!("{dir}/x.txt"), dir.as_bytes());
    }
    let f = file.display();
    let auth = format!("AuthType Basic\nAuthName r\nAuthUserFile {f}\n");
    let weir = site.start(&format!(
        "AuthFailureBlock Off\n\
         <Location /lan>\n{auth}<RequireAll>\nRequire ip 127.0.0.0/8\nRequire valid-user\n</RequireAll>\n</Location>\n\
         <Location /nolan>\n{auth}<RequireAll>\nRequire ip 10.0.0.0/8\nRequire valid-user\n</RequireAll>\n</Location>\n\
         <Location /any>\n{auth}<RequireAny>\nRequire ip 127.0.0.1\nRequire user bob\n</RequireAny>\n</Location>\n\
         <Location /none>\n{auth}<RequireAll>\nRequire valid-user\n<RequireNone>\nRequire user sam\nRequire ip 127.0.0.3\n</RequireNone>\n</RequireAll>\n</Location>\n\
         <Location /lines>\n{auth}Require ip 127.0.0.2\nRequire user amy\n</Location>\n"
    ));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let status = |from: &str, path: &str, user: Option<&str>| -> u16 {
        let authorization =
            user.map(|u| format!("authorization: {}\r\n", basic(u, "secret"))).unwrap_or_default();
        let request =
            format!("GET {path} HTTP/1.1\r\nhost: localhost\r\n{authorization}connection: close\r\n\r\n");
        runtime.block_on(async {
            let dial = Dial { from: Some(from.parse().unwrap()), ..Dial::default() };
            let config = attack::tls_config(&weir.cert_pem);
            let mut stream = attack::tls_connect_with(weir.addr(), &config, dial).await.expect("connect");
            attack::exchange(&mut stream, request.as_bytes()).await.expect("exchange").status
        })
    };
    // All: the address and a user; from elsewhere no password helps (403, never asked).
    assert_eq!(status("127.0.0.1", "/lan/x.txt", None), 401);
    assert_eq!(status("127.0.0.1", "/lan/x.txt", Some("sam")), 200);
    assert_eq!(status("127.0.0.1", "/nolan/x.txt", None), 403);
    assert_eq!(status("127.0.0.1", "/nolan/x.txt", Some("bob")), 403);
    // Any: the address alone, or bob from anywhere.
    assert_eq!(status("127.0.0.1", "/any/x.txt", None), 200);
    assert_eq!(status("127.0.0.2", "/any/x.txt", None), 401);
    assert_eq!(status("127.0.0.2", "/any/x.txt", Some("bob")), 200);
    assert_eq!(status("127.0.0.2", "/any/x.txt", Some("amy")), 401);
    // None inside All: any user but sam, from anywhere but 127.0.0.3.
    assert_eq!(status("127.0.0.2", "/none/x.txt", Some("bob")), 200);
    assert_eq!(status("127.0.0.2", "/none/x.txt", Some("sam")), 401);
    assert_eq!(status("127.0.0.3", "/none/x.txt", None), 403);
    assert_eq!(status("127.0.0.3", "/none/x.txt", Some("bob")), 403);
    // Several Require lines: an implicit RequireAny.
    assert_eq!(status("127.0.0.2", "/lines/x.txt", None), 200);
    assert_eq!(status("127.0.0.4", "/lines/x.txt", None), 401);
    assert_eq!(status("127.0.0.4", "/lines/x.txt", Some("amy")), 200);
    assert_eq!(status("127.0.0.4", "/lines/x.txt", Some("bob")), 401);
}

#[test]
fn failed_attempts_block_their_source_and_no_other() {
    if !have_htpasswd() {
        return;
    }
    let site = Site::new();
    let file = users(&site);
    site.doc("private/x.txt", b"x");
    let weir = site.start(&format!("AuthFailureBlock 3 60\n{}", protected(&file)));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let ask = |from: &str, password: &str| {
        let request = format!(
            "GET /private/x.txt HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\nconnection: close\r\n\r\n",
            basic("bob", password)
        );
        runtime.block_on(async {
            let dial = Dial { from: Some(from.parse().unwrap()), ..Dial::default() };
            let config = attack::tls_config(&weir.cert_pem);
            let mut stream = attack::tls_connect_with(weir.addr(), &config, dial).await.expect("connect");
            attack::exchange(&mut stream, request.as_bytes()).await.expect("exchange")
        })
    };
    for _ in 0..3 {
        assert_eq!(ask("127.0.0.2", "guess").status, 401);
    }
    let blocked = ask("127.0.0.2", "secret");
    assert_eq!(blocked.status, 429, "the right password is not even checked once blocked");
    let retry: u64 = blocked.header("retry-after").and_then(|v| v.parse().ok()).expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(ask("127.0.0.2", "guess").status, 429);
    assert_eq!(ask("127.0.0.3", "secret").status, 200, "another source is not blocked");
    assert!(
        wait_until(Duration::from_secs(10), || weir.logs().contains("client 127.0.0.2 blocked for 60 s")),
        "one error-log line for the block\n{}",
        weir.logs()
    );
    assert_eq!(weir.logs().matches("blocked for 60 s").count(), 1, "{}", weir.logs());
}

#[test]
fn the_password_file_is_read_again_on_reload() {
    if !have_htpasswd() {
        return;
    }
    let site = Site::new();
    let file = users(&site);
    site.doc("private/x.txt", b"x");
    let weir = site.start(&format!("AuthFailureBlock Off\n{}", protected(&file)));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(get(&client, Proto::H1, "/private/x.txt", Some(&basic("new", "pw"))).status, 401);
    htpasswd(&file, &["-B"], "new", "pw");
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(weir.pid(), libc::SIGHUP) };
    assert!(
        wait_until(Duration::from_secs(30), || {
            get(&client, Proto::H1, "/private/x.txt", Some(&basic("new", "pw"))).status == 200
        }),
        "the new user was not let in after the reload\n{}",
        weir.logs()
    );
}

#[test]
fn configtest_refuses_a_crypt_line_and_a_missing_file() {
    if !have_htpasswd() {
        return;
    }
    let site = Site::new();
    let file = users(&site);
    htpasswd(&file, &["-d"], "old", "secret");
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config(&protected(&file))).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text.lines().position(|l| l.starts_with("old:")).expect("the crypt line") + 1;
    let expected =
        format!("AuthUserFile '{}' line {line}: user 'old' has a crypt(3) DES hash", file.display());
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("htpasswd -B"), "{stderr}");
    let missing = site.path().join("no-such-users");
    std::fs::write(&conf, site.config(&protected(&missing))).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(&format!("AuthUserFile '{}' cannot be read", missing.display())), "{stderr}");
    // A rule that wants a user where no password file applies is refused with its line.
    std::fs::write(&conf, site.config("<Location /p>\nRequire valid-user\n</Location>\n")).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("<Location /p> requires a user, but no AuthType Basic applies"), "{stderr}");
}

/// 200 wrong passwords a second for 10 s, spread over sources that are never blocked (the
/// block is off), against bcrypt hashes of cost 10: far more checking than the machine can do.
/// A probe from another source keeps getting static files on time, the flood gets 401 or an
/// immediate 503 with Retry-After, and never a stalled answer.
#[test]
fn a_flood_of_wrong_passwords_does_not_stall_static_files() {
    if !have_htpasswd() {
        return;
    }
    attack::raise_nofile_limit();
    let site = Site::new();
    let file = site.path().join("users");
    htpasswd(&file, &["-B", "-C", "10"], "bob", "secret");
    site.doc("private/x.txt", b"x");
    site.doc("static.txt", b"static");
    let weir = site.start(&format!("AuthFailureBlock Off\n{}", protected(&file)));
    let addr = weir.addr();
    let config = attack::tls_config(&weir.cert_pem);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let (probe, flood) = runtime.block_on(async move {
        let until = Instant::now() + Duration::from_secs(10);
        // 40 keep-alive connections from 127.0.0.10-49, each paced at 5 requests a second.
        let mut floods = Vec::new();
        for n in 0..40u8 {
            let config = config.clone();
            floods.push(tokio::spawn(flood_connection(
                addr,
                config,
                IpAddr::from([127, 0, 0, 10 + n]),
                until,
            )));
        }
        let probe = tokio::spawn(probe_static(addr, config.clone(), until));
        let mut counts = [0usize; 4];
        for flood in floods {
            let c = flood.await.expect("flood task");
            for (total, n) in counts.iter_mut().zip(c) {
                *total += n;
            }
        }
        (probe.await.expect("probe task"), counts)
    });
    let [unauthorized, busy, other, stalled] = flood;
    let (answered, mut latencies) = probe;
    latencies.sort();
    let worst = *latencies.last().expect("probe samples");
    let p99 = attack::percentile(&latencies, 99);
    eprintln!(
        "flood: {unauthorized} x 401, {busy} x 503, {other} other, {stalled} stalled; probe: {answered} x 200, median {:?}, p99 {p99:?}, worst {worst:?}",
        attack::percentile(&latencies, 50)
    );
    assert!(unauthorized + busy > 1000, "the flood was not sent: {flood:?}");
    assert_eq!((other, stalled), (0, 0), "only 401 and 503, each on time: {flood:?}\n{}", weir.logs());
    assert!(busy > 0, "the concurrency cap answered no 503 under a flood it cannot check: {flood:?}");
    assert!(answered >= 80, "the probe got {answered} answers");
    assert!(
        p99 < Duration::from_millis(500) && worst < Duration::from_secs(2),
        "static p99 {p99:?}, worst {worst:?}"
    );
}

/// Sends wrong passwords on one keep-alive connection from `from` until `until`, five a second:
/// counts of 401, 503 (with Retry-After), other answers, and answers slower than 5 s.
async fn flood_connection(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    from: IpAddr,
    until: Instant,
) -> [usize; 4] {
    let mut counts = [0usize; 4];
    let request = format!(
        "GET /private/x.txt HTTP/1.1\r\nhost: localhost\r\nauthorization: {}\r\n\r\n",
        basic("bob", "wrong")
    );
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let dial = Dial { from: Some(from), ..Dial::default() };
    let Ok(mut stream) = attack::tls_connect_with(addr, &config, dial).await else {
        counts[2] += 1;
        return counts;
    };
    while Instant::now() < until {
        tick.tick().await;
        let sent = Instant::now();
        match attack::exchange(&mut stream, request.as_bytes()).await {
            Ok(reply) if reply.status == 401 => counts[0] += 1,
            Ok(reply) if reply.status == 503 && reply.header("retry-after").is_some() => counts[1] += 1,
            _ => {
                counts[2] += 1;
                return counts;
            }
        }
        if sent.elapsed() > Duration::from_secs(5) {
            counts[3] += 1;
        }
    }
    counts
}

/// GETs a static file every 50 ms from 127.0.0.9, a new connection each time: how many were
/// answered 200, and how long each took.
async fn probe_static(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    until: Instant,
) -> (usize, Vec<Duration>) {
    let mut latencies = Vec::new();
    let mut answered = 0;
    let dial = Dial { from: Some(IpAddr::from([127, 0, 0, 9])), ..Dial::default() };
    // Past the first second, when the flood is in full swing.
    tokio::time::sleep(Duration::from_secs(1)).await;
    while Instant::now() < until {
        let started = Instant::now();
        if let Ok(mut stream) = attack::tls_connect_with(addr, &config, dial).await {
            let request = b"GET /static.txt HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n";
            if let Ok(reply) = attack::exchange(&mut stream, request).await {
                if reply.status == 200 {
                    answered += 1;
                }
            }
        }
        latencies.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (answered, latencies)
}
