//! Bodies at the edge: requests are routed from their head, so an unwanted body is never
//! stored; bodies and responses of any size pass with bounded memory; the spill space has a cap;
//! and a slow reader does not hold a worker.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{attack, procs, wait_until, Site, Weir};

/// How much the edge's peak RSS may grow while it carries a body of hundreds of MB.
const GROWTH_LIMIT_KIB: u64 = 32 * 1024;

/// 300 MB, as in the report that found the edge holding whole bodies.
const BIG: usize = 300 * 1024 * 1024;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

/// VmHWM of a process, KiB.
fn peak_kib(pid: i32) -> u64 {
    procs::status_field(pid, "VmHWM")
        .and_then(|v| v.trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
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
    let weir = site.start("LimitRequestBody 0\nSpillLimit 1G\n");
    let (_, edge) = weir.roles();
    let before = peak_kib(edge.pid);
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
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(120), stream.read_to_end(&mut all)).await;
        String::from_utf8_lossy(&all).into_owned()
    });
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}\n{}", weir.logs());
    assert!(reply.contains(&BIG.to_string()), "the script counted every byte: {reply}");
    let growth = peak_kib(edge.pid).saturating_sub(before);
    assert!(growth < GROWTH_LIMIT_KIB, "the edge's VmHWM grew by {growth} KiB for a {BIG}-byte body");
}

/// A 300 MB CGI response read slowly: the edge's peak memory stays flat, and the worker is free
/// again long before the client has read the response.
#[test]
fn a_slowly_read_300_mb_response_holds_neither_memory_nor_the_worker() {
    let site = Site::new();
    site.script("big", &format!("#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nhead -c {BIG} /dev/zero\n"));
    let weir = site.start("SpillLimit 1G\nStartServers 1\nMinSpareServers 1\nMaxSpareServers 2\n");
    let (_, edge) = weir.roles();
    let before = peak_kib(edge.pid);
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
        // A slow reader: ~40 MB/s, paced by short sleeps.
        let mut idle_while_reading = None;
        let started = Instant::now();
        loop {
            match tokio::time::timeout(Duration::from_secs(60), stream.read(&mut chunk)).await {
                Ok(Ok(n)) if n > 0 => received += n,
                _ => break,
            }
            if received % (4 << 20) < chunk.len() {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if idle_while_reading.is_none() && received < BIG / 2 {
                    let seen = tokio::task::spawn_blocking(busy.clone()).await.ok().flatten();
                    if seen.as_deref() == Some("0") {
                        idle_while_reading = Some(received);
                    }
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
    let growth = peak_kib(edge.pid).saturating_sub(before);
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
    let before = peak_kib(edge.pid);
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
    let growth = peak_kib(edge.pid).saturating_sub(before);
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
/// log says why.
#[test]
fn a_body_past_the_spill_limit_gets_503_and_one_log_line() {
    let site = Site::new();
    site.script("count", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n");
    let weir = site.start("SpillLimit 1M\n");
    let (head, _) = runtime().block_on(async {
        let stream = connect(&weir).await;
        let (mut reader, mut writer) = tokio::io::split(stream);
        let total = 8 << 20;
        let sender = tokio::spawn(async move {
            let head =
                format!("POST /cgi-bin/count HTTP/1.1\r\nHost: localhost\r\nContent-Length: {total}\r\n\r\n");
            let _ = writer.write_all(head.as_bytes()).await;
            let piece = vec![b'x'; 64 * 1024];
            for _ in 0..total / piece.len() {
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
