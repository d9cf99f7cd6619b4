//! Bodies at the edge: requests are routed from their head, so an unwanted body is never
//! stored; bodies and responses of any size pass with bounded memory; the spill space has a cap;
//! and a slow reader does not hold a worker.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{attack, h2, procs, wait_until, Site, Weir};

/// How much the edge's peak RSS may grow while it carries a body of hundreds of MB.
const GROWTH_LIMIT_KIB: u64 = 32 * 1024;

/// 300 MB, as in the report that found the edge holding whole bodies.
const BIG: usize = 300 * 1024 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

async fn connect(weir: &Weir) -> attack::Tls {
    attack::tls_connect(weir.addr(), &attack::tls_config(&weir.cert_pem)).await.expect("TLS connection")
}

/// Reads until the end of a response head; returns the head and whatever body bytes followed.
async fn read_head(stream: &mut attack::Tls, within: Duration) -> (String, Vec<u8>) {
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
            let rest = got.split_off(end + 4);
            return (String::from_utf8_lossy(&got).into_owned(), rest);
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            other => panic!(
                "no response head within {within:?}: {other:?}, got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[test]
fn a_300_mb_post_through_cgi_leaves_the_edges_peak_memory_flat() {
    let site = Site::new();
    site.script("count", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n");
    // One source may spill a quarter of SpillLimit.
    let weir = site.start("LimitRequestBody 0\nSpillLimit 2G\n");
    let (_, edge) = weir.roles();
    let before = procs::status_kib(edge.pid, "VmHWM");
    let reply = runtime().block_on(async {
        let mut stream = connect(&weir).await;
        let head = format!(
            "POST /cgi-bin/count HTTP/1.1\r\nHost: localhost\r\nContent-Length: {BIG}\r\nConnection: close\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let piece = vec![b'x'; 256 * 1024];
        for _ in 0..BIG / piece.len() {
            stream.write_all(&piece).await.expect("body");
        }
        // The last records may still wait in the TLS layer when the socket was full.
        stream.flush().await.expect("flush");
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut all)).await;
        String::from_utf8_lossy(&all).into_owned()
    });
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}\n{}", weir.logs());
    assert!(reply.contains(&BIG.to_string()), "the script counted every byte: {reply}");
    let growth = procs::status_kib(edge.pid, "VmHWM").saturating_sub(before);
    assert!(growth < GROWTH_LIMIT_KIB, "the edge's VmHWM grew by {growth} KiB for a {BIG}-byte body");
}

/// A 300 MB CGI response read slowly: the edge's peak memory stays flat, and the worker is free
/// again long before the client has read the response.
#[test]
fn a_slowly_read_300_mb_response_holds_neither_memory_nor_the_worker() {
    let site = Site::new();
    site.script("big", &format!("#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nhead -c {BIG} /dev/zero\n"));
    let weir = site.start("SpillLimit 2G\nStartServers 1\nMinSpareServers 1\nMaxSpareServers 2\n");
    let (_, edge) = weir.roles();
    let before = procs::status_kib(edge.pid, "VmHWM");
    let status_client = crate::support::client::Client::new(weir.addr(), &weir.cert_pem);
    let busy = move || {
        status_client.get("/server-status?auto").ok().and_then(|reply| {
            reply.text().lines().find_map(|l| l.strip_prefix("BusyWorkers: ").map(str::to_string))
        })
    };
    let (received, idle_while_reading) = runtime().block_on(async {
        let mut stream = connect(&weir).await;
        stream
            .write_all(b"GET /cgi-bin/big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
        let (head, rest) = read_head(&mut stream, Duration::from_secs(30)).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let mut received = rest.len();
        let mut chunk = vec![0u8; 64 * 1024];
        // A slow reader, ~10 MB/s (a pause after each MiB), until the worker is seen idle or
        // half the response is read; then it reads the rest at full speed. Paced by the amount
        // read, not by time, so a loaded machine slows the worker and the reader alike.
        let mut idle_while_reading = None;
        let mut next_pause = 1 << 20;
        let started = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => received += n,
                _ => break,
            }
            if idle_while_reading.is_none() && received >= next_pause && received < BIG / 2 {
                next_pause += 1 << 20;
                tokio::time::sleep(Duration::from_millis(100)).await;
                let seen = tokio::task::spawn_blocking(busy.clone()).await.ok().flatten();
                if seen.as_deref() == Some("0") {
                    idle_while_reading = Some(received);
                }
            }
            if started.elapsed() > Duration::from_secs(120) {
                break;
            }
        }
        (received, idle_while_reading)
    });
    // The chunked framing adds a few bytes per chunk; the body itself is BIG bytes.
    assert!(received >= BIG, "received {received} of {BIG}\n{}", weir.logs());
    let growth = procs::status_kib(edge.pid, "VmHWM").saturating_sub(before);
    assert!(growth < GROWTH_LIMIT_KIB, "the edge's VmHWM grew by {growth} KiB for a {BIG}-byte response");
    assert!(
        idle_while_reading.is_some(),
        "no worker was idle again before the client had read half of the response"
    );
}

/// A body for a static file, a 404, a 405 and a 403 is neither waited for nor stored: the answer
/// comes while the client has sent 1 MiB of a declared 1 GiB.
#[test]
fn an_unwanted_body_is_answered_from_the_head_and_never_stored() {
    let site = Site::new();
    let weir = site.start(
        "LimitRequestBody 0\n<Location /server-status>\nSetHandler server-status\nRequire ip 10.9.9.9\n</Location>\n",
    );
    let (_, edge) = weir.roles();
    let before = procs::status_kib(edge.pid, "VmHWM");
    let cases = [
        ("GET", "/index.html", 200),
        ("GET", "/missing.html", 404),
        ("POST", "/index.html", 405),
        ("GET", "/server-status", 403),
    ];
    runtime().block_on(async {
        for (method, path, want) in cases {
            let mut stream = connect(&weir).await;
            let head =
                format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1073741824\r\n\r\n");
            stream.write_all(head.as_bytes()).await.expect("head");
            stream.write_all(&vec![b'x'; 1 << 20]).await.expect("first MiB");
            let started = Instant::now();
            let (head, _) = read_head(&mut stream, Duration::from_secs(10)).await;
            assert_eq!(status_of(&head), want, "{method} {path}: {head}");
            assert!(head.to_ascii_lowercase().contains("connection: close"), "{head}");
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{method} {path} took {:?}",
                started.elapsed()
            );
        }
    });
    let growth = procs::status_kib(edge.pid, "VmHWM").saturating_sub(before);
    assert!(growth < 8 * 1024, "the edge's VmHWM grew by {growth} KiB for bodies it did not want");
    // A small unwanted body is read and dropped, and the connection goes on.
    runtime().block_on(async {
        let mut stream = connect(&weir).await;
        stream
            .write_all(b"POST /index.html HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .expect("first");
        let (first, _) = read_head(&mut stream, Duration::from_secs(10)).await;
        assert_eq!(status_of(&first), 405, "{first}");
        assert!(!first.to_ascii_lowercase().contains("connection: close"), "{first}");
    });
}

/// With a small SpillLimit, a body that would pass it gets 503 with Retry-After, and the error
/// log says why. Chunked, so it is refused as it passes the limit, not from a declared length.
#[test]
fn a_body_past_the_spill_limit_gets_503_and_one_log_line() {
    let site = Site::new();
    site.script("count", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n");
    let weir = site.start("SpillLimit 1M\nSpillLimitPerSource 1M\n");
    let (head, _) = runtime().block_on(async {
        let stream = connect(&weir).await;
        let (mut reader, mut writer) = tokio::io::split(stream);
        let total = 8 << 20;
        let sender = tokio::spawn(async move {
            let head =
                "POST /cgi-bin/count HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n";
            let _ = writer.write_all(head.as_bytes()).await;
            let mut piece = b"10000\r\n".to_vec();
            piece.extend_from_slice(&[b'x'; 64 * 1024]);
            piece.extend_from_slice(b"\r\n");
            for _ in 0..total / (64 * 1024) {
                if writer.write_all(&piece).await.is_err() {
                    break;
                }
            }
        });
        let mut got = Vec::new();
        let mut chunk = vec![0u8; 4096];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            match tokio::time::timeout_at(deadline, reader.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
                _ => break,
            }
        }
        sender.abort();
        (String::from_utf8_lossy(&got).into_owned(), ())
    });
    assert_eq!(status_of(&head), 503, "{head}\n{}", weir.logs());
    assert!(head.to_ascii_lowercase().contains("retry-after:"), "{head}");
    let logged = wait_until(Duration::from_secs(10), || weir.logs().contains("SpillLimit reached"));
    assert!(logged, "no error-log line\n{}", weir.logs());
}

/// A client that leaves while its body is still going to a script that writes before it reads:
/// the edge stops sending the body with the rest of the exchange, so the worker (blocked writing
/// output nobody reads any more) gets an error and is free again. A send left running on its own
/// kept both ends waiting on each other, holding the body's spill space, until the pool master
/// killed the worker as busy past Timeout; a request meanwhile got 504.
#[test]
fn a_client_that_leaves_mid_exchange_does_not_leave_the_worker_stuck() {
    let site = Site::new();
    site.script(
        "late",
        "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nhead -c 20000000 /dev/zero\ncat >/dev/null\n",
    );
    site.script("hello", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello\\n'\n");
    // One worker, so a stuck one shows as the next request not being served (504 after
    // Timeout); a spill space that holds the body and little more, so the response waits for
    // the client instead of spilling. Timeout 10, not less: it also bounds each read of the
    // body, and on a loaded 2-core machine a 4 MB upload can pause that long between reads.
    let weir = site.start(
        "Timeout 10\nSpillLimit 5M\nSpillLimitPerSource 5M\nStartServers 1\nMinSpareServers 1\nMaxSpareServers 1\nMaxRequestWorkers 1\n",
    );
    runtime().block_on(async {
        let mut stream = connect(&weir).await;
        let len = 4_000_000;
        let head = format!("POST /cgi-bin/late HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("head");
        stream.write_all(&vec![b'x'; len]).await.expect("body");
        // The TLS layer may still hold the body's tail when write_all returns: without the flush
        // the edge waited out Timeout for it (a 408) on a loaded machine.
        stream.flush().await.expect("flush");
        let (head, _) = read_head(&mut stream, Duration::from_secs(20)).await;
        assert_eq!(status_of(&head), 200, "{head}");
        // The client goes away without reading the response.
    });
    // The next request goes to that same worker, which must be free at once, not killed by
    // the pool master after Timeout (with this request answered 504 meanwhile).
    let client = crate::support::client::Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get("/cgi-bin/hello").map(|reply| (reply.status, reply.text()));
    assert!(matches!(reply, Ok((200, _))), "{reply:?}\n{}", weir.logs());
    assert!(!weir.logs().contains("busy for more than Timeout"), "{}", weir.logs());
}

/// A client that sends a body fast, then stalls: with MinRate and no maximum (the default body
/// stage, as in Apache), 4 MB received move the stage's deadline more than two hours away, so
/// only Timeout, which bounds each read as Apache's core Timeout does, ends the wait: 408.
/// Seen when a test client left the end of a 300 MB body unflushed in its TLS layer: the edge
/// waited for it past the client's two minutes.
#[test]
fn a_body_that_stalls_after_a_fast_start_ends_within_timeout() {
    let site = Site::new();
    site.script("count", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n");
    let weir = site.start("Timeout 3\n");
    runtime().block_on(async {
        for path in ["/cgi-bin/count", "/index.html"] {
            let mut stream = connect(&weir).await;
            let head = format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8000000\r\n\r\n");
            stream.write_all(head.as_bytes()).await.expect("head");
            let started = Instant::now();
            // Half the body, then nothing; a refused one may be cut off while it is sent.
            let _ = stream.write_all(&vec![b'x'; 4_000_000]).await;
            let _ = stream.flush().await;
            let mut got = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut got)).await;
            let reply = String::from_utf8_lossy(&got);
            let want = if path == "/index.html" { 405 } else { 408 };
            assert_eq!(status_of(&reply), want, "{path}: {reply}\n{}", weir.logs());
            assert!(started.elapsed() < Duration::from_secs(15), "{path}: {:?}", started.elapsed());
        }
    });
}

/// The same over h2: a stream whose body stalls is answered 408 within Timeout.
#[test]
fn an_h2_body_that_stalls_after_a_fast_start_ends_within_timeout() {
    let site = Site::new();
    site.script("count", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n");
    let weir = site.start("Timeout 3\n");
    let (status, took) = runtime().block_on(async {
        let (response, body) = h2_request(&weir, "POST", "/cgi-bin/count", 8_000_000).await;
        let started = Instant::now();
        let piece = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..4_000_000 / piece.len() {
            if body.send(piece.clone()).await.is_err() {
                break;
            }
        }
        // The body stays open, and nothing more comes.
        let status = tokio::time::timeout(Duration::from_secs(20), response).await;
        drop(body);
        (status.ok().and_then(|joined| joined.ok()).and_then(|sent| sent.ok()), started.elapsed())
    });
    assert_eq!(status, Some(408), "{}", weir.logs());
    assert!(took < Duration::from_secs(15), "{took:?}");
}

/// An h2 request declaring a body of `length` bytes: the response's status (in a task, so the
/// body can be fed meanwhile) and the body's sender.
async fn h2_request(
    weir: &Weir,
    method: &str,
    path: &str,
    length: u64,
) -> (tokio::task::JoinHandle<Result<u16, String>>, tokio::sync::mpsc::Sender<bytes::Bytes>) {
    let mut sender = h2::connect(weir).await;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let request = http::Request::builder()
        .method(method)
        .uri(format!("https://localhost{path}"))
        .header("content-length", length)
        .body(h2::Fed(rx))
        .expect("request");
    let response = tokio::spawn(async move {
        sender
            .send_request(request)
            .await
            .map(|response| response.status().as_u16())
            .map_err(|e| e.to_string())
    });
    (response, tx)
}

/// An h2 GET: the status, and the body's length or the error that ended it.
async fn h2_get_body(weir: &Weir, path: &str) -> (u16, Result<usize, String>) {
    use http_body_util::BodyExt;
    let mut sender = h2::connect(weir).await;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(tx);
    let request =
        http::Request::builder().uri(format!("https://localhost{path}")).body(h2::Fed(rx)).expect("request");
    let exchange = async {
        let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map(|all| all.to_bytes().len());
        Ok::<_, String>((status, body.map_err(|e| format!("{e:?}"))))
    };
    match tokio::time::timeout(Duration::from_secs(20), exchange).await {
        Ok(Ok(answer)) => answer,
        Ok(Err(error)) => (0, Err(error)),
        Err(_) => (0, Err("no answer in 20 s".to_string())),
    }
}

/// Unnamed files the process holds open: its spill files (`O_TMPFILE` or unlinked at once).
fn spill_files(pid: i32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().ends_with("(deleted)"))
        .count()
}

/// Over h2, a body for a static file, a 404 and a 405 is not waited for either: with 1 GiB
/// declared and 1 MiB sent (the stream left open), the status comes at once, while the edge
/// holds no spill file and its peak memory stays flat.
#[test]
fn an_unwanted_h2_body_is_answered_from_the_head_and_never_stored() {
    let site = Site::new();
    let weir = site.start("LimitRequestBody 0\n");
    let (_, edge) = weir.roles();
    let before = procs::status_kib(edge.pid, "VmHWM");
    let cases = [("/index.html", "GET", 200), ("/missing.html", "GET", 404), ("/index.html", "POST", 405)];
    runtime().block_on(async {
        for (path, method, want) in cases {
            let (response, body) = h2_request(&weir, method, path, 1 << 30).await;
            let started = Instant::now();
            let piece = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
            for _ in 0..16 {
                // The edge may reset the stream as soon as it has answered.
                if tokio::time::timeout(Duration::from_secs(5), body.send(piece.clone())).await.is_err() {
                    break;
                }
            }
            let status = tokio::time::timeout(Duration::from_secs(10), response).await;
            let status = status.ok().and_then(|joined| joined.ok()).and_then(|sent| sent.ok());
            assert_eq!(status, Some(want), "{method} {path}\n{}", weir.logs());
            assert!(started.elapsed() < Duration::from_secs(5), "{method} {path}: {:?}", started.elapsed());
            assert_eq!(spill_files(edge.pid), 0, "{method} {path}: the edge spilled a body it did not want");
            drop(body);
        }
    });
    let growth = procs::status_kib(edge.pid, "VmHWM").saturating_sub(before);
    assert!(growth < 8 * 1024, "the edge's VmHWM grew by {growth} KiB for h2 bodies it did not want");
}

/// A worker that dies after its response head went out: the client's response is cut, never
/// made to look whole (h1: the connection closes without the last chunk; h2: the stream is
/// reset), the error log says so, and the next request is served.
#[test]
fn a_worker_that_dies_mid_response_cuts_the_clients_response() {
    let site = Site::new();
    // The script's output can only all be in the pipe once the worker has read from it at least
    // twice, and the worker writes what it read before it reads again: so with 300 KB (more than
    // the 64 KiB pipe and the worker's 32 KiB output buffer together, twice over) the head has
    // gone to the edge when the script kills its worker (its parent, running as the same user).
    // With 100 KB the kill could come between the worker's first read and its first write.
    site.script(
        "dies",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nhead -c 300000 /dev/zero | tr '\\0' a\nkill -9 $PPID\nsleep 5\n",
    );
    site.script("hello", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello\\n'\n");
    let weir = site.start("");
    let (head, body) = runtime().block_on(async {
        let mut stream = connect(&weir).await;
        stream.write_all(b"GET /cgi-bin/dies HTTP/1.1\r\nHost: localhost\r\n\r\n").await.expect("request");
        let (head, mut body) = read_head(&mut stream, Duration::from_secs(20)).await;
        // The edge must end the connection: it cannot finish the message.
        let ended = tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut body)).await;
        assert!(ended.is_ok(), "the connection stayed open after the worker died\n{}", weir.logs());
        (head, body)
    });
    assert_eq!(status_of(&head), 200, "{head}");
    assert!(head.to_ascii_lowercase().contains("transfer-encoding: chunked"), "{head}");
    assert!(!body.ends_with(b"0\r\n\r\n"), "a cut response must not end with the last chunk");
    let a = body.iter().filter(|&&b| b == b'a').count();
    assert!(a < 300_000, "the client got the whole body ({a} bytes) though the worker died");
    let logged = wait_until(Duration::from_secs(10), || weir.logs().contains("response cut short"));
    assert!(logged, "no error-log line for the cut response\n{}", weir.logs());
    let h2 = runtime().block_on(h2_get_body(&weir, "/cgi-bin/dies"));
    match h2 {
        (200, Err(error)) => assert!(!error.is_empty()),
        other => panic!("over h2 the stream must be reset after the head: {other:?}\n{}", weir.logs()),
    }
    let client = crate::support::client::Client::new(weir.addr(), &weir.cert_pem);
    let next = wait_until(Duration::from_secs(20), || {
        client.get("/cgi-bin/hello").is_ok_and(|reply| reply.status == 200 && reply.text() == "hello\n")
    });
    assert!(next, "the next request was not served\n{}", weir.logs());
}

/// A body for a script that is not there (or may not run) is refused from the head, like any
/// other unwanted body: with 1 GiB declared and 1 MiB sent, the 404 or 403 comes at once and
/// the edge holds no spill file. Before, the edge stored the body whole before the worker's 404.
#[test]
fn a_body_for_a_missing_script_is_refused_from_the_head() {
    let site = Site::new();
    site.script("count", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n");
    std::fs::write(site.path().join("cgi-bin/notexec"), "#!/bin/sh\n").expect("write");
    // Executable by its owner (root) only: the workers' account cannot run it. (Run as root,
    // the tests' workers are nobody; run as one user, that user owns it and may.)
    site.script("rootonly", "#!/bin/sh\n");
    let root_only = site.path().join("cgi-bin/rootonly");
    std::fs::set_permissions(&root_only, std::os::unix::fs::PermissionsExt::from_mode(0o700)).expect("chmod");
    let as_root = nix::unistd::Uid::effective().is_root();
    site.doc("app/real.sh", b"echo\n");
    let weir = site.start("LimitRequestBody 0\nSpillLimit 4G\nCGIInterpreter .sh /bin/sh\n");
    let (_, edge) = weir.roles();
    let cases = [
        ("/cgi-bin/nonexist", 404),
        ("/cgi-bin/nonexist/with/info", 404),
        ("/cgi-bin/notexec", 403),
        ("/cgi-bin/rootonly", if as_root { 403 } else { 0 }),
        ("/app/missing.sh", 404),
        ("/nothere/x.sh/info", 404),
    ];
    runtime().block_on(async {
        for (path, want) in cases {
            if want == 0 {
                continue;
            }
            let mut stream = connect(&weir).await;
            let head =
                format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1073741824\r\n\r\n");
            stream.write_all(head.as_bytes()).await.expect("head");
            let started = Instant::now();
            // The answer may come, and the connection close, while this is being sent.
            let _ = stream.write_all(&vec![b'x'; 1 << 20]).await;
            let (head, _) = read_head(&mut stream, Duration::from_secs(10)).await;
            assert_eq!(status_of(&head), want, "{path}: {head}\n{}", weir.logs());
            assert!(started.elapsed() < Duration::from_secs(5), "{path} took {:?}", started.elapsed());
            assert_eq!(spill_files(edge.pid), 0, "{path}: the edge spilled a body for nothing");
        }
    });
    // What can run still gets its body.
    let client = crate::support::client::Client::new(weir.addr(), &weir.cert_pem);
    let reply =
        client.request(crate::support::client::Proto::H1, "POST", "/cgi-bin/count", vec![b'z'; 500_000]);
    assert!(matches!(&reply, Ok(r) if r.status == 200 && r.text().trim() == "500000"), "{reply:?}");
}

/// Bodies trickled a few bytes at a time (slowhttptest -B) cost the edge no read buffer while
/// they wait: 400 such connections grow its resident memory by what their TLS sessions need,
/// not by a 64 KiB buffer each (that was 84 KiB a connection, measured with 2,000).
#[test]
fn trickled_bodies_hold_no_read_buffer_while_they_wait() {
    const CONNECTIONS: usize = 400;
    let site = Site::new();
    site.script("post", "#!/bin/sh\ncat >/dev/null\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\n");
    let weir = site.start("MaxConnectionsPerIP 0\nRequestReadTimeout body=60\nTimeout 60\n");
    let (_, edge) = weir.roles();
    attack::raise_nofile_limit();
    let runtime = runtime();
    let before = procs::status_kib(edge.pid, "VmRSS");
    let growth = runtime.block_on(async {
        let config = attack::tls_config(&weir.cert_pem);
        let mut held = Vec::new();
        for _ in 0..CONNECTIONS {
            let mut tls = attack::tls_connect(weir.addr(), &config).await.expect("TLS connection");
            let head = "POST /cgi-bin/post HTTP/1.1\r\nHost: localhost\r\nContent-Length: 8192\r\n\r\n";
            tls.write_all(head.as_bytes()).await.expect("head");
            tls.write_all(b"0123456789").await.expect("first body bytes");
            tls.flush().await.expect("flush");
            held.push(tls);
        }
        // Another few bytes on each, as a trickling client sends them.
        for tls in &mut held {
            tls.write_all(b"abcdefghij").await.expect("more body bytes");
            tls.flush().await.expect("flush");
        }
        // The edge has taken the bytes once its memory stops changing between two looks.
        let mut last = 0;
        let settled = wait_until(Duration::from_secs(10), || {
            let now = procs::status_kib(edge.pid, "VmRSS");
            std::mem::replace(&mut last, now) == now
        });
        assert!(settled, "the edge's memory never settled");
        let growth = procs::status_kib(edge.pid, "VmRSS").saturating_sub(before);
        drop(held);
        growth
    });
    let per_connection = growth / CONNECTIONS as u64;
    assert!(
        per_connection < 48,
        "the edge's RSS grew by {growth} KiB for {CONNECTIONS} trickled bodies ({per_connection} KiB each)"
    );
}
