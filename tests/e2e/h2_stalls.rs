//! h2 streams that do not move: a client that withholds WINDOW_UPDATE writes nothing for a
//! write timeout to see, so the edge watches each connection's streams instead, and closes one
//! whose streams stand still past Timeout. Streams that move, however slowly, are left alone;
//! and every h2 answer still says how long it is.

use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;

use crate::support::attack::Dial;
use crate::support::h2::{self, RawH2, DATA};
use crate::support::{Site, Weir};

/// Counts its request body.
const COUNT_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n";

const FILE_SIZE: usize = 5_000_000;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// Timeout 3: streams that stand still for Timeout plus the edge's 5 s grace are cut.
fn site_with_a_big_file() -> Weir {
    let site = Site::new();
    site.doc("big.bin", &vec![b'z'; FILE_SIZE]);
    site.script("count", COUNT_SCRIPT);
    site.start("Timeout 3\nKeepAliveTimeout 1\n")
}

/// Bytes of DATA the server sent on `stream`.
fn data_on(h2: &RawH2, stream: u32) -> usize {
    h2.frames.iter().filter(|f| f.kind == DATA && f.stream == stream).map(|f| f.payload.len()).sum()
}

/// A client that asks for 5 MB and never opens its window was kept, stream and all, for as
/// long as it liked (still open after 40 s with Timeout 5). Now the connection is closed once
/// its stream has stood still past Timeout, and the log says why.
#[test]
fn a_client_that_never_opens_its_window_is_closed() {
    let weir = site_with_a_big_file();
    runtime().block_on(async {
        let mut h2 = RawH2::connect_with_window(&weir, 65_535).await;
        h2.headers(1, &h2::get("/big.bin"), true).await;
        let started = Instant::now();
        let first = h2.until(Duration::from_secs(10), |frames| frames.iter().any(|f| f.kind == DATA)).await;
        assert!(first, "no response data: {}\n{}", h2.log(), weir.logs());
        h2.until(Duration::from_secs(40), |_| false).await;
        let waited = started.elapsed();
        assert!(h2.closed, "still open after {waited:?}: {}\n{}", h2.log(), weir.logs());
        assert!(waited >= Duration::from_secs(3), "closed after only {waited:?}");
        assert!(data_on(&h2, 1) <= 65_535, "more than the window was sent: {}", data_on(&h2, 1));
    });
    let logged = crate::support::wait_until(Duration::from_secs(10), || {
        weir.logs().contains("a stream made no progress within Timeout")
    });
    assert!(logged, "no log line saying why\n{}", weir.logs());
}

/// A stalled stream is judged on its own: a client that starts and finishes a small request every
/// 2 s on the same connection kept a stream that never moved (and its buffers) for as long as it
/// liked. The connection is closed once the stalled stream has stood still past Timeout.
#[test]
fn a_stalled_stream_is_cut_though_its_neighbours_move() {
    let weir = site_with_a_big_file();
    runtime().block_on(async {
        // Streams start with no window at all; only the neighbours get some.
        let mut h2 = RawH2::connect_with_window(&weir, 0).await;
        h2.headers(1, &h2::get("/big.bin"), true).await;
        let started = Instant::now();
        let mut next = 3;
        while !h2.closed && started.elapsed() < Duration::from_secs(30) {
            h2.headers(next, &h2::get("/index.html"), true).await;
            h2.window_update(next, 1_000).await;
            next += 2;
            h2.until(Duration::from_secs(2), |_| false).await;
        }
        let took = started.elapsed();
        assert!(h2.closed, "still open after {took:?} with {} neighbours\n{}", next / 2, weir.logs());
        assert!(took < Duration::from_secs(20), "closed only after {took:?}");
        assert!(data_on(&h2, 3) > 0, "a neighbour was never answered: {}", h2.log());
    });
}

/// A small answer handed whole to h2 while the client's window is 1 byte used to end its stream
/// at once from the edge's side, with the rest of it waiting in h2's buffer; twenty such streams
/// were held until the idle limit (40 s by default). The last byte of a body now goes on its own,
/// so the stream stays watched until the client has taken the rest.
#[test]
fn small_answers_stuck_behind_a_one_byte_window_are_watched() {
    let site = Site::new();
    site.doc("small.bin", &vec![b's'; 10_000]);
    let weir = site.start("Timeout 3\nKeepAliveTimeout 1\n");
    runtime().block_on(async {
        let mut h2 = RawH2::connect_with_window(&weir, 1).await;
        for stream in (1..40).step_by(2) {
            h2.headers(stream, &h2::get("/small.bin"), true).await;
        }
        let started = Instant::now();
        h2.until(Duration::from_secs(35), |_| false).await;
        let took = started.elapsed();
        assert!(h2.closed, "still open after {took:?}: {}\n{}", h2.log(), weir.logs());
        assert!(took < Duration::from_secs(20), "closed only after {took:?} (the idle limit, not the stall)");
    });
}

/// A client reading 4 KiB a second takes far longer than Timeout 3 plus the grace over a 64 KiB
/// chunk of a file; it was cut though data reached it every second. Bodies now go to hyper in
/// pieces of 16 KiB, each a movement, so such a reader keeps its stream.
#[test]
fn a_reader_of_a_few_kib_a_second_is_not_cut() {
    let weir = site_with_a_big_file();
    runtime().block_on(async {
        let mut h2 = RawH2::connect_with_window(&weir, 4_096).await;
        h2.headers(1, &h2::get("/big.bin"), true).await;
        let started = Instant::now();
        while !h2.closed && started.elapsed() < Duration::from_secs(16) {
            h2.until(Duration::from_secs(1), |_| false).await;
            h2.window_update(0, 4_096).await;
            h2.window_update(1, 4_096).await;
        }
        assert!(
            !h2.closed,
            "cut after {:?} having read {} bytes\n{}",
            started.elapsed(),
            data_on(&h2, 1),
            weir.logs()
        );
        assert!(data_on(&h2, 1) >= 50_000, "read only {} bytes", data_on(&h2, 1));
    });
}

/// A client that reads slowly but steadily (a window of 64 KiB opened every second, so the
/// 5 MB take far longer than Timeout plus the grace) is moving, and gets the whole file.
#[test]
fn a_client_that_opens_its_window_slowly_keeps_its_stream() {
    let weir = site_with_a_big_file();
    runtime().block_on(async {
        const PIECE: u32 = 512 * 1024;
        let mut h2 = RawH2::connect_with_window(&weir, PIECE).await;
        h2.headers(1, &h2::get("/big.bin"), true).await;
        let started = Instant::now();
        let mut credited = PIECE as usize;
        while data_on(&h2, 1) < FILE_SIZE && !h2.closed && started.elapsed() < Duration::from_secs(60) {
            h2.until(Duration::from_secs(1), |_| false).await;
            let read = data_on(&h2, 1);
            // Keep one piece open ahead of what was read, and no more.
            if credited < read + PIECE as usize {
                let more = (read + PIECE as usize - credited) as u32;
                h2.window_update(0, more).await;
                h2.window_update(1, more).await;
                credited += more as usize;
            }
        }
        let took = started.elapsed();
        assert_eq!(data_on(&h2, 1), FILE_SIZE, "after {took:?}: {}\n{}", h2.log(), weir.logs());
        assert!(!h2.closed || took > Duration::from_secs(9), "{}", weir.logs());
        assert!(took > Duration::from_secs(8), "the read was meant to outlast Timeout plus grace: {took:?}");
    });
}

/// An upload that moves slowly (a piece a second, for longer than Timeout plus the grace) is
/// movement too: it reaches the script whole.
#[test]
fn a_slow_but_steady_h2_upload_is_not_cut() {
    let weir = site_with_a_big_file();
    runtime().block_on(async {
        let mut sender = h2::connect(&weir).await;
        let (feed, fed) = tokio::sync::mpsc::channel(1);
        let request = http::Request::post("/cgi-bin/count")
            .header("host", "localhost")
            .body(h2::Fed(fed))
            .expect("request");
        let answer = tokio::spawn(sender.send_request(request));
        const PIECES: usize = 12;
        for _ in 0..PIECES {
            feed.send(Bytes::from(vec![b'u'; 1000])).await.expect("feed");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        drop(feed);
        let response = answer.await.expect("task").unwrap_or_else(|e| panic!("{e}\n{}", weir.logs()));
        assert_eq!(response.status(), 200, "{}", weir.logs());
        let body = response.into_body().collect().await.expect("body").to_bytes();
        assert_eq!(String::from_utf8_lossy(&body).trim(), (PIECES * 1000).to_string());
    });
}

/// hyper writes content-length over h2 only when the body says how long it is; a wrapper that
/// hid that cost every h2 answer its length, and curl 7.88 then waited out its own timeout on
/// an early 413 to a streamed upload. Static files, scripts' declared lengths and the edge's
/// own pages all carry it.
#[test]
fn h2_answers_say_how_long_they_are() {
    let weir = site_with_a_big_file();
    runtime().block_on(async {
        let mut sender = h2::connect(&weir).await;
        for (path, status, length) in [
            ("/big.bin", 200, FILE_SIZE),
            ("/index.html", 200, "<h1>index</h1>\n".len()),
            ("/nothing-here", 404, 0),
        ] {
            let (_feed, fed) = tokio::sync::mpsc::channel(1);
            drop(_feed);
            let request =
                http::Request::get(path).header("host", "localhost").body(h2::Fed(fed)).expect("request");
            let response = sender.send_request(request).await.unwrap_or_else(|e| panic!("{path}: {e}"));
            assert_eq!(response.status(), status, "{path}");
            let declared =
                response.headers().get("content-length").and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = response.into_body().collect().await.expect("body").to_bytes();
            if length > 0 {
                assert_eq!(body.len(), length, "{path}");
            }
            assert_eq!(declared, Some(body.len().to_string()), "{path}: content-length");
        }
    });
}

/// A stream waiting in the queue for a worker stands still through no fault of its client: with
/// one worker busy 2.5 s a request and five requests at once, the last waits about 12 s, longer
/// than Timeout 3 plus the grace, and must still get its answer rather than a closed connection.
#[test]
fn a_stream_queued_for_a_worker_is_not_taken_for_a_stalled_client() {
    let site = Site::new();
    site.script("pause", "#!/bin/sh\nsleep 2.5\nprintf 'Content-Type: text/plain\\r\\n\\r\\ndone\\n'\n");
    let weir = site.start(
        "Timeout 3\nQueueTimeout 40\nStartServers 1\nMinSpareServers 1\nMaxSpareServers 2\nMaxRequestWorkers 1\n",
    );
    let statuses = runtime().block_on(async {
        let mut answers = Vec::new();
        for _ in 0..5 {
            let mut sender = h2::connect(&weir).await;
            answers.push(tokio::spawn(async move {
                let (_feed, fed) = tokio::sync::mpsc::channel(1);
                drop(_feed);
                let request = http::Request::get("/cgi-bin/pause")
                    .header("host", "localhost")
                    .body(h2::Fed(fed))
                    .expect("request");
                match sender.send_request(request).await {
                    Ok(response) => response.status().as_u16(),
                    Err(_) => 0,
                }
            }));
        }
        let mut statuses = Vec::new();
        for answer in answers {
            statuses.push(answer.await.unwrap_or(0));
        }
        statuses
    });
    assert_eq!(statuses, [200; 5], "{}", weir.logs());
}

/// A HEAD answer, a 204 and a 304 have no content, whatever a script writes: over h2 they went
/// out with the script's body in DATA frames and a content-length for it, and curl then failed
/// `--http2 -I` against any script (exit 92). Now no DATA carries content, and a 204 has no
/// content-length; a HEAD keeps the length its GET would have.
#[test]
fn h2_head_204_and_304_answers_carry_no_content() {
    let site = Site::new();
    site.script(
        "hello",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\nContent-Length: 6\\r\\n\\r\\nhello\\n'\n",
    );
    site.script(
        "nothing",
        "#!/bin/sh\nprintf 'Status: 204\\r\\nContent-Type: text/plain\\r\\n\\r\\nnot allowed\\n'\n",
    );
    site.script(
        "same",
        "#!/bin/sh\nprintf 'Status: 304\\r\\nContent-Type: text/plain\\r\\n\\r\\nnot allowed\\n'\n",
    );
    let weir = site.start("");
    for (method, path, status) in
        [("HEAD", "/cgi-bin/hello", 200), ("GET", "/cgi-bin/nothing", 204), ("GET", "/cgi-bin/same", 304)]
    {
        let outcome = runtime().block_on(h2::exchange(&weir, &h2::request(method, path), None));
        assert_eq!(outcome.status, Some(status), "{method} {path}: {}\n{}", outcome.frames, weir.logs());
        assert!(outcome.complete, "{method} {path}: {}", outcome.frames);
        assert!(outcome.body.is_empty(), "{method} {path} sent content: {}", outcome.frames);
    }
    let curl = std::path::Path::new("/usr/bin/curl");
    if curl.exists() {
        let url = format!("https://127.0.0.1:{}/cgi-bin/hello", weir.addr().port());
        let out = std::process::Command::new(curl)
            .args(["-sk", "--http2", "-I", "--max-time", "20", &url])
            .output()
            .expect("run curl");
        let head = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
        assert_eq!(out.status.code(), Some(0), "{head}\n{}", String::from_utf8_lossy(&out.stderr));
        assert!(head.contains("content-length: 6"), "{head}");
    }
}

/// Open descriptors of a process now.
fn open_descriptors(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

/// One h2 connection can hold 100 streams, and a stalled stream of a large file holds that file
/// open until it is cut at Timeout + 5 s. From one address, six connections × 99 such streams took
/// an edge with 400 descriptors to its limit: accept() failed, and a client from another address
/// got nothing. Streams beyond the first of a connection now take places of
/// MaxConnectionsPerIP while their answer is in flight; one that finds none waits, then gets 503.
#[test]
fn one_source_holding_stalled_h2_streams_cannot_take_every_descriptor() {
    const LIMIT: u32 = 400;
    let site = Site::new().with_open_file_limit(LIMIT);
    site.doc("big.bin", &vec![b'z'; FILE_SIZE]);
    site.doc("mid.bin", &vec![b'm'; 200_000]);
    let weir = site.start("Timeout 30\nKeepAliveTimeout 30\n");
    let (_, edge) = weir.roles();
    let attacker = Dial { from: Some("127.0.0.2".parse().expect("address")), recv_buffer: None };
    let bystander = Dial { from: Some("127.0.0.3".parse().expect("address")), recv_buffer: None };
    runtime().block_on(async {
        // Streams start with no window: each answer stands still with its file open.
        // Its own streams use up the source's share, so later connections may be refused.
        let mut held = Vec::new();
        for _ in 0..6 {
            let Ok(mut h2) = RawH2::connect_from(&weir, 0, attacker).await else {
                continue;
            };
            for stream in (1..=197).step_by(2) {
                h2.headers(stream, &h2::get("/big.bin"), true).await;
            }
            h2.until(Duration::from_millis(500), |_| false).await;
            held.push(h2);
        }
        // Its share: MaxConnectionsPerIP auto, half of what the descriptors allow.
        let peak = open_descriptors(edge.pid);
        assert!(
            peak < LIMIT as usize / 2,
            "the edge holds {peak} of its {LIMIT} descriptors for one source\n{}",
            weir.logs()
        );
        // A client from another address is served at once, over h2 and HTTP/1.1, files that
        // are streamed from disk (200 kB) and files sent from memory alike.
        let started = Instant::now();
        let mut h2 = RawH2::connect_from(&weir, 0x7fff_ffff, bystander)
            .await
            .expect("an h2 connection from another address");
        h2.headers(1, &h2::get("/mid.bin"), true).await;
        h2.headers(3, &h2::get("/index.html"), true).await;
        for stream in [1, 3] {
            let outcome = h2.finish(stream, Duration::from_secs(10), Duration::ZERO).await;
            assert_eq!(outcome.status, Some(200), "h2 stream {stream}: {}\n{}", outcome.frames, weir.logs());
            assert!(outcome.complete, "h2 stream {stream} incomplete: {}", outcome.frames);
        }
        let config = crate::support::attack::tls_config(&weir.cert_pem);
        let mut h1 = crate::support::attack::tls_connect_with(weir.addr(), &config, bystander)
            .await
            .expect("a connection from another address");
        let reply =
            crate::support::attack::exchange(&mut h1, b"GET /mid.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
                .await
                .expect("an HTTP/1.1 answer");
        assert_eq!(
            crate::support::attack::status_of(reply.head.as_bytes()),
            Some(200),
            "{}\n{}",
            reply.head,
            weir.logs()
        );
        assert_eq!(reply.body.len(), 200_000);
        assert!(started.elapsed() < Duration::from_secs(8), "the bystander waited {:?}", started.elapsed());
        assert!(!weir.logs().contains("Too many open files"), "descriptors ran out:\n{}", weir.logs());
        let now = open_descriptors(edge.pid);
        assert!(now < LIMIT as usize / 2, "the edge holds {now} of its {LIMIT} descriptors");
        // The attacker's streams beyond its share were answered 503, not left to hold files.
        // They waited a while for a place first.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut refused = 0;
        while refused == 0 && Instant::now() < deadline {
            for h2 in &mut held {
                h2.until(Duration::from_millis(500), |_| false).await;
                refused += (1..=197).step_by(2).filter(|s| h2.outcome(*s).status == Some(503)).count();
            }
        }
        assert!(refused > 0, "no stream of the attacker's was refused\n{}", weir.logs());
        assert!(weir.logs().contains("h2 streams refused with 503"), "no log line\n{}", weir.logs());
    });
    assert!(!weir.logs().contains("Too many open files"), "descriptors ran out:\n{}", weir.logs());
}

/// A client that opens a large window and then reads nothing lets the edge fill each stream's
/// buffers: 403 KiB per stream measured (hyper's send buffer of 256 KiB, and 64 KiB file reads),
/// so 495 such streams cost 200 MB. Now a stream buffers 64 KiB and reads 16 KiB pieces: about
/// 110 KiB each.
#[test]
fn a_stream_whose_client_reads_nothing_holds_little_memory() {
    const STREAMS: u64 = 5 * 99;
    let site = Site::new();
    site.doc("big.bin", &vec![b'z'; FILE_SIZE]);
    let weir = site.start("Timeout 60\nKeepAliveTimeout 60\nMaxConnectionsPerIP 0\n");
    let (_, edge) = weir.roles();
    let before = crate::support::procs::status_kib(edge.pid, "VmRSS");
    runtime().block_on(async {
        let mut held = Vec::new();
        for _ in 0..5 {
            let mut h2 = RawH2::connect(&weir).await;
            for stream in (1..=197).step_by(2) {
                h2.headers(stream, &h2::get("/big.bin"), true).await;
            }
            held.push(h2);
        }
        // Until the edge has filled what it will fill: its memory stops growing.
        let mut last = 0;
        let settled = crate::support::wait_until(Duration::from_secs(20), || {
            std::thread::sleep(Duration::from_millis(300));
            let now = crate::support::procs::status_kib(edge.pid, "VmRSS");
            std::mem::replace(&mut last, now) == now
        });
        assert!(settled, "the edge's memory kept growing");
        let each = last.saturating_sub(before) / STREAMS;
        assert!(each <= 160, "{each} KiB held per stream whose client reads nothing\n{}", weir.logs());
    });
}

/// An h2 client has as many answers in flight as it could have HTTP/1.1 connections: with
/// MaxConnectionsPerIP 8, eight answers at once on one connection are all served (counted as four
/// places each, one client's 20 parallel downloads got 503 for four of them where 20 HTTP/1.1
/// connections were all served); a ninth waits for a place, and gets 503 if none comes free.
#[test]
fn an_h2_client_has_as_many_answers_in_flight_as_http1_connections() {
    let site = Site::new();
    site.doc("big.bin", &vec![b'z'; FILE_SIZE]);
    let weir = site.start("Timeout 30\nMaxConnectionsPerIP 8\n");
    runtime().block_on(async {
        // No window: every answer stays in flight.
        let mut h2 = RawH2::connect_with_window(&weir, 0).await;
        for stream in (1..=15).step_by(2) {
            h2.headers(stream, &h2::get("/big.bin"), true).await;
        }
        let answered = |frames: &[h2::Frame]| {
            (1..=15).step_by(2).all(|s| frames.iter().any(|f| f.stream == s && f.kind == h2::HEADERS))
        };
        assert!(h2.until(Duration::from_secs(10), answered).await, "not all answered: {}", h2.log());
        for stream in (1..=15).step_by(2) {
            assert_eq!(h2.outcome(stream).status, Some(200), "stream {stream}: {}", h2.log());
        }
        let asked = Instant::now();
        h2.headers(17, &h2::get("/big.bin"), true).await;
        let ninth = h2.finish(17, Duration::from_secs(15), Duration::ZERO).await;
        assert_eq!(ninth.status, Some(503), "{}", ninth.frames);
        assert!(asked.elapsed() >= Duration::from_secs(4), "refused after only {:?}", asked.elapsed());
    });
}
