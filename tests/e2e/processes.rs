//! The process tree: roles and titles, where the private key is (and is not), crashes and stops.

use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::support::client::Client;
use crate::support::{procs, wait_until, Site, Weir};

const SLOW_SCRIPT: &str =
    "#!/bin/sh\nsleep \"${QUERY_STRING:-2}\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow done\\n'\n";
const FAST_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfast\\n'\n";

/// This test's slow script, by full path: tests run side by side and must not see each other's.
fn slow_script_path(weir: &Weir) -> String {
    weir.path().join("cgi-bin/slow").display().to_string()
}

fn script_running(weir: &Weir) -> bool {
    let script = slow_script_path(weir);
    procs::all().iter().any(|p| p.cmdline.contains(&script))
}

/// Byte strings that would betray the private key: its PKCS#8 DER, the P-256 scalar inside it
/// (in both byte orders), and the first line of its PEM body.
fn key_needles(key_pem: &str) -> Vec<Vec<u8>> {
    let der = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("key PEM") {
        PrivateKeyDer::Pkcs8(der) => der.secret_pkcs8_der().to_vec(),
        other => panic!("unexpected key type {other:?}"),
    };
    let marker = [0x02, 0x01, 0x01, 0x04, 0x20];
    let at =
        der.windows(marker.len()).position(|w| w == marker).expect("EC private key in PKCS#8") + marker.len();
    let scalar = der[at..at + 32].to_vec();
    let reversed: Vec<u8> = scalar.iter().rev().copied().collect();
    let pem_line = key_pem.lines().nth(1).expect("PEM body").as_bytes().to_vec();
    vec![der, scalar, reversed, pem_line]
}

#[test]
fn tree_is_titled_and_no_key_reaches_the_pool() {
    let weir = Site::new().start("StartServers 3\nMinSpareServers 1\nMaxSpareServers 5\n");
    let (master, edge) = weir.roles();
    assert!(
        wait_until(Duration::from_secs(10), || weir.workers().len() == 3),
        "expected 3 workers, found {:?}",
        weir.workers()
    );
    // Serve something first so the key has been used for real handshakes.
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/").unwrap().status, 200);

    // The scan can see heap memory: the edge holds the certificate it sends.
    let cert = CertificateDer::from_pem_slice(weir.cert_pem.as_bytes()).unwrap();
    assert!(
        procs::memory_contains(edge.pid, cert.as_ref()).unwrap(),
        "scan found no certificate in the edge"
    );

    let needles = key_needles(&weir.key_pem);
    let mut scanned = vec![master.clone()];
    scanned.extend(weir.workers());
    for proc in scanned {
        for (index, needle) in needles.iter().enumerate() {
            let found = procs::memory_contains(proc.pid, needle).unwrap();
            assert!(!found, "key material #{index} found in {} (pid {})", proc.cmdline, proc.pid);
        }
    }
}

#[test]
fn a_worker_killed_by_sigsegv_fails_only_its_request() {
    let site = Site::new();
    site.script("slow", SLOW_SCRIPT);
    site.script("fast", FAST_SCRIPT);
    let weir = site.start("StartServers 3\nMinSpareServers 3\nMaxSpareServers 5\n");
    let script = slow_script_path(&weir);
    weir.roles();
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let slow = {
        let client = client.clone();
        std::thread::spawn(move || client.get("/cgi-bin/slow?5"))
    };
    // The worker running it is the parent of the script's shell.
    let mut victim = None;
    let found = wait_until(Duration::from_secs(10), || {
        victim = procs::all().into_iter().find(|p| p.cmdline.contains(&script)).map(|script| script.ppid);
        victim.is_some()
    });
    assert!(found, "the slow script never started\n{}", weir.logs());
    let victim = victim.unwrap();
    assert_eq!(procs::read(victim).unwrap().cmdline, "weir: worker");
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(victim, libc::SIGSEGV) };

    let reply = slow.join().unwrap().expect("the client still gets an answer");
    assert_eq!(reply.status, 502, "{}", reply.text());
    for _ in 0..10 {
        let reply = client.get("/cgi-bin/fast").unwrap();
        assert_eq!((reply.status, reply.text().as_str()), (200, "fast\n"));
    }
    assert!(
        wait_until(Duration::from_secs(5), || {
            let now = weir.workers();
            now.len() == 3 && now.iter().all(|w| w.pid != victim)
        }),
        "the pool did not replace the worker: {:?}",
        weir.workers()
    );
    let logs = weir.logs();
    assert!(
        logs.contains(&format!("child pid {victim} exit signal Segmentation fault (11)")),
        "no Apache-style crash line in\n{logs}"
    );
}

#[test]
fn sigterm_finishes_requests_in_flight_and_leaves_nothing() {
    let site = Site::new();
    site.script("slow", SLOW_SCRIPT);
    let mut weir = site.start("GracefulShutdownTimeout 10\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let slow = std::thread::spawn(move || client.get("/cgi-bin/slow?1"));
    assert!(wait_until(Duration::from_secs(10), || script_running(&weir)));
    let took = weir.stop();
    let reply = slow.join().unwrap().expect("the request in flight is answered");
    assert_eq!((reply.status, reply.text().as_str()), (200, "slow done\n"));
    assert!(took < Duration::from_secs(10), "stop took {took:?}");
}

#[test]
fn sigterm_kills_what_outlives_the_graceful_timeout() {
    let site = Site::new();
    site.script("slow", SLOW_SCRIPT);
    let mut weir = site.start("GracefulShutdownTimeout 2\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let _hung = std::thread::spawn(move || client.get("/cgi-bin/slow?60"));
    assert!(wait_until(Duration::from_secs(10), || script_running(&weir)));
    let started = Instant::now();
    let took = weir.stop();
    // Generous: the deadline is 2 s; a loaded 2-core machine may add a little.
    assert!(took < Duration::from_secs(6), "stop took {took:?}");
    assert!(
        wait_until(Duration::from_secs(5), || !script_running(&weir)),
        "the hung script outlived the server ({:?} after stop began)",
        started.elapsed()
    );
}
