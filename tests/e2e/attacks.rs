//! Attacks on the edge: Slowloris, slow bodies and slow readers against a small pool, the
//! mod_reqtimeout arithmetic, a saturated pool, the per-address rate limit and the per-address
//! connection limit. Each test runs its own weir and its own misbehaving clients.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;

use crate::support::attack::{self, Closed, Dial};
use crate::support::client::Client;
use crate::support::{payload, wait_until, Site};

/// The timing tests of this module run one at a time: the Slowloris test saturates both cores,
/// which would skew the close times the others measure.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A multi-threaded runtime for attack clients.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// A directory the pool's workers (nobody, when the tests run as root) can write to, with the
/// path of the testapp's request record inside it.
fn record_file(site: &Site) -> PathBuf {
    let dir = site.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
    dir.join("requests")
}

/// The testapp's record: one `METHOD TARGET BODYLEN` line per request that reached a worker.
fn recorded(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap_or_default().lines().map(str::to_string).collect()
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// min / median / max of durations, for the report.
fn spread(mut all: Vec<Duration>) -> String {
    all.sort();
    if all.is_empty() {
        return "none".to_string();
    }
    format!(
        "min {:.2} s, median {:.2} s, max {:.2} s",
        secs(all[0]),
        secs(all[all.len() / 2]),
        secs(all[all.len() - 1])
    )
}

/// What one attack connection saw.
struct Seen {
    /// When the stage the server times was under way (the partial head or the body head sent;
    /// for a slow reader, the request sent).
    started: Instant,
    closed: Closed,
}

const SLOWLORIS: usize = 2000;
const SLOW_BODIES: usize = 200;
const SLOW_READERS: usize = 100;
/// TLS handshakes the attack client keeps in flight at once: the edge refuses handshakes past
/// 1024 in progress, and a real attacker paces its connects too.
const HANDSHAKES_IN_FLIGHT: usize = 64;
/// The file slow readers ask for: 8 MiB rather than the 4 MiB first planned. With a reader that
/// never reads, loopback TCP here holds up to 3.9 MB of a response in kernel buffers (the edge's
/// send buffer autotunes towards net.ipv4.tcp_wmem's 4 MiB maximum), so a 4 MiB response left
/// only about 10% for the edge's write to stall on. 8 MiB was once fully absorbed on a loaded
/// machine (socket buffers grow further under memory pressure settings), so the file is 32 MiB:
/// far beyond anything the kernel holds for one connection.
const BIG: usize = 32 << 20;

#[test]
fn slowloris_slow_bodies_and_slow_readers_never_reach_the_pool() {
    let _serial = serial();
    attack::raise_nofile_limit();
    let site = Site::new().with_example("testapp");
    let record = record_file(&site);
    site.doc("big.bin", &payload(BIG));
    let weir = site.env("TESTAPP_RECORD", &record.display().to_string()).start(
        "MaxRequestWorkers 4\nStartServers 4\nMinSpareServers 2\nMaxSpareServers 4\n\
             RequestReadTimeout handshake=5 header=4-8,MinRate=500 body=4,MinRate=500\n\
             Timeout 5\n",
    );
    let addr = weir.addr();
    let tls = attack::tls_config(&weir.cert_pem);

    // The legitimate client: sequential requests, about ten a second, from the moment the attack
    // is well under way until every attacker is done (and at least 30).
    let established = Arc::new(AtomicUsize::new(0));
    let attacking = Arc::new(AtomicBool::new(true));
    let legit = {
        let client = Client::new(addr, &weir.cert_pem);
        let (established, attacking) = (established.clone(), attacking.clone());
        // Each request's start and latency.
        std::thread::spawn(move || -> Result<Vec<(Instant, Duration)>, String> {
            wait_until(Duration::from_secs(60), || {
                established.load(Ordering::SeqCst) >= SLOWLORIS / 4 || !attacking.load(Ordering::SeqCst)
            });
            let mut latencies = Vec::new();
            while latencies.len() < 30 || (attacking.load(Ordering::SeqCst) && latencies.len() < 600) {
                let started = Instant::now();
                let reply = client.get("/app/x")?;
                let took = started.elapsed();
                if reply.status != 200 {
                    return Err(format!("legitimate request got {}: {}", reply.status, reply.text()));
                }
                latencies.push((started, took));
                // A person's pace, not a benchmark's.
                if let Some(rest) = Duration::from_millis(100).checked_sub(took) {
                    std::thread::sleep(rest);
                }
            }
            Ok(latencies)
        })
    };

    let attack_started = Instant::now();
    let outcome = runtime().block_on(async {
        let gate = Arc::new(tokio::sync::Semaphore::new(HANDSHAKES_IN_FLIGHT));
        // When the server's side of each slow reader's connection closed.
        let watch = Arc::new(attack::CloseWatch::default());
        let readers_left = Arc::new(AtomicUsize::new(SLOW_READERS));
        let poller = {
            let (watch, readers_left) = (watch.clone(), readers_left.clone());
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_millis(100));
                while readers_left.load(Ordering::SeqCst) > 0 {
                    tick.tick().await;
                    watch.poll(addr.port());
                }
            })
        };
        let mut loris = Vec::new();
        let mut bodies = Vec::new();
        let mut readers = Vec::new();
        for i in 0..SLOWLORIS {
            loris.push(tokio::spawn(slowloris(addr, tls.clone(), gate.clone(), established.clone())));
            if i % (SLOWLORIS / SLOW_BODIES) == 0 {
                bodies.push(tokio::spawn(slow_body(addr, tls.clone(), gate.clone())));
            }
            if i % (SLOWLORIS / SLOW_READERS) == 0 {
                readers.push(tokio::spawn(slow_reader(
                    addr,
                    tls.clone(),
                    gate.clone(),
                    watch.clone(),
                    readers_left.clone(),
                )));
            }
        }
        let mut handshakes_done = None;
        let mut loris_seen = Vec::new();
        for task in loris {
            loris_seen.push(task.await.expect("slowloris task"));
            if established.load(Ordering::SeqCst) == SLOWLORIS && handshakes_done.is_none() {
                handshakes_done = Some(attack_started.elapsed());
            }
        }
        let mut bodies_seen = Vec::new();
        for task in bodies {
            bodies_seen.push(task.await.expect("slow body task"));
        }
        let mut readers_seen = Vec::new();
        for task in readers {
            readers_seen.push(task.await.expect("slow reader task"));
        }
        readers_left.store(0, Ordering::SeqCst);
        let _ = poller.await;
        (loris_seen, bodies_seen, readers_seen, handshakes_done)
    });
    attacking.store(false, Ordering::SeqCst);
    let attack_took = attack_started.elapsed();
    let (loris, bodies, readers, handshakes_done) = outcome;
    let legit = legit
        .join()
        .expect("legitimate client thread")
        .unwrap_or_else(|error| panic!("a legitimate request failed under attack: {error}"));
    let latencies: Vec<Duration> = legit.iter().map(|(_, took)| *took).collect();

    // The legitimate client was served throughout, promptly.
    let mut sorted = latencies.clone();
    sorted.sort();
    eprintln!(
        "attack: {} Slowloris, {} slow bodies, {} slow readers in {:.1} s (all Slowloris handshakes \
         done {:?} after the start); legitimate: {} requests, p50 {:?}, p99 {:?}, max {:?}",
        SLOWLORIS,
        SLOW_BODIES,
        SLOW_READERS,
        secs(attack_took),
        handshakes_done,
        latencies.len(),
        attack::percentile(&sorted, 50),
        attack::percentile(&sorted, 99),
        sorted.last().copied().unwrap_or_default(),
    );
    assert!(latencies.len() >= 30, "{} legitimate requests", latencies.len());
    let slowest = sorted.last().copied().unwrap_or_default();
    assert!(slowest < Duration::from_secs(5), "a legitimate request took {slowest:?} under attack");

    // Slowloris: cut under the header stage (4 s, at most 8 s), with a 408.
    let loris: Vec<Seen> = loris
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("a Slowloris connection: {error}"));
    // And the legitimate requests really ran while Slowloris connections were open.
    let last_loris = loris.iter().map(|s| s.closed.at).max().expect("Slowloris connections");
    let during = legit.iter().filter(|(started, took)| *started + *took <= last_loris).count();
    eprintln!("{during} legitimate requests completed while Slowloris connections were open");
    assert!(during >= 30, "only {during} legitimate requests ran during the Slowloris attack");
    let loris_times: Vec<Duration> = loris.iter().map(|s| s.closed.at - s.started).collect();
    let resets = loris.iter().filter(|s| s.closed.error.is_some()).count();
    eprintln!(
        "Slowloris closed after {} ({resets} ended by an error rather than a clean EOF)",
        spread(loris_times.clone())
    );
    let late = loris_times.iter().filter(|t| **t > Duration::from_secs(8 + 4)).count();
    assert_eq!(late, 0, "Slowloris connections open past header max + 4 s: {}", spread(loris_times));
    let not_408 = loris.iter().filter(|s| s.closed.status() != Some(408)).count();
    assert_eq!(
        not_408,
        0,
        "Slowloris connections closed without a 408, e.g. {:?}",
        loris.iter().find(|s| s.closed.status() != Some(408)).map(|s| &s.closed)
    );

    // Slow bodies: cut under the body stage (4 s + 1 s per 500 bytes), with a 408.
    let bodies: Vec<Seen> = bodies
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("a slow-body connection: {error}"));
    let body_times: Vec<Duration> = bodies.iter().map(|s| s.closed.at - s.started).collect();
    eprintln!("slow bodies closed after {}", spread(body_times.clone()));
    assert!(
        body_times.iter().all(|t| *t <= Duration::from_secs(4 + 4)),
        "slow bodies open past the body timeout + 4 s: {}",
        spread(body_times)
    );
    let not_408 = bodies.iter().filter(|s| s.closed.status() != Some(408)).count();
    assert_eq!(not_408, 0, "slow bodies closed without a 408");

    // Slow readers: the edge gives up on a response nobody reads, after about Timeout.
    let readers: Vec<(Duration, usize)> = readers
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|error| panic!("a slow-reader connection: {error}"));
    let reader_times: Vec<Duration> = readers.iter().map(|(t, _)| *t).collect();
    let most_read = readers.iter().map(|(_, n)| *n).max().unwrap_or(0);
    eprintln!(
        "slow readers: server side closed after {}; at most {most_read} response bytes of a \
         {BIG}-byte file delivered",
        spread(reader_times.clone())
    );
    assert!(
        reader_times.iter().all(|t| *t <= Duration::from_secs(5 + 20)),
        "slow readers held past Timeout + 20 s: {}",
        spread(reader_times)
    );

    // Nothing but the legitimate requests reached a worker.
    let lines = recorded(&record);
    let legit_lines = lines.iter().filter(|l| *l == "GET /app/x 0").count();
    assert_eq!(legit_lines, latencies.len(), "the record should hold exactly the legitimate requests");
    assert_eq!(
        lines.len(),
        latencies.len(),
        "requests other than the legitimate ones reached the pool: {:?}",
        lines.iter().filter(|l| *l != "GET /app/x 0").collect::<Vec<_>>()
    );
}

/// A partial head, then one more header byte every 2 s, until the server closes.
async fn slowloris(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    gate: Arc<tokio::sync::Semaphore>,
    established: Arc<AtomicUsize>,
) -> Result<Seen, String> {
    let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
    let mut stream = attack::tls_connect(addr, &tls).await.map_err(|e| format!("handshake: {e}"))?;
    drop(permit);
    // The header stage starts when the handshake is done.
    let started = Instant::now();
    established.fetch_add(1, Ordering::SeqCst);
    attack::send(&mut stream, b"GET / HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .map_err(|e| format!("partial head: {e}"))?;
    let closed = attack::trickle_until_closed(
        &mut stream,
        b"X-Loris: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        1,
        Duration::from_secs(2),
        Duration::from_secs(40),
    )
    .await
    .ok_or("still open after 40 s")?;
    Ok(Seen { started, closed })
}

/// A complete POST head announcing a megabyte, then 10 bytes every 2 s.
async fn slow_body(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    gate: Arc<tokio::sync::Semaphore>,
) -> Result<Seen, String> {
    let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
    let mut stream = attack::tls_connect(addr, &tls).await.map_err(|e| format!("handshake: {e}"))?;
    drop(permit);
    attack::send(&mut stream, b"POST /app/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n")
        .await
        .map_err(|e| format!("head: {e}"))?;
    let started = Instant::now();
    let closed = attack::trickle_until_closed(
        &mut stream,
        &[b'b'; 1000],
        10,
        Duration::from_secs(2),
        Duration::from_secs(40),
    )
    .await
    .ok_or("still open after 40 s")?;
    Ok(Seen { started, closed })
}

/// Asks for the big file with a small receive window and reads nothing, until the server's
/// side of the connection closes (seen in /proc/net/tcp); then drains what was sent, to show the
/// response was cut short. Returns how long the server held on, and the response bytes
/// delivered.
async fn slow_reader(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    gate: Arc<tokio::sync::Semaphore>,
    watch: Arc<attack::CloseWatch>,
    left: Arc<AtomicUsize>,
) -> Result<(Duration, usize), String> {
    let result = async {
        let permit = gate.acquire_owned().await.map_err(|e| e.to_string())?;
        let dial = Dial { recv_buffer: Some(16 * 1024), ..Dial::default() };
        let mut stream =
            attack::tls_connect_with(addr, &tls, dial).await.map_err(|e| format!("handshake: {e}"))?;
        drop(permit);
        let port = stream.get_ref().0.local_addr().map_err(|e| e.to_string())?.port();
        watch.watch(port);
        attack::send(&mut stream, b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .await
            .map_err(|e| format!("request: {e}"))?;
        let sent = Instant::now();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(45);
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let closed_at = loop {
            tick.tick().await;
            if let Some(at) = watch.closed(port) {
                break at;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err("the server still held the connection after 45 s".to_string());
            }
        };
        // Now read everything the kernels still held, to the server's close.
        let mut total = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        let mut first = Vec::new();
        let drained = tokio::time::timeout(Duration::from_secs(30), async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if first.len() < 64 {
                            first.extend_from_slice(&buf[..n.min(64)]);
                        }
                        total += n;
                    }
                }
            }
        })
        .await;
        if drained.is_err() {
            return Err(format!(
                "the connection never ended after the server closed its side ({total} bytes read)"
            ));
        }
        if attack::status_of(&first) != Some(200) {
            return Err(format!("unexpected response: {:?}", String::from_utf8_lossy(&first)));
        }
        if total >= BIG {
            return Err(format!("the whole response ({total} bytes) was delivered: the write never stalled"));
        }
        Ok((closed_at - sent, total))
    }
    .await;
    left.fetch_sub(1, Ordering::SeqCst);
    result
}

/// One client of the mod_reqtimeout test: what it sent, and when the server closed.
struct Timed {
    port: u16,
    took: Duration,
    closed: Closed,
}

/// Sends the request line, then trickles `chunk` bytes of a never-ending header every 100 ms.
async fn trickle_header(
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    chunk: usize,
) -> Result<Timed, String> {
    let mut stream = attack::tls_connect(addr, &tls).await.map_err(|e| format!("handshake: {e}"))?;
    let port = stream.get_ref().0.local_addr().map_err(|e| e.to_string())?.port();
    let started = Instant::now();
    attack::send(&mut stream, b"GET / HTTP/1.1\r\n").await.map_err(|e| format!("request line: {e}"))?;
    let mut pad = b"X-Pad: ".to_vec();
    pad.resize(4000, b'a');
    let closed = if chunk == 0 {
        attack::wait_closed(&mut stream, Duration::from_secs(20)).await
    } else {
        attack::trickle_until_closed(
            &mut stream,
            &pad,
            chunk,
            Duration::from_millis(100),
            Duration::from_secs(20),
        )
        .await
    }
    .ok_or("still open after 20 s")?;
    Ok(Timed { port, took: closed.at - started, closed })
}

/// The byte count of the header-stage expiry logged for the client on `port`.
fn logged_header_timeout(logs: &str, port: u16) -> Option<u64> {
    let client = format!("client=127.0.0.1:{port} ");
    let line = logs.lines().find(|l| l.contains("Request header read timeout") && l.contains(&client))?;
    line.split("Request header read timeout: ").nth(1)?.split(' ').next()?.parse().ok()
}

#[test]
fn reqtimeout_arithmetic_cuts_where_mod_reqtimeout_would() {
    let _serial = serial();
    let weir = Site::new().start("RequestReadTimeout header=2-6,MinRate=100\n");
    let tls = attack::tls_config(&weir.cert_pem);
    let addr = weir.addr();
    // Silent after the request line (16 bytes): 2 s + 16/100 s. At 50 bytes/s the deadline
    // 2.16 + t/2 meets t at about 4.3 s. At 150 bytes/s it runs ahead of t, up to the 6 s cap.
    let [silent, slow, faster] = runtime().block_on(async {
        let silent = tokio::spawn(trickle_header(addr, tls.clone(), 0));
        let slow = tokio::spawn(trickle_header(addr, tls.clone(), 5));
        let faster = tokio::spawn(trickle_header(addr, tls.clone(), 15));
        [silent.await.unwrap(), slow.await.unwrap(), faster.await.unwrap()]
    });
    let [silent, slow, faster] = [silent, slow, faster].map(|r| r.unwrap_or_else(|e| panic!("{e}")));
    eprintln!(
        "header stage cut: silent after {:.2} s, 50 B/s after {:.2} s ({} bytes), 150 B/s after \
         {:.2} s ({} bytes)",
        secs(silent.took),
        secs(slow.took),
        16 + slow.closed.sent,
        secs(faster.took),
        16 + faster.closed.sent
    );
    for (name, client, range) in
        [("silent", &silent, 1.5..3.5), ("50 B/s", &slow, 3.0..5.5), ("150 B/s", &faster, 5.0..7.5)]
    {
        assert!(
            range.contains(&secs(client.took)),
            "{name}: closed after {:?}, expected {range:?} s",
            client.took
        );
        assert_eq!(
            client.closed.status(),
            Some(408),
            "{name}: {:?}",
            String::from_utf8_lossy(&client.closed.received)
        );
    }
    // The info line names the stage and the bytes the stage received.
    let mut logged = [0u64; 3];
    assert!(
        wait_until(Duration::from_secs(5), || {
            let logs = weir.logs();
            for (slot, client) in [&silent, &slow, &faster].iter().enumerate() {
                match logged_header_timeout(&logs, client.port) {
                    Some(bytes) => logged[slot] = bytes,
                    None => return false,
                }
            }
            true
        }),
        "no 'Request header read timeout' line for each client\n{}",
        weir.logs()
    );
    assert_eq!(logged[0], 16, "the silent client sent only its request line");
    for (slot, client) in [(1, &slow), (2, &faster)] {
        let sent = 16 + client.closed.sent as u64;
        // A chunk or two may have been in flight when the deadline passed.
        assert!(
            logged[slot] <= sent && logged[slot] + 3 * 15 >= sent,
            "logged {} bytes, the client sent {sent}",
            logged[slot]
        );
    }
}

#[test]
fn a_saturated_pool_and_full_queue_get_503_with_retry_after_and_one_log_line() {
    let _serial = serial();
    let site = Site::new().with_example("testapp");
    let record = record_file(&site);
    let weir = site.env("TESTAPP_RECORD", &record.display().to_string()).start(
        "MaxRequestWorkers 2\nStartServers 2\nMinSpareServers 1\nMaxSpareServers 2\n\
             QueueTimeout 1\n",
    );
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let sleepers: Vec<_> = (0..2)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || client.get("/app/sleep?ms=6000"))
        })
        .collect();
    // Both workers are in the handler once both requests are on the record.
    assert!(
        wait_until(Duration::from_secs(10), || recorded(&record).len() == 2),
        "the sleepers did not reach both workers: {:?}\n{}",
        recorded(&record),
        weir.logs()
    );
    let refused: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let reply = client.get("/app/x");
                (started.elapsed(), reply)
            })
        })
        .collect();
    let mut waits = Vec::new();
    for request in refused {
        let (took, reply) = request.join().unwrap();
        let reply = reply.expect("a queued request failed");
        assert_eq!(reply.status, 503, "{}", reply.text());
        let retry: u64 = reply
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no Retry-After seconds: {:?}", reply.headers));
        assert!(retry >= 1, "Retry-After {retry}");
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(3500),
            "a 503 after {took:?}, expected after about QueueTimeout (1 s)"
        );
        waits.push(took);
    }
    eprintln!("queued requests refused after {}", spread(waits));
    assert_eq!(recorded(&record).len(), 2, "a refused request reached a worker: {:?}", recorded(&record));
    for sleeper in sleepers {
        let reply = sleeper.join().unwrap().expect("a sleeper failed");
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    assert_eq!(client.get("/app/x").unwrap().status, 200);

    // The edge says so once; the pool master, which sees every worker busy, may say so too.
    let line = "server reached MaxRequestWorkers setting, consider raising the MaxRequestWorkers setting";
    let logs = weir.logs();
    let all: Vec<&str> = logs.lines().filter(|l| l.contains(line)).collect();
    let from_edge = all.iter().filter(|l| l.contains("[core:")).count();
    eprintln!("MaxRequestWorkers lines: {all:#?}");
    assert_eq!(from_edge, 1, "the edge's line, once:\n{logs}");
    assert!(all.len() <= 2, "at most one more, from the pool master:\n{logs}");
}

#[test]
fn rate_limit_is_per_client_address() {
    let _serial = serial();
    let weir = Site::new().start("RateLimit 5/s burst=5\n");
    let tls = attack::tls_config(&weir.cert_pem);
    let addr = weir.addr();
    let request = b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let (statuses, refusal, other) = runtime().block_on(async {
        // Six requests back to back on one keep-alive connection: well inside the 200 ms one
        // token takes to come back.
        let from_one = Dial { from: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))), ..Dial::default() };
        let mut stream = attack::tls_connect_with(addr, &tls, from_one).await.unwrap();
        let mut statuses = Vec::new();
        let mut refusal = None;
        for _ in 0..6 {
            match attack::exchange(&mut stream, request).await {
                Ok(reply) => {
                    statuses.push(reply.status.to_string());
                    if reply.status == 429 {
                        refusal = Some(reply);
                        break;
                    }
                }
                Err(error) => {
                    statuses.push(format!("error: {error}"));
                    break;
                }
            }
        }
        let from_two = Dial { from: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2))), ..Dial::default() };
        let mut stream = attack::tls_connect_with(addr, &tls, from_two).await.unwrap();
        let other = attack::exchange(&mut stream, request).await.unwrap();
        (statuses, refusal, other)
    });
    let refusal = refusal.unwrap_or_else(|| panic!("no 429 among {statuses:?}"));
    let retry: u64 = refusal
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After seconds: {}", refusal.head));
    assert!(retry >= 1, "Retry-After {retry}");
    assert_eq!(other.status, 200, "another address has its own budget: {}", other.head);
    assert_eq!(
        statuses,
        ["200", "200", "200", "200", "200", "429"],
        "burst=5: five requests pass, the sixth is refused (each request must take one token)"
    );
}

#[test]
fn max_connections_per_ip_refuses_extra_connections_before_tls() {
    let _serial = serial();
    let weir = Site::new().start("MaxConnectionsPerIP 5\n");
    let tls = attack::tls_config(&weir.cert_pem);
    let addr = weir.addr();
    runtime().block_on(async {
        let mut held = Vec::new();
        for _ in 0..5 {
            held.push(attack::tls_connect(addr, &tls).await.expect("one of the five"));
        }
        // A sixth TLS client gets no handshake.
        let sixth = attack::tls_connect(addr, &tls).await;
        assert!(sixth.is_err(), "a sixth connection completed its handshake");
        // A sixth plain connection is closed before the server sends anything at all.
        let mut tcp = attack::tcp_connect_with(addr, Dial::default())
            .await
            .expect("the kernel accepts the TCP connection");
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "the sixth connection was not closed without data: {read:?}"
        );
        // Once one of the five goes, a new connection is admitted and served.
        drop(held.remove(0));
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let mut last;
        loop {
            match attack::tls_connect(addr, &tls).await {
                Ok(mut stream) => {
                    let reply = attack::exchange(&mut stream, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
                        .await
                        .expect("a request on the new connection");
                    assert_eq!(reply.status, 200, "{}", reply.head);
                    break;
                }
                Err(error) => last = error.to_string(),
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no connection admitted after one of the five closed: {last}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(held);
    });
}

/// h2 connections that never finish a request: one sends a HEADERS frame without END_HEADERS
/// and never the CONTINUATION that would end it, one sends no request at all. Neither reaches
/// the service, and neither closes after the edge's GOAWAY; the edge must close both itself, or
/// one source could hold half of MaxConnections for free and for ever.
#[test]
fn h2_connections_that_never_finish_a_request_are_closed() {
    use tokio::io::AsyncWriteExt;
    let weir = Site::new()
        .start("RequestReadTimeout handshake=5 header=2-3,MinRate=500 body=5\nKeepAliveTimeout 1\n");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let mut config = (*attack::tls_config(&weir.cert_pem)).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let config = Arc::new(config);
        // Preface, then an empty SETTINGS frame (length 0, type 4, no flags, stream 0).
        let mut start = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        start.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
        // HEADERS on stream 1, one HPACK byte (:method GET), END_HEADERS not set.
        let partial_headers = [0u8, 0, 1, 1, 0, 0, 0, 0, 1, 0x82];
        for (what, extra) in [("no request", &[][..]), ("an unfinished HEADERS block", &partial_headers[..])]
        {
            let mut stream = attack::tls_connect(weir.addr(), &config).await.expect("TLS");
            assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            stream.write_all(&start).await.expect("preface");
            stream.write_all(extra).await.expect("frames");
            let started = Instant::now();
            let mut buffer = [0u8; 4096];
            let closed = tokio::time::timeout(Duration::from_secs(30), async {
                // Whatever the server sends (SETTINGS, GOAWAY) is read and dropped, to the end.
                loop {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(_) => {}
                    }
                }
            })
            .await;
            assert!(
                closed.is_ok(),
                "an h2 connection with {what} was still open after 30 s\n{}",
                weir.logs()
            );
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what}: closed after {:?}",
                started.elapsed()
            );
        }
    });
}
