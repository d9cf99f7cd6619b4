//! Applications built on weir as a library: the Handler API, and the ledger under fire.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::client::{Client, Proto};
use crate::support::{payload, procs, wait_until, Site};

/// `key=value` lines into a map.
fn fields(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn handlers_see_the_request_and_their_hooks_run_once_per_worker() {
    let site = Site::new().with_example("testapp");
    let exits = site.path().join("exits");
    std::fs::create_dir(&exits).unwrap();
    std::fs::set_permissions(&exits, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let exits_text = exits.display().to_string();
    let mut weir = site.env("TESTAPP_EXIT_DIR", &exits_text).start("StartServers 2\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);

    let raw = client
        .raw(b"GET /app/probe?y=1 HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: device-7:try.1\r\nConnection: close\r\n\r\n")
        .unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let lower = text.to_ascii_lowercase();
    assert!(lower.contains("\r\nserver: weir\r\n"), "{text}");
    assert!(!lower.contains("x-powered-by"), "a backend's X-Powered-By reached the client: {text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    let seen = fields(body);
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["target"], "/app/probe?y=1");
    assert_eq!(seen["client"], "127.0.0.1");
    assert_eq!(seen["tls"], "TLSv1.3");
    assert!(seen["cipher"].starts_with("TLS_"), "{body}");
    assert_eq!(seen["request_id"], "device-7:try.1");
    assert_eq!(seen["inits"], "1");
    let worker: i32 = seen["pid"].parse().unwrap();
    assert_eq!(procs::read(worker).unwrap().cmdline, "weir: worker");

    let data = payload(1 << 20);
    for proto in [Proto::H1, Proto::H2] {
        let reply = client.request(proto, "POST", "/app/upload", data.clone()).unwrap();
        assert_eq!(reply.status, 200);
        let seen = fields(&reply.text());
        assert_eq!(seen["body_len"], "1048576", "{proto:?}");
        assert_eq!(seen["inits"], "1", "init runs once per worker, not per request");
        assert_ne!(seen["request_id"], "-", "the edge gives every request an id");
    }
    // A path that only shares a prefix with the handler's is not the handler's.
    assert_eq!(client.get("/application").unwrap().status, 404);

    let served: Vec<i32> = vec![worker];
    weir.stop();
    for pid in served {
        let trace = std::fs::read_to_string(exits.join(pid.to_string()))
            .unwrap_or_else(|_| panic!("the exit hook did not run in worker {pid}"));
        assert_eq!(trace.trim(), "inits=1");
    }
}

#[test]
fn a_panicking_handler_fails_only_its_request() {
    let weir =
        Site::new().with_example("testapp").start("StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let before = client.get("/app/x").unwrap();
    assert_eq!(before.status, 200);
    assert_eq!(client.get("/app/panic").unwrap().status, 500);
    assert_eq!(client.get("/app/abort").unwrap().status, 502);
    for _ in 0..5 {
        assert_eq!(client.get("/app/x").unwrap().status, 200);
    }
    assert!(
        wait_until(Duration::from_secs(5), || weir.workers().len() == 2),
        "the pool did not come back to 2 workers: {:?}",
        weir.workers()
    );
}

/// Reads the ledger file: ids in order of appearance.
fn ledger_ids(path: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once('\t').map(|(id, _)| id.to_string()))
        .collect()
}

#[test]
fn the_ledger_loses_and_duplicates_nothing_while_workers_are_killed() {
    const POSTS: usize = 1000;
    const CONCURRENCY: usize = 32;
    let site = Site::new().with_example("ledger");
    let data_dir = site.path().join("data");
    std::fs::create_dir(&data_dir).unwrap();
    std::fs::set_permissions(&data_dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let ledger = data_dir.join("ledger.log");
    let ledger_text = ledger.display().to_string();
    let weir = site
        .env("LEDGER_FILE", &ledger_text)
        .start("StartServers 6\nMinSpareServers 1\nMaxSpareServers 10\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);

    // Kill a random worker every few tens of milliseconds while the POSTs run.
    let done = Arc::new(AtomicBool::new(false));
    let killed = Arc::new(Mutex::new(0usize));
    let killer = {
        let done = done.clone();
        let killed = killed.clone();
        let (master, _) = weir.roles();
        std::thread::spawn(move || {
            let mut seed = 0x9E37_79B9u32;
            while !done.load(Ordering::SeqCst) {
                let workers = procs::children_titled(master.pid, "weir: worker");
                if !workers.is_empty() {
                    seed ^= seed << 13;
                    seed ^= seed >> 17;
                    seed ^= seed << 5;
                    let victim = &workers[seed as usize % workers.len()];
                    // SAFETY: kill takes plain integers.
                    unsafe { libc::kill(victim.pid, libc::SIGKILL) };
                    *killed.lock().unwrap() += 1;
                }
                std::thread::sleep(Duration::from_millis(40 + u64::from(seed % 60)));
            }
        })
    };

    let next = Arc::new(Mutex::new(0usize));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let retries = Arc::new(Mutex::new(0usize));
    let senders: Vec<_> = (0..CONCURRENCY)
        .map(|_| {
            let (client, next, acked, retries) = (client.clone(), next.clone(), acked.clone(), retries.clone());
            std::thread::spawn(move || loop {
                let index = {
                    let mut next = next.lock().unwrap();
                    if *next == POSTS {
                        return;
                    }
                    *next += 1;
                    *next - 1
                };
                let id = format!("reading-{index:04}");
                let body = format!("{{\"meter\":{index},\"kwh\":{}}}", index * 7).into_bytes();
                let mut attempts = 0;
                loop {
                    attempts += 1;
                    assert!(attempts < 100, "{id} never got through");
                    let request = format!(
                        "POST /ingest HTTP/1.1\r\nHost: localhost\r\nX-Request-Id: {id}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    );
                    let mut raw = request.into_bytes();
                    raw.extend_from_slice(&body);
                    let status = client
                        .raw(&raw)
                        .ok()
                        .and_then(|reply| String::from_utf8_lossy(&reply).get(9..12).and_then(|s| s.parse::<u16>().ok()));
                    match status {
                        Some(201) => {
                            acked.lock().unwrap().push(id.clone());
                            break;
                        }
                        // Recorded by an attempt whose answer was lost: not recorded twice.
                        Some(200) => break,
                        _ => *retries.lock().unwrap() += 1,
                    }
                }
            })
        })
        .collect();
    for sender in senders {
        sender.join().expect("a sender failed");
    }
    done.store(true, Ordering::SeqCst);
    killer.join().unwrap();

    let killed = *killed.lock().unwrap();
    let retries = *retries.lock().unwrap();
    assert!(killed >= 5, "the test killed only {killed} workers");
    let ids = ledger_ids(&ledger);
    let mut counts: HashMap<&str, usize> = HashMap::new();
    for id in &ids {
        *counts.entry(id.as_str()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    for index in 0..POSTS {
        let id = format!("reading-{index:04}");
        assert_eq!(counts.get(id.as_str()), Some(&1), "{id} is missing");
    }
    for id in acked.lock().unwrap().iter() {
        assert!(counts.contains_key(id.as_str()), "{id} was acknowledged and lost");
    }
    assert_eq!(ids.len(), POSTS);
    let count = client.get("/ingest/count").unwrap();
    assert_eq!(count.text().trim(), POSTS.to_string());
    eprintln!("ledger: {POSTS} readings, {killed} workers killed, {retries} retries");
}
