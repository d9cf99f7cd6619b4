//! Operating weir: Apache's stock files, reloads under load, stop and reload commands, and the
//! systemd readiness protocol.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::support::client::Client;
use crate::support::{procs, wait_until, weir_command, Site};

const DEBIAN_FILES: [&str; 3] = [
    "/etc/apache2/mods-available/mpm_prefork.conf",
    "/etc/apache2/mods-available/reqtimeout.conf",
    "/etc/apache2/conf-available/security.conf",
];

#[test]
fn debians_stock_apache_files_are_accepted_unchanged_and_take_effect() {
    if DEBIAN_FILES.iter().any(|f| !Path::new(f).exists()) {
        assert_ne!(std::env::var("WEIR_REQUIRE_APACHE").as_deref(), Ok("1"), "apache2 is not installed");
        eprintln!("skipped: Debian's apache2 package is not installed");
        return;
    }
    let site = Site::new();
    let includes: String = DEBIAN_FILES.iter().map(|f| format!("Include {f}\n")).collect();
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config(&includes)).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "Syntax OK");

    let output = weir_command(&["-V", "-f"], &conf).output().unwrap();
    let shown = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "Server MPM:     prefork",
        "StartServers           5",
        "MinSpareServers        5",
        "MaxSpareServers        10",
        "MaxRequestWorkers      150",
        "MaxConnectionsPerChild 0",
        "header=20-40,MinRate=500",
        "body=10,MinRate=500",
        "ServerTokens           Os",
        "ServerSignature        On",
        "TraceEnable            Off",
    ] {
        assert!(shown.contains(expected), "missing {expected:?} in\n{shown}");
    }
}

/// A TLS client that keeps one connection open and streams POSTs over it, reconnecting when the
/// server says `Connection: close`, and trusting any of `roots`.
struct Streamer {
    addr: std::net::SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    connection: Option<rustls::StreamOwned<rustls::ClientConnection, std::net::TcpStream>>,
    /// DER of the certificate the server showed on the latest connection.
    pub seen_cert: Vec<u8>,
}

impl Streamer {
    fn new(addr: std::net::SocketAddr, roots: &[&str]) -> Streamer {
        let mut store = rustls::RootCertStore::empty();
        for pem in roots {
            store.add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap();
        }
        let mut config = rustls::ClientConfig::builder().with_root_certificates(store).with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Streamer { addr, tls: Arc::new(config), connection: None, seen_cert: Vec::new() }
    }

    /// Sends one POST; returns the status, or an error text.
    fn post(&mut self, path: &str, id: &str, body: &[u8]) -> Result<u16, String> {
        if self.connection.is_none() {
            let tcp = std::net::TcpStream::connect(self.addr).map_err(|e| e.to_string())?;
            tcp.set_read_timeout(Some(Duration::from_secs(30))).map_err(|e| e.to_string())?;
            let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
            let client = rustls::ClientConnection::new(self.tls.clone(), name).map_err(|e| e.to_string())?;
            let mut stream = rustls::StreamOwned::new(client, tcp);
            while stream.conn.is_handshaking() {
                stream.conn.complete_io(&mut stream.sock).map_err(|e| format!("handshake: {e}"))?;
            }
            self.seen_cert = stream
                .conn
                .peer_certificates()
                .and_then(|c| c.first())
                .map(|c| c.as_ref().to_vec())
                .unwrap_or_default();
            self.connection = Some(stream);
        }
        let Some(stream) = self.connection.as_mut() else { unreachable!("connected above") };
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: {id}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let sent = stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.write_all(body))
            .and_then(|()| stream.flush());
        if let Err(error) = sent {
            self.connection = None;
            return Err(format!("write: {error}"));
        }
        let mut response = Vec::new();
        let mut byte = [0u8; 1];
        while !response.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => response.push(byte[0]),
                Ok(_) | Err(_) => {
                    self.connection = None;
                    return Err(format!("closed after {} bytes of response", response.len()));
                }
            }
        }
        let head = String::from_utf8_lossy(&response).to_ascii_lowercase();
        let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).ok_or("no status")?;
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let mut body = vec![0u8; length];
        if stream.read_exact(&mut body).is_err() {
            self.connection = None;
            return Err("body cut short".to_string());
        }
        if head.contains("connection: close") {
            self.connection = None;
        }
        Ok(status)
    }
}

#[test]
fn ten_reloads_under_streaming_posts_lose_and_duplicate_nothing() {
    let site = Site::new().with_example("ledger");
    let data = site.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let ledger = data.join("ledger.log");
    let ledger_text = ledger.display().to_string();
    let old_cert = std::fs::read_to_string(site.path().join("cert.pem")).unwrap();
    let weir =
        site.env("LEDGER_FILE", &ledger_text).start("StartServers 3\nMinSpareServers 2\nMaxSpareServers 5\n");
    let conf = weir.path().join("weir.conf");
    let new_pair =
        rcgen::generate_simple_self_signed(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let new_cert = new_pair.cert.pem();

    let stop = Arc::new(AtomicBool::new(false));
    let outcomes = Arc::new(Mutex::new((0usize, Vec::<String>::new())));
    let streamers: Vec<_> = (0..4)
        .map(|n| {
            let (stop, outcomes) = (stop.clone(), outcomes.clone());
            let (addr, roots) = (weir.addr(), [old_cert.clone(), new_cert.clone()]);
            std::thread::spawn(move || {
                let mut client = Streamer::new(addr, &[&roots[0], &roots[1]]);
                let mut sent = 0;
                while !stop.load(Ordering::SeqCst) {
                    let id = format!("s{n}-{sent:05}");
                    let result = client.post("/ingest", &id, format!("reading {id}").as_bytes());
                    let mut outcomes = outcomes.lock().unwrap();
                    match result {
                        Ok(201) => outcomes.0 += 1,
                        other => outcomes.1.push(format!("{id}: {other:?}")),
                    }
                    sent += 1;
                }
            })
        })
        .collect();

    for round in 0..10 {
        let progress = outcomes.lock().unwrap().0;
        assert!(
            wait_until(Duration::from_secs(20), || outcomes.lock().unwrap().0 >= progress + 20),
            "no progress before reload {round}"
        );
        let mut text = std::fs::read_to_string(&conf).unwrap();
        if round == 3 {
            text.push_str("MaxRequestWorkers 7\n");
        }
        if round == 6 {
            std::fs::write(weir.path().join("cert.pem"), &new_cert).unwrap();
            std::fs::write(weir.path().join("key.pem"), new_pair.signing_key.serialize_pem()).unwrap();
        }
        std::fs::write(&conf, &text).unwrap();
        let output = weir_command(&["reload", "-f"], &conf).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let reloads = round + 1;
        assert!(
            wait_until(Duration::from_secs(20), || weir.logs().matches("Graceful restart requested").count()
                >= reloads),
            "reload {round} was not seen\n{}",
            weir.logs()
        );
    }
    let progress = outcomes.lock().unwrap().0;
    assert!(wait_until(Duration::from_secs(20), || outcomes.lock().unwrap().0 >= progress + 20));
    stop.store(true, Ordering::SeqCst);
    for streamer in streamers {
        streamer.join().unwrap();
    }
    let (acked, failures) = {
        let outcomes = outcomes.lock().unwrap();
        (outcomes.0, outcomes.1.clone())
    };
    assert!(
        failures.is_empty(),
        "{} of {} POSTs failed across reloads: {:?}",
        failures.len(),
        acked,
        &failures[..failures.len().min(10)]
    );
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in std::fs::read_to_string(&ledger).unwrap().lines() {
        if let Some((id, _)) = line.split_once('\t') {
            *counts.entry(id.to_string()).or_default() += 1;
        }
    }
    assert_eq!(counts.len(), acked, "acknowledged {acked}, recorded {}", counts.len());
    assert!(counts.values().all(|n| *n == 1), "a record was duplicated");
    eprintln!("reloads: {acked} POSTs acknowledged across 10 reloads, none failed");

    // Connections made after the certificate reload see the new certificate.
    let mut fresh = Streamer::new(weir.addr(), &[&new_cert]);
    assert_eq!(fresh.post("/ingest", "after-cert-reload", b"x"), Ok(201));
    let new_der = CertificateDer::from_pem_slice(new_cert.as_bytes()).unwrap();
    assert_eq!(fresh.seen_cert, new_der.as_ref());
    let logs = weir.logs();
    assert_eq!(logs.matches("reload failed").count(), 0, "{logs}");
}

#[test]
fn a_broken_reload_leaves_the_old_configuration_serving() {
    let mut weir = Site::new().start("");
    let conf = weir.path().join("weir.conf");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/").unwrap().status, 200);
    let mut text = std::fs::read_to_string(&conf).unwrap();
    text.push_str("MaxRequestWorker 5\n");
    std::fs::write(&conf, text).unwrap();
    // SIGHUP directly, as systemctl reload would: the supervisor itself must refuse.
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(weir.pid(), libc::SIGHUP) };
    assert!(wait_until(Duration::from_secs(10), || weir.logs().contains("reload failed")), "{}", weir.logs());
    assert!(weir.logs().contains("Invalid command 'MaxRequestWorker'"), "{}", weir.logs());
    for _ in 0..5 {
        assert_eq!(client.get("/").unwrap().status, 200);
    }
    // `weir reload` refuses too, before signalling anything.
    let output = weir_command(&["reload", "-f"], &conf).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("not reloading"));
    weir.stop();
}

#[test]
fn weir_stop_leaves_nothing_and_reload_without_a_server_says_so() {
    let mut weir = Site::new().start("");
    let conf = weir.path().join("weir.conf");
    let pgid = weir.pid();
    let output = weir_command(&["stop", "-f"], &conf).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(wait_until(Duration::from_secs(10), || procs::in_group(pgid).is_empty()));
    weir.stop();
    let output = weir_command(&["reload", "-f"], &conf).output().unwrap();
    assert_ne!(output.status.code(), Some(0));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("weir is not running"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn systemd_hears_ready_reloading_and_stopping() {
    let site = Site::new();
    let socket_path = site.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let notify = socket_path.display().to_string();
    let mut weir = site.env("NOTIFY_SOCKET", &notify).start("");
    let next = || {
        let mut buffer = [0u8; 512];
        let n = socket.recv(&mut buffer).expect("a notification in time");
        String::from_utf8_lossy(&buffer[..n]).into_owned()
    };
    let first = next();
    assert_eq!(first, "READY=1");
    // Ready means accepting: a request succeeds right away.
    assert_eq!(Client::new(weir.addr(), &weir.cert_pem).get("/").unwrap().status, 200);
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(weir.pid(), libc::SIGHUP) };
    let reloading = next();
    assert!(reloading.starts_with("RELOADING=1\nMONOTONIC_USEC="), "{reloading}");
    assert_eq!(next(), "READY=1");
    let started = Instant::now();
    weir.stop();
    assert_eq!(next(), "STOPPING=1");
    assert!(started.elapsed() < Duration::from_secs(20));
}
