//! What weir does to what it did not create, who its CGI processes are and how they end, and
//! small leaks: a script that closes stdout and lingers, a script's own children, signal
//! dispositions a script inherits, a CR in a script's stderr, query strings in server-status, a
//! client certificate subject with control characters, `weir cert client --cn ../x`, and the
//! built-in default started from `/`.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::support::client::Client;
use crate::support::{raw, wait_until, weir_command, Site, Weir};

/// Whether a process with this pid still runs (a zombie counts as gone).
fn alive(pid: i32) -> bool {
    crate::support::procs::read(pid).is_some()
}

/// A directory scripts (running as `User`) may write their pids into.
fn pid_dir(site: &Site) -> std::path::PathBuf {
    let dir = site.path().join("pids");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    dir
}

/// Waits for a pid a script wrote into `file`.
fn pid_in(file: &std::path::Path) -> i32 {
    let mut pid = None;
    let found = wait_until(Duration::from_secs(20), || {
        pid = std::fs::read_to_string(file).ok().and_then(|t| t.trim().parse().ok());
        pid.is_some()
    });
    assert!(found, "no pid in {}", file.display());
    pid.expect("checked above")
}

/// Kills what a failed test left running, so the machine stays clean.
fn reap(pids: &[i32]) {
    for pid in pids {
        if alive(*pid) {
            // SAFETY: kill takes plain integers.
            unsafe { libc::kill(*pid, libc::SIGKILL) };
        }
    }
}

/// A script that answers, closes its stdout, starts a child of its own and keeps running: the
/// response ends when stdout closes (it was held until the hung-worker kill and the client got a
/// 504), and at the script time limit the whole group dies, the script's child with it (it
/// survived, re-parented).
#[test]
fn a_script_that_closes_stdout_and_lingers_is_answered_and_killed_with_its_children() {
    let site = Site::new();
    let pids = pid_dir(&site);
    let p = pids.display();
    site.script(
        "linger",
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nanswered\\n'\nexec >&-\n\
             sleep 300 &\necho $! > {p}/child.tmp && mv {p}/child.tmp {p}/child\n\
             echo $$ > {p}/script.tmp && mv {p}/script.tmp {p}/script\nsleep 300\n"
        ),
    );
    site.script("quick", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nquick\\n'\n");
    let weir = site.start("Timeout 6\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let started = Instant::now();
    let reply = client.get("/cgi-bin/linger").expect("an answer");
    let took = started.elapsed();
    let (script, child) = (pid_in(&pids.join("script")), pid_in(&pids.join("child")));
    assert_eq!((reply.status, reply.text().as_str()), (200, "answered\n"), "{}", weir.logs());
    assert!(took < Duration::from_secs(5), "the answer waited {took:?} for a script that closed stdout");
    // The worker that waits for the lingering script takes no other request meanwhile: the next
    // ones are answered at once by others, never queued behind it until the time limit.
    for _ in 0..3 {
        let started = Instant::now();
        let quick = client.get("/cgi-bin/quick").expect("an answer");
        assert_eq!((quick.status, quick.text().as_str()), (200, "quick\n"), "{}", weir.logs());
        assert!(started.elapsed() < Duration::from_secs(4), "a request waited {:?}", started.elapsed());
    }
    // Timeout 6 is the script's limit; the pool's hung-worker kill would come later still.
    let gone = wait_until(Duration::from_secs(20), || !alive(script) && !alive(child));
    let left = (alive(script), alive(child));
    reap(&[script, child]);
    assert!(gone, "script alive: {}, its child alive: {}\n{}", left.0, left.1, weir.logs());
    // The worker is free again: another request is answered.
    site_answers(&weir);
}

/// A script that exits normally leaving a background child: nothing of a finished request
/// outlives it (the child ran on, re-parented to init).
#[test]
fn a_scripts_background_child_dies_when_the_script_is_done() {
    let site = Site::new();
    let pids = pid_dir(&site);
    let p = pids.display();
    site.script(
        "spawner",
        &format!(
            "#!/bin/sh\nsleep 300 >/dev/null 2>&1 &\necho $! > {p}/child.tmp && mv {p}/child.tmp {p}/child\n\
             printf 'Content-Type: text/plain\\r\\n\\r\\ndone\\n'\n"
        ),
    );
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get("/cgi-bin/spawner").expect("an answer");
    assert_eq!((reply.status, reply.text().as_str()), (200, "done\n"), "{}", weir.logs());
    let child = pid_in(&pids.join("child"));
    let gone = wait_until(Duration::from_secs(10), || !alive(child));
    reap(&[child]);
    assert!(gone, "the script's child outlived its request\n{}", weir.logs());
}

/// A script that records its pid and its child's, then sleeps with stdout open: it ends only
/// when it is killed.
fn lingering_script(site: &Site, pids: &std::path::Path) {
    let p = pids.display();
    site.script(
        "slow",
        &format!(
            "#!/bin/sh\ncat >/dev/null\nsleep 300 &\necho $! > {p}/child.tmp && mv {p}/child.tmp {p}/child\n\
             echo $$ > {p}/script.tmp && mv {p}/script.tmp {p}/script\nsleep 300\n"
        ),
    );
}

/// Asserts that the script and its child end soon after the client went away (Timeout is 60).
fn script_and_child_end(weir: &Weir, pids: &std::path::Path, how: &str) {
    let (script, child) = (pid_in(&pids.join("script")), pid_in(&pids.join("child")));
    let gone = wait_until(Duration::from_secs(15), || !alive(script) && !alive(child));
    let left = (alive(script), alive(child));
    reap(&[script, child]);
    assert!(gone, "{how}: script alive: {}, child alive: {}\n{}", left.0, left.1, weir.logs());
}

async fn wait_for_file(file: &std::path::Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !file.exists() {
        assert!(Instant::now() < deadline, "the script did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A client that goes away while its script runs (silent, stdout still open): the script's group
/// is killed then, not at the time limit.
#[test]
fn a_client_that_goes_away_takes_its_script_with_it() {
    let site = Site::new();
    let pids = pid_dir(&site);
    lingering_script(&site, &pids);
    let weir = site.start("Timeout 60\n");
    // The client sends its request over h2 and hangs up once the script runs: the edge drops
    // the exchange with the worker, which must take the script's group down with it.
    let script_file = pids.join("script");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut sender = crate::support::h2::connect(&weir).await;
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        drop(tx);
        let request = http::Request::builder()
            .uri("https://localhost/cgi-bin/slow")
            .body(crate::support::h2::Fed(rx))
            .expect("request");
        let response = sender.send_request(request);
        tokio::select! {
            answer = response => panic!("answered before the script ended: {answer:?}"),
            () = wait_for_file(&script_file) => {}
        }
    });
    // Dropping the runtime closes the connection.
    drop(runtime);
    script_and_child_end(&weir, &pids, "h2");
}

/// The same over HTTP/1.1, where nothing reads the socket while the request is in the pool:
/// the script ran on until Timeout. A request without a body, one with a body, and a client
/// that resets the connection instead of closing it.
#[test]
fn a_client_that_hangs_up_over_http1_takes_its_script_with_it() {
    use tokio::io::AsyncWriteExt;
    let site = Site::new();
    let pids = pid_dir(&site);
    lingering_script(&site, &pids);
    let weir = site.start("Timeout 60\nLogLevel info\n");
    let config = crate::support::attack::tls_config(&weir.cert_pem);
    let cases = [
        ("GET, closed", "GET /cgi-bin/slow HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(), false),
        (
            "POST with a body, closed",
            format!(
                "POST /cgi-bin/slow HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000\r\n\r\n{}",
                "b".repeat(5000)
            ),
            false,
        ),
        ("GET, reset", "GET /cgi-bin/slow HTTP/1.1\r\nHost: localhost\r\n\r\n".to_string(), true),
    ];
    for (how, request, reset) in cases {
        for name in ["script", "child"] {
            let _ = std::fs::remove_file(pids.join(name));
        }
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        runtime.block_on(async {
            let mut stream =
                crate::support::attack::tls_connect(weir.addr(), &config).await.expect("TLS connection");
            stream.write_all(request.as_bytes()).await.expect("request");
            stream.flush().await.expect("flush");
            wait_for_file(&pids.join("script")).await;
            if reset {
                // SO_LINGER 0: close sends RST.
                let _ = socket2::SockRef::from(stream.get_ref().0).set_linger(Some(Duration::ZERO));
            }
            drop(stream);
        });
        script_and_child_end(&weir, &pids, how);
    }
    let logged = wait_until(Duration::from_secs(5), || {
        weir.logs().matches("client closed the connection while its request was in the pool").count() == 3
    });
    assert!(logged, "one info line per hang-up\n{}", weir.logs());
    // Each still has its access-log line, with nginx's 499 ("client closed request").
    let logged = wait_until(Duration::from_secs(10), || {
        site_access_log(&weir).matches("/cgi-bin/slow HTTP/1.1\" 499 ").count() == 3
    });
    assert!(logged, "{}", site_access_log(&weir));
}

fn site_access_log(weir: &Weir) -> String {
    std::fs::read_to_string(weir.path().join("access.log")).unwrap_or_default()
}

/// A client that hangs up once its answer has begun, while the script is still writing it (its
/// head and 100 kB sent, the rest to come): the script is stopped then too, not at Timeout.
#[test]
fn a_client_that_hangs_up_during_the_answer_takes_its_script_with_it() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let site = Site::new();
    let pids = pid_dir(&site);
    let p = pids.display();
    site.script(
        "talker",
        &format!(
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nhead -c 100000 /dev/zero\n\
             sleep 300 &\necho $! > {p}/child.tmp && mv {p}/child.tmp {p}/child\n\
             echo $$ > {p}/script.tmp && mv {p}/script.tmp {p}/script\nsleep 300\n"
        ),
    );
    let weir = site.start("Timeout 60\n");
    let config = crate::support::attack::tls_config(&weir.cert_pem);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut stream =
            crate::support::attack::tls_connect(weir.addr(), &config).await.expect("TLS connection");
        stream.write_all(b"GET /cgi-bin/talker HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("request");
        stream.flush().await.expect("flush");
        let mut got = 0usize;
        let mut buf = vec![0u8; 65536];
        let deadline = Instant::now() + Duration::from_secs(20);
        while got < 50_000 && Instant::now() < deadline {
            match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => got += n,
                _ => break,
            }
        }
        assert!(got >= 50_000, "only {got} bytes of the answer arrived\n{}", weir.logs());
        wait_for_file(&pids.join("script")).await;
        drop(stream);
    });
    script_and_child_end(&weir, &pids, "after the head");
}

/// Watching for a hang-up must not take bytes a client sent ahead: a request pipelined behind
/// one that waits on its script is still served, after it, on the same connection.
#[test]
fn a_pipelined_request_behind_a_script_is_not_a_hang_up() {
    let site = Site::new();
    site.script("pause", "#!/bin/sh\nsleep 2\nprintf 'Content-Type: text/plain\\r\\n\\r\\npaused\\n'\n");
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let two = "GET /cgi-bin/pause HTTP/1.1\r\nHost: localhost\r\n\r\n\
               GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    let bytes = client.raw(two.as_bytes()).expect("raw exchange");
    let responses = raw::responses(&bytes).unwrap_or_else(|e| panic!("{e}\n{}", weir.logs()));
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200], "{}", weir.logs());
    assert!(String::from_utf8_lossy(&bytes).contains("paused"), "{}", String::from_utf8_lossy(&bytes));
}

/// Workers ignore SIGHUP and SIGINT (the pool master signals them); a script must start with
/// every disposition at its default and nothing blocked, as from a shell.
#[test]
fn scripts_start_with_default_signal_dispositions_and_an_empty_mask() {
    let site = Site::new();
    site.script(
        "signals",
        // exec: the shell's own mask changes while it waits for a child; grep reads its own.
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec grep -E '^(SigIgn|SigBlk):' /proc/self/status\n",
    );
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get("/cgi-bin/signals").expect("an answer");
    let text = reply.text();
    assert_eq!(reply.status, 200, "{text}");
    for field in ["SigIgn", "SigBlk"] {
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .unwrap_or_else(|| panic!("no {field} in {text}"))
            .trim();
        assert_eq!(u64::from_str_radix(value, 16), Ok(0), "{field} of a script: {text}");
    }
}

/// A CR in a script's stderr could forge what an operator sees as a new error-log line: it is
/// escaped like the other control characters.
#[test]
fn a_carriage_return_from_a_scripts_stderr_is_escaped_in_the_error_log() {
    let site = Site::new();
    site.script(
        "cr",
        "#!/bin/sh\nprintf 'first\\r[Mon Jan 01 00:00:00 2026] [core:notice] FORGED\\n' >&2\n\
         printf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n",
    );
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/cgi-bin/cr").expect("an answer").status, 200);
    let log = weir.path().join("error.log");
    let logged = wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("FORGED")
    });
    let bytes = std::fs::read(&log).unwrap_or_default();
    assert!(logged, "the script's stderr was not logged\n{}", weir.logs());
    assert!(!bytes.contains(&b'\r'), "a raw CR in the error log:\n{:?}", String::from_utf8_lossy(&bytes));
    assert!(String::from_utf8_lossy(&bytes).contains("first\\r["), "escaped as \\r\n{}", weir.logs());
}

const STATUS: &str =
    "<Location /server-status>\n  SetHandler server-status\n  Require all granted\n</Location>\n";

/// server-status shows each worker's last request line after the request ended: without the
/// query string (tokens, session ids) unless `StatusQueryStrings On` asks for it.
#[test]
fn server_status_hides_query_strings_unless_configured() {
    for (extra, shown) in [("", false), ("StatusQueryStrings On\n", true)] {
        let site = Site::new();
        site.script("q", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nq\\n'\n");
        let weir = site.start(&format!("{STATUS}{extra}"));
        let client = Client::new(weir.addr(), &weir.cert_pem);
        assert_eq!(client.get("/cgi-bin/q/info?token=S3CR3T").expect("script").status, 200);
        for page in ["/server-status?json", "/server-status", "/server-status?auto"] {
            let text = client.get(page).expect("status").text();
            assert_eq!(
                text.contains("S3CR3T"),
                shown && page != "/server-status?auto",
                "{extra:?} {page}: {text}"
            );
            if page == "/server-status?json" {
                assert!(text.contains("GET /cgi-bin/q/info"), "the request line is still shown: {text}");
            }
        }
    }
}

/// A CA and its issuer.
fn certificate_authority() -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "Fleet CA");
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    let key = rcgen::KeyPair::generate().expect("CA key");
    let cert = params.self_signed(&key).expect("CA certificate");
    (cert.pem(), rcgen::Issuer::new(params, key))
}

/// A verified client certificate whose subject holds CR/LF and a BMPString: SSL_CLIENT_S_DN is
/// there, in RFC 4514 form, with the control characters escaped (it was missing).
#[test]
fn a_client_subject_with_control_characters_still_has_a_dn() {
    let site = Site::new();
    let (ca_pem, ca) = certificate_authority();
    let ca_path = site.path().join("client-ca.pem");
    std::fs::write(&ca_path, &ca_pem).expect("ca");
    // printf, not echo: dash's echo reads backslashes as escapes.
    site.script(
        "dn",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nprintf 'dn=%s\\n' \"$SSL_CLIENT_S_DN\"\n",
    );
    let weir = site.start(&format!("SSLVerifyClient require\nSSLCACertificateFile {}\n", ca_path.display()));

    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "meter\r\nX-Injected: 1");
    let bmp = rcgen::string::BmpString::try_from("Wasserwerk").expect("BMPString");
    params.distinguished_name.push(rcgen::DnType::OrganizationName, rcgen::DnValue::BmpString(bmp));
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &ca).expect("client certificate");
    let auth: (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) =
        (vec![cert.der().clone()], PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())));
    let config: Arc<rustls::ClientConfig> = raw::tls_config(&weir.cert_pem, &[b"http/1.1"], Some(auth));
    let exchange = raw::exchange(
        weir.addr(),
        config,
        b"",
        b"GET /cgi-bin/dn HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        Duration::from_secs(30),
    );
    let text = exchange.text();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}\n{}", weir.logs());
    let dn = text.lines().find_map(|l| l.strip_prefix("dn=")).unwrap_or_default();
    assert_eq!(dn, "O=Wasserwerk,CN=meter\\0D\\0AX-Injected: 1", "{text}");
}

/// `weir cert client --cn` names the files: a name with a slash or `..` would write outside
/// `--out`; it is refused and nothing is written.
#[test]
fn a_client_certificate_name_cannot_leave_the_out_directory() {
    let dir = tempfile::Builder::new().prefix("weir-cn").tempdir_in("/tmp").expect("temp dir");
    let out = dir.path().join("out");
    let ca = weir_command(&["cert", "ca", "--out"], &out).output().expect("weir cert ca");
    assert!(ca.status.success(), "{}", String::from_utf8_lossy(&ca.stderr));
    for cn in ["../escaped", "a/b", "..", ".hidden/../../escaped2"] {
        let made =
            weir_command(&["cert", "client", "--cn", cn, "--ca", &out.display().to_string(), "--out"], &out)
                .output()
                .expect("weir cert client");
        assert!(!made.status.success(), "--cn {cn:?} was accepted");
    }
    let names: Vec<String> = crate::support::entries_under(dir.path())
        .iter()
        .filter(|p| !p.is_dir())
        .map(|p| p.strip_prefix(dir.path()).unwrap_or(p).display().to_string())
        .collect();
    assert_eq!(names, vec!["out/ca.crt".to_string(), "out/ca.key".to_string()], "{names:?}");
}

/// `User root` would run every script with every privilege: refused, as Apache refuses it,
/// naming the directive; `UnsafeAllowUserRoot On` allows it for development, with a warning at
/// start.
#[test]
fn user_root_is_refused() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let site = Site::new();
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config("User root\n")).expect("conf");
    let test = weir_command(&["configtest", "-f"], &conf).output().expect("configtest");
    let said = String::from_utf8_lossy(&test.stderr).into_owned();
    assert_ne!(test.status.code(), Some(0), "configtest passed User root: {said}");
    assert!(said.contains("User"), "{said}");
    let mut child = weir_command(&["run", "-f"], &conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir run");
    let mut status = None;
    let ended = wait_until(Duration::from_secs(20), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if !ended {
        // SAFETY: kill takes plain integers; a negative pid names the process group.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
    let log = std::fs::read_to_string(site.path().join("error.log")).unwrap_or_default();
    assert!(ended, "weir ran with User root:\n{log}");
    assert_ne!(status.and_then(|s| s.code()), Some(0), "{log}");

    let site = Site::new();
    site.script("id", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nid -u\n");
    let weir = site.start("User root\nUnsafeAllowUserRoot On\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get("/cgi-bin/id").expect("an answer");
    assert_eq!((reply.status, reply.text().as_str()), (200, "0\n"), "{}", weir.logs());
    assert!(
        weir.logs().contains("[core:warn]") && weir.logs().contains("UnsafeAllowUserRoot On"),
        "{}",
        weir.logs()
    );
}

/// The built-in default (no -f) started from `/` as root: its RuntimeDir was `/run`, its
/// certificates, documents and scripts `/certs`, `/htdocs`, `/cgi-bin`. It keeps its state in a
/// directory of its own, and configtest says where.
#[test]
fn the_built_in_default_from_the_root_directory_uses_a_directory_of_its_own() {
    let state = tempfile::Builder::new().prefix("weir-state").tempdir_in("/tmp").expect("temp dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("configtest")
        .current_dir("/")
        .env("STATE_DIRECTORY", state.path())
        .output()
        .expect("weir configtest");
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{said}");
    let home = state.path().join("default");
    assert!(
        said.contains(&home.display().to_string()),
        "configtest says where the built-in site lives: {said}"
    );
    for system in ["/run/weir.pid", "/certs", "/htdocs", "/cgi-bin"] {
        assert!(!std::path::Path::new(system).exists(), "{system} exists");
    }
}

/// The built-in default never writes through what it finds in its directory: a dangling
/// symlink where its certificate goes is refused, and its target is not created.
#[test]
fn the_built_in_default_writes_no_certificate_through_a_symlink() {
    let state = tempfile::Builder::new().prefix("weir-state").tempdir_in("/tmp").expect("temp dir");
    std::fs::set_permissions(state.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let home = state.path().join("default");
    std::fs::create_dir_all(home.join("certs")).expect("mkdir");
    let planted = state.path().join("planted.crt");
    std::os::unix::fs::symlink(&planted, home.join("certs/server.crt")).expect("symlink");
    // configtest first: a weir that ignores STATE_DIRECTORY would start in `/` on the fixed port
    // of the built-in default, so `run` is tried only once configtest shows it will not.
    let test = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("configtest")
        .current_dir("/")
        .env("STATE_DIRECTORY", state.path())
        .output()
        .expect("weir configtest");
    let said = String::from_utf8_lossy(&test.stderr);
    assert!(
        said.contains(&home.display().to_string()),
        "the built-in default ignores STATE_DIRECTORY: {said}"
    );
    assert!(!test.status.success() && said.contains("server.crt"), "configtest accepted the symlink: {said}");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_weir"))
        .arg("run")
        .current_dir("/")
        .env("STATE_DIRECTORY", state.path())
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir run");
    let mut status = None;
    let ended = wait_until(Duration::from_secs(20), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if !ended {
        // SAFETY: kill takes plain integers; a negative pid names the process group.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    assert!(!planted.exists(), "the certificate was written through the symlink: {stderr}");
    assert!(ended, "weir started with a symlink where its certificate goes");
    assert_ne!(status.and_then(|s| s.code()), Some(0), "{stderr}");
}

/// A request still gets an answer.
fn site_answers(weir: &Weir) {
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/").expect("index").status, 200, "{}", weir.logs());
}

/// An existing RuntimeDir weir did not make its own (here a sticky, world-writable one, as /run
/// or /tmp could be) is refused and named, never chmod'ed or chown'ed: weir took such a
/// directory over (mode 0755, owner User) and never gave it back.
#[test]
fn an_existing_runtime_dir_is_refused_not_taken_over() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let site = Site::new();
    let run = site.path().join("run");
    std::fs::create_dir(&run).expect("mkdir");
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config("")).expect("conf");
    let test = weir_command(&["configtest", "-f"], &conf).output().expect("configtest");
    let said = String::from_utf8_lossy(&test.stderr).into_owned();
    let mut child = weir_command(&["run", "-f"], &conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("weir run");
    let mut status = None;
    let ended = wait_until(Duration::from_secs(10), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if !ended {
        // SAFETY: kill takes plain integers; a negative pid names the process group.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
    let meta = std::fs::metadata(&run).expect("RuntimeDir");
    let log = std::fs::read_to_string(site.path().join("error.log")).unwrap_or_default();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (meta.mode() & 0o7777, meta.uid(), meta.gid()),
        (0o1777, 0, 0),
        "RuntimeDir was changed:\n{log}"
    );
    assert!(
        ended && status.and_then(|s| s.code()) == Some(1),
        "weir ran on a RuntimeDir open to all:\n{log}"
    );
    assert!(log.contains("RuntimeDir"), "{log}");
    assert!(!test.status.success() && said.contains("RuntimeDir"), "configtest: {said}");
}

/// No SpillDir, and a system temporary directory the edge cannot write (the report saw /tmp left
/// at mode 0755): every body over about 1 MiB got a bare 500 and nothing was logged. weir now
/// refuses to start, naming the directory and the edge's identity, and configtest says so.
#[test]
fn a_temporary_directory_the_edge_cannot_write_is_refused_at_start() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let site = Site::new();
    let tmp = site.path().join("tmp");
    std::fs::create_dir(&tmp).expect("mkdir");
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config("")).expect("conf");
    let test = weir_command(&["configtest", "-f"], &conf).env("TMPDIR", &tmp).output().expect("configtest");
    let said = String::from_utf8_lossy(&test.stderr).into_owned();
    let mut child = weir_command(&["run", "-f"], &conf)
        .env("TMPDIR", &tmp)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir run");
    let mut status = None;
    let ended = wait_until(Duration::from_secs(20), || {
        status = child.try_wait().ok().flatten();
        status.is_some()
    });
    if !ended {
        // SAFETY: kill takes plain integers; a negative pid names the process group.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let log = std::fs::read_to_string(site.path().join("error.log")).unwrap_or_default();
    let shown = tmp.display().to_string();
    assert!(ended, "weir started with a temporary directory the edge cannot write:\n{log}");
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{stderr}{log}");
    assert!(format!("{stderr}{log}").contains(&shown), "the directory is named: {stderr}{log}");
    assert!(!test.status.success() && said.contains(&shown), "configtest: {said}");
}
