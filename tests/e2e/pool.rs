//! The prefork pool: Apache's spare-server maintenance, crashes, hangs, leaks, recycling and
//! privileges, checked on the real binary with the test application's misbehaving handlers.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::client::Client;
use crate::support::{procs, wait_until, Site};

/// The worker pid a testapp reply reports.
fn pid_of(text: &str) -> i32 {
    text.lines()
        .find_map(|line| line.strip_prefix("pid="))
        .and_then(|pid| pid.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {text:?}"))
}

#[test]
fn spare_servers_grow_under_load_and_shrink_a_worker_a_second() {
    let weir = Site::new()
        .with_example("testapp")
        .start("StartServers 3\nMinSpareServers 2\nMaxSpareServers 4\nMaxRequestWorkers 20\n");
    // At rest the idle count settles between MinSpareServers and MaxSpareServers.
    std::thread::sleep(Duration::from_millis(1500));
    let at_rest = weir.workers().len();
    assert!((2..=4).contains(&at_rest), "{at_rest} workers at rest");

    let client = Client::new(weir.addr(), &weir.cert_pem);
    let most = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (most, done) = (most.clone(), done.clone());
        let (master, _) = weir.roles();
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                let now = procs::children_titled(master.pid, "weir: worker").len();
                most.fetch_max(now, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(10));
            }
        })
    };
    let started = Instant::now();
    let slow: Vec<_> = (0..16)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || client.get("/app/sleep?ms=3000"))
        })
        .collect();
    for request in slow {
        let reply = request.join().unwrap().expect("a slow request failed");
        assert_eq!(reply.status, 200);
    }
    let took = started.elapsed();
    done.store(true, Ordering::SeqCst);
    watcher.join().unwrap();
    let most = most.load(Ordering::SeqCst);
    assert!(most >= 16, "the pool never grew to serve 16 at once (at most {most})");
    assert!(most <= 20, "the pool exceeded MaxRequestWorkers: {most}");
    // Sixteen 3 s requests at once, all served together: well under two rounds.
    assert!(took < Duration::from_secs(6), "16 concurrent slow requests took {took:?}");

    // Afterwards, about one idle worker retired a second.
    let before = weir.workers().len();
    std::thread::sleep(Duration::from_secs(4));
    let after = weir.workers().len();
    let retired = before.saturating_sub(after);
    assert!((2..=6).contains(&retired), "{before} -> {after} workers in 4 s");
}

#[test]
fn a_worker_killed_mid_request_fails_only_that_request() {
    let weir =
        Site::new().with_example("testapp").start("StartServers 3\nMinSpareServers 3\nMaxSpareServers 6\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for signal in [libc::SIGKILL, libc::SIGSEGV] {
        let victim_request = {
            let client = client.clone();
            std::thread::spawn(move || client.get("/app/sleep?ms=20000"))
        };
        // The busy worker is the one asleep in the handler; idle ones wait in accept().
        let mut victim = None;
        assert!(wait_until(Duration::from_secs(10), || {
            victim = weir.workers().into_iter().map(|w| w.pid).find(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/wchan")).is_ok_and(|w| w.contains("nanosleep"))
            });
            victim.is_some()
        }));
        let victim = victim.unwrap();
        let concurrent: Vec<_> = (0..6)
            .map(|_| {
                let client = client.clone();
                std::thread::spawn(move || client.get("/app/sleep?ms=300"))
            })
            .collect();
        // SAFETY: kill takes plain integers.
        unsafe { libc::kill(victim, signal) };
        let reply = victim_request.join().unwrap().unwrap();
        assert_eq!(reply.status, 502, "signal {signal}: {}", reply.text());
        for request in concurrent {
            assert_eq!(request.join().unwrap().unwrap().status, 200);
        }
        let back = wait_until(Duration::from_secs(2), || {
            let workers = weir.workers();
            workers.len() >= 3 && workers.iter().all(|w| w.pid != victim)
        });
        assert!(back, "not back to MinSpareServers within 2 s: {:?}", weir.workers());
        if signal == libc::SIGSEGV {
            let line = format!("child pid {victim} exit signal Segmentation fault (11)");
            assert!(wait_until(Duration::from_secs(5), || weir.logs().contains(&line)), "{}", weir.logs());
        } else {
            let line = format!("child pid {victim} exit signal Killed (9)");
            assert!(wait_until(Duration::from_secs(5), || weir.logs().contains(&line)), "{}", weir.logs());
        }
    }
}

#[test]
fn a_hung_handler_is_killed_after_timeout_and_its_client_gets_504() {
    let weir = Site::new().with_example("testapp").start("Timeout 2\nStartServers 2\nMinSpareServers 2\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let started = Instant::now();
    let reply = client.get("/app/hang").unwrap();
    assert_eq!(reply.status, 504);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(1900) && took < Duration::from_secs(8), "504 after {took:?}");
    assert!(
        wait_until(Duration::from_secs(8), || weir
            .logs()
            .contains("busy for more than Timeout (2s) on \"GET /app/hang HTTP/1.1\"")),
        "no hung-worker line\n{}",
        weir.logs()
    );
    assert!(wait_until(Duration::from_secs(5), || weir.workers().len() >= 2));
    assert_eq!(client.get("/app/x").unwrap().status, 200);
}

#[test]
fn a_handler_that_allocates_without_end_dies_at_rlimitmem_alone() {
    let weir = Site::new()
        .with_example("testapp")
        .start("RLimitMEM 400M\nStartServers 3\nMinSpareServers 3\nMaxSpareServers 5\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let others: Vec<_> = (0..4)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || client.get("/app/sleep?ms=500"))
        })
        .collect();
    let reply = client.get("/app/alloc-forever").unwrap();
    assert_eq!(reply.status, 502, "{}", reply.text());
    for other in others {
        assert_eq!(other.join().unwrap().unwrap().status, 200);
    }
    assert_eq!(client.get("/app/x").unwrap().status, 200);
    // The machine's memory never came near the OOM killer: the limit stopped it at 400 MiB.
    let worker = weir.workers()[0].pid;
    let limit = std::fs::read_to_string(format!("/proc/{worker}/limits")).unwrap();
    assert!(limit.lines().any(|l| l.starts_with("Max address space") && l.contains("419430400")), "{limit}");
}

#[test]
fn a_worker_past_max_memory_per_child_is_retired_after_its_request() {
    let weir = Site::new()
        .with_example("testapp")
        .start("MaxMemoryPerChild 48M\nStartServers 2\nMinSpareServers 2\nMaxSpareServers 4\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get("/app/grow?mb=80").unwrap();
    assert_eq!(reply.status, 200, "the request that grew the worker still completes");
    let grown = pid_of(&reply.text());
    assert!(
        wait_until(Duration::from_secs(5), || procs::read(grown).is_none()),
        "worker {grown} was not retired"
    );
    assert!(weir.logs().contains(&format!("worker pid {grown} uses")), "{}", weir.logs());
    assert!(weir.logs().contains("above MaxMemoryPerChild of 49152 KiB"), "{}", weir.logs());
    assert!(wait_until(Duration::from_secs(3), || weir.workers().len() >= 2));
}

#[test]
fn max_connections_per_child_recycles_with_jitter() {
    let weir = Site::new()
        .with_example("testapp")
        .start("MaxConnectionsPerChild 10\nStartServers 1\nMinSpareServers 1\nMaxSpareServers 2\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let mut pids = HashSet::new();
    for _ in 0..100 {
        let reply = client.get("/app/x").unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        pids.insert(pid_of(&reply.text()));
    }
    assert!((9..=11).contains(&pids.len()), "100 requests were served by {} workers", pids.len());
}

#[test]
fn as_root_workers_run_as_user_with_no_new_privs_and_cannot_read_the_key() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root to switch users");
        return;
    }
    let site = Site::new().with_example("testapp");
    let key = site.path().join("key.pem").display().to_string();
    let weir = site.start("User nobody\nGroup nogroup\n");
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid.as_raw().to_string();
    let (master, edge) = weir.roles();
    let uid = |pid: i32| procs::status_field(pid, "Uid").unwrap();
    // Workers run as User; the edge as an account of its own; the pool master stays root, as
    // Apache's parent does. Every one of them has no_new_privs.
    for worker in weir.workers() {
        assert!(
            uid(worker.pid).split_whitespace().all(|id| id == nobody),
            "a worker runs as {}",
            uid(worker.pid)
        );
        let groups = procs::status_field(worker.pid, "Groups").unwrap_or_default();
        assert!(groups.is_empty(), "a worker keeps supplementary groups {groups}");
    }
    let edge_uid = uid(edge.pid);
    let edge_ids: Vec<&str> = edge_uid.split_whitespace().collect();
    assert!(
        edge_ids.iter().all(|id| *id == edge_ids[0] && *id != nobody && *id != "0"),
        "the edge runs as {edge_uid}"
    );
    assert!(procs::status_field(edge.pid, "Groups").unwrap_or_default().is_empty());
    assert!(
        uid(master.pid).split_whitespace().all(|id| id == "0"),
        "the pool master runs as {}",
        uid(master.pid)
    );
    let mut checked = vec![master, edge];
    checked.extend(weir.workers());
    for proc in &checked {
        assert_eq!(procs::status_field(proc.pid, "NoNewPrivs").as_deref(), Some("1"), "{}", proc.cmdline);
    }
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get(&format!("/app/open?path={key}")).unwrap();
    assert!(reply.text().starts_with("refused"), "a worker opened the key: {}", reply.text());
}

#[test]
fn a_crash_storm_is_logged_and_slows_spawning_instead_of_fork_looping() {
    let weir =
        Site::new().with_example("testapp").start("StartServers 2\nMinSpareServers 2\nMaxSpareServers 4\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for _ in 0..14 {
        assert_eq!(client.get("/app/abort").unwrap().status, 502);
    }
    assert!(wait_until(Duration::from_secs(5), || weir.logs().contains("crash storm")), "{}", weir.logs());
    // Spawning slows to one a second, but the pool still serves.
    assert!(wait_until(Duration::from_secs(5), || client.get("/app/x").is_ok_and(|r| r.status == 200)));
}

/// Resident KiB of a process's `[heap]` mapping.
fn heap_kib(pid: i32) -> Option<u64> {
    let smaps = std::fs::read_to_string(format!("/proc/{pid}/smaps")).ok()?;
    let mut in_heap = false;
    for line in smaps.lines() {
        if line.contains('-') && line.split_whitespace().count() >= 5 && !line.ends_with("kB") {
            in_heap = line.ends_with("[heap]");
        } else if in_heap && line.starts_with("Rss:") {
            return line.split_whitespace().nth(1)?.parse().ok();
        }
    }
    None
}

#[test]
fn an_idle_worker_gives_back_the_heap_its_requests_grew() {
    let site = Site::new();
    site.script("big", "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nhead -c 300000 /dev/zero\n");
    let weir = site.start("StartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nMaxRequestWorkers 1\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let worker = weir.workers()[0].pid;
    let fresh = heap_kib(worker).expect("worker heap");
    for _ in 0..20 {
        let reply = client.get("/cgi-bin/big").unwrap();
        assert_eq!(reply.status, 200);
    }
    let grown = heap_kib(worker).expect("worker heap");
    assert!(grown > fresh + 32, "requests did not grow the heap ({fresh} to {grown} KiB): nothing to check");
    assert!(
        wait_until(Duration::from_secs(6), || heap_kib(worker).is_some_and(|kib| kib <= fresh + 16)),
        "worker {worker} kept {:?} KiB of heap after 6 s idle (fresh {fresh}, grown {grown} KiB)",
        heap_kib(worker)
    );
}

/// The scoreboard line of server-status?auto (one character a slot, Apache's letters).
fn scoreboard(client: &Client) -> String {
    let text = client.get("/server-status?auto").map(|reply| reply.text()).unwrap_or_default();
    text.lines().find_map(|line| line.strip_prefix("Scoreboard: ")).unwrap_or_default().to_string()
}

#[test]
fn the_edge_keeps_its_worker_connection_and_a_worker_gone_meanwhile_costs_no_request() {
    let weir = Site::new()
        .with_example("testapp")
        .start("StartServers 3\nMinSpareServers 3\nMaxSpareServers 6\nMaxRequestWorkers 10\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    // Back to back, the same worker answers on the connection the edge kept, and waits for
    // the next request in Apache's keep-alive state.
    let first = pid_of(&client.get("/app/x").unwrap().text());
    let second = pid_of(&client.get("/app/x").unwrap().text());
    assert_eq!(first, second, "the second request went to a new connection");
    let board = scoreboard(&client);
    assert_eq!(board.matches('K').count(), 1, "one worker waits on the kept connection: {board}");
    // Left alone, it goes back to accept() after WORKER_KEEPALIVE (1 s).
    assert!(
        wait_until(Duration::from_secs(5), || !scoreboard(&client).contains('K')),
        "a worker still waits on a kept connection: {}",
        scoreboard(&client)
    );

    // A worker that leaves while the edge keeps its connection (stopped, retired, killed)
    // costs no request: the next one goes to another worker.
    for signal in [libc::SIGTERM, libc::SIGKILL, libc::SIGUSR1] {
        let parked = pid_of(&client.get("/app/x").unwrap().text());
        // SAFETY: kill takes plain integers.
        unsafe { libc::kill(parked, signal) };
        let reply = client.get("/app/x").unwrap();
        assert_eq!(reply.status, 200, "after signal {signal} to the kept worker: {}", reply.text());
        assert_ne!(pid_of(&reply.text()), parked, "signal {signal}");
    }
}

#[test]
fn workers_stopped_between_kept_requests_lose_no_request_with_or_without_a_body() {
    let weir = Site::new()
        .with_example("testapp")
        .start("StartServers 4\nMinSpareServers 4\nMaxSpareServers 8\nMaxRequestWorkers 12\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let done = Arc::new(AtomicBool::new(false));
    // Tells a worker to stop every 15 ms (up to 20 of them), whatever it is doing: one that is
    // answering finishes first, one that waits on a kept connection closes it, perhaps just as
    // the edge sends the next request on it.
    let stopper = {
        let done = done.clone();
        let (master, _) = weir.roles();
        std::thread::spawn(move || {
            let mut stopped = HashSet::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            while stopped.len() < 20 && Instant::now() < deadline {
                let workers = procs::children_titled(master.pid, "weir: worker");
                if let Some(worker) = workers.into_iter().find(|w| !stopped.contains(&w.pid)) {
                    // SAFETY: kill takes plain integers.
                    unsafe { libc::kill(worker.pid, libc::SIGTERM) };
                    stopped.insert(worker.pid);
                }
                std::thread::sleep(Duration::from_millis(15));
            }
            done.store(true, Ordering::SeqCst);
            stopped.len()
        })
    };
    let clients: Vec<_> = (0..3)
        .map(|n| {
            let (client, done) = (client.clone(), done.clone());
            std::thread::spawn(move || {
                let mut i = 0;
                while !done.load(Ordering::SeqCst) {
                    i += 1;
                    let body = if (n + i) % 2 == 0 { Vec::new() } else { vec![b'x'; 3000 + i] };
                    let len = body.len();
                    let method = if len == 0 { "GET" } else { "POST" };
                    let reply = client
                        .request(crate::support::client::Proto::H1, method, "/app/x", body)
                        .unwrap_or_else(|e| panic!("request {i} of client {n}: {e}"));
                    assert_eq!(reply.status, 200, "request {i} of client {n}: {}", reply.text());
                    assert!(reply.text().contains(&format!("body_len={len}\n")), "{}", reply.text());
                }
                i
            })
        })
        .collect();
    let mut requests = 0;
    for client in clients {
        requests += client.join().expect("a request was lost");
    }
    let stopped = stopper.join().unwrap();
    assert!(stopped >= 20, "only {stopped} workers were stopped in 30 s: the test proved little");
    assert!(requests >= 60, "only {requests} requests while workers were stopped");
}

/// A worker whose writes to the edge block (the edge stopped reading: here it is stopped with
/// SIGSTOP) ends the request itself by Timeout, and the worker lives on; before, it blocked
/// until the pool master killed it as busy past Timeout.
#[test]
fn a_worker_blocked_writing_to_the_edge_ends_the_request_by_timeout() {
    let site = Site::new();
    site.script(
        "flood",
        "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nhead -c 200000000 /dev/zero\n",
    );
    let weir = site.start("Timeout 3\nStartServers 1\nMinSpareServers 1\nMaxSpareServers 1\n");
    let (_, edge) = weir.roles();
    let script = format!("{}/cgi-bin/flood", site_dir(&weir));
    let addr = weir.addr();
    let cert = weir.cert_pem.clone();
    let client = std::thread::spawn(move || Client::new(addr, &cert).get("/cgi-bin/flood"));
    // The script runs, so the request is with a worker: now the edge stops reading it.
    let mut worker = None;
    let running = wait_until(Duration::from_secs(20), || {
        worker = procs::all().into_iter().find(|p| p.cmdline.contains(&script)).map(|p| p.ppid);
        worker.is_some()
    });
    assert!(running, "the script did not start\n{}", weir.logs());
    let worker = worker.expect("checked above");
    let started = Instant::now();
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(edge.pid, libc::SIGSTOP) };
    let script_gone = wait_until(Duration::from_secs(15), || {
        !procs::all().into_iter().any(|p| p.cmdline.contains(&script))
    });
    // Past the pool master's own limit (Timeout and a grace second), with a margin: the worker
    // must still be alive then.
    std::thread::sleep(Duration::from_secs(6).saturating_sub(started.elapsed()));
    let worker_alive = procs::read(worker).is_some();
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(edge.pid, libc::SIGCONT) };
    let _ = client.join();
    assert!(script_gone, "the script still runs\n{}", weir.logs());
    assert!(worker_alive, "the worker was killed instead of ending its request\n{}", weir.logs());
    assert!(!weir.logs().contains("busy for more than Timeout"), "{}", weir.logs());
}

fn site_dir(weir: &crate::support::Weir) -> String {
    weir.path().display().to_string()
}
