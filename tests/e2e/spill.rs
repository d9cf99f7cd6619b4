//! The spill space: one source gets a fair share of it, a SpillDir the edge cannot write is
//! found at start (and by configtest), a body that cannot be spilled gets 503 over HTTP/1.1 and
//! h2 alike, and a failing SpillDir is logged once a minute, not once per chunk.

use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::attack::{self, Dial};
use crate::support::{h2, wait_until, weir_command, Site, Weir};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime")
}

fn from(last: u8) -> Dial {
    Dial { from: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))), ..Dial::default() }
}

async fn connect(weir: &Weir, dial: Dial) -> attack::Tls {
    attack::tls_connect_with(weir.addr(), &attack::tls_config(&weir.cert_pem), dial)
        .await
        .expect("TLS connection")
}

/// Bytes in the unnamed (spill) files a process holds open.
fn spilled_bytes(pid: i32) -> u64 {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return 0 };
    fds.filter_map(|fd| {
        let path = fd.ok()?.path();
        let target = std::fs::read_link(&path).ok()?;
        target.to_string_lossy().ends_with("(deleted)").then(|| std::fs::metadata(&path).ok())?
    })
    .map(|meta| meta.len())
    .sum()
}

/// What the server sent on `stream` within `within` (until it closed or went quiet after a
/// response head).
async fn response_within(stream: &mut attack::Tls, within: Duration) -> String {
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let deadline = tokio::time::Instant::now() + within;
    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&chunk[..n]),
            _ => break,
        }
    }
    String::from_utf8_lossy(&got).into_owned()
}

fn status_of(head: &str) -> u16 {
    head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

const COUNT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n";

/// Five uploads from 127.0.0.2 each send 1.7 MiB of a larger body and then hold it, with an
/// 8 MiB SpillLimit: before, they held the whole space and a 1 MiB POST from 127.0.0.3 got 503.
/// Now 127.0.0.2 holds at most its quarter (2 MiB), its own excess uploads get 503 with
/// Retry-After, and the other source is served.
#[test]
fn one_source_cannot_take_the_whole_spill_space() {
    let site = Site::new();
    site.script("count", COUNT);
    let weir = site.start("SpillLimit 8M\n");
    let (_, edge) = weir.roles();
    let piece: usize = 1_700 * 1024;
    runtime().block_on(async {
        let mut hogs = Vec::new();
        let mut refused = Vec::new();
        for _ in 0..5 {
            let before = spilled_bytes(edge.pid);
            let mut hog = connect(&weir, from(2)).await;
            let head = format!(
                "POST /cgi-bin/count HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n",
                piece + 1000
            );
            hog.write_all(head.as_bytes()).await.expect("head");
            let _ = hog.write_all(&vec![b'x'; piece]).await;
            let _ = hog.flush().await;
            // Held (its bytes are in a spill file) or refused (a status came): one or the other.
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                if spilled_bytes(edge.pid) >= before + piece as u64 {
                    hogs.push(hog);
                    break;
                }
                let answer = response_within(&mut hog, Duration::from_millis(50)).await;
                if !answer.is_empty() {
                    refused.push(answer);
                    break;
                }
                assert!(Instant::now() < deadline, "upload neither held nor refused\n{}", weir.logs());
            }
        }
        assert!(
            spilled_bytes(edge.pid) <= 2 << 20,
            "one source holds {} bytes of an 8 MiB SpillLimit\n{}",
            spilled_bytes(edge.pid),
            weir.logs()
        );
        assert!(!refused.is_empty(), "no upload of the hogging source was refused");
        for answer in &refused {
            assert_eq!(status_of(answer), 503, "{answer}");
            assert!(answer.to_ascii_lowercase().contains("retry-after:"), "{answer}");
        }
        // The other source, while the hog still holds its uploads open.
        let body = vec![b'y'; 1 << 20];
        let mut legit = connect(&weir, from(3)).await;
        let head = format!(
            "POST /cgi-bin/count HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        legit.write_all(head.as_bytes()).await.expect("head");
        legit.write_all(&body).await.expect("body");
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(20), legit.read_to_end(&mut all)).await;
        let reply = String::from_utf8_lossy(&all);
        assert_eq!(status_of(&reply), 200, "{reply}\n{}", weir.logs());
        assert!(reply.contains(&body.len().to_string()), "{reply}");
        drop(hogs);
    });
    let logged = wait_until(Duration::from_secs(10), || weir.logs().contains("SpillLimitPerSource reached"));
    assert!(logged, "no log line for the source over its share\n{}", weir.logs());
}

/// A directory the edge's identity (not root) cannot write: configtest says so instead of
/// Syntax OK, and `weir run` exits 1 with a line naming SpillDir and the edge's uid, before it
/// is ever ready. configtest also warns when LimitRequestBody is above one source's share.
#[test]
fn a_spill_dir_the_edge_cannot_write_is_found_before_start() {
    let site = Site::new();
    let spill = site.path().join("spill");
    std::fs::create_dir(&spill).expect("mkdir");
    std::fs::set_permissions(&spill, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config(&format!("SpillDir {}\n", spill.display()))).expect("conf");
    let output = weir_command(&["configtest", "-f"], &conf).output().expect("configtest");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(!String::from_utf8_lossy(&output.stdout).contains("Syntax OK"));
    assert!(stderr.contains("SpillDir") && stderr.contains("uid 65533"), "{stderr}");

    let mut child = weir_command(&["run", "-f"], &conf)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("weir run");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    let errors = std::fs::read_to_string(site.path().join("error.log")).unwrap_or_default();
    let said = format!("{stderr}{errors}");
    assert_eq!(status.and_then(|s| s.code()), Some(1), "{said}");
    assert!(said.contains("SpillDir") && said.contains("uid 65533"), "{said}");
    assert!(!site.path().join("run/listen").exists(), "weir reported ready");

    std::fs::set_permissions(&spill, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    std::fs::write(&conf, site.config(&format!("SpillDir {}\nSpillLimit 64M\n", spill.display())))
        .expect("conf");
    let output = weir_command(&["configtest", "-f"], &conf).output().expect("configtest");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stderr.contains("LimitRequestBody") && stderr.contains("share of SpillLimit"),
        "the 64 MiB default body limit is above a 16 MiB share: {stderr}"
    );
}

/// SpillDir stops being writable while weir runs: a large request body gets 503 with
/// Retry-After (it was a 500, or a reset), and a response waiting for a slow client logs the
/// failure once, not once per chunk (it was hundreds of lines a second).
#[test]
fn a_spill_dir_that_fails_gives_503_and_one_log_line() {
    let site = Site::new();
    site.script("count", COUNT);
    site.script(
        "big",
        "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nhead -c 4000000 /dev/zero\n",
    );
    let spill = site.path().join("spill");
    std::fs::create_dir(&spill).expect("mkdir");
    std::fs::set_permissions(&spill, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let weir = site.start(&format!("SpillDir {}\n", spill.display()));
    std::fs::set_permissions(&spill, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    runtime().block_on(async {
        let mut stream = connect(&weir, Dial::default()).await;
        let len = 3_000_000;
        let head =
            format!("POST /cgi-bin/count HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\n\r\n");
        stream.write_all(head.as_bytes()).await.expect("head");
        // The refusal may come while the body is still being sent.
        let _ = stream.write_all(&vec![b'x'; len]).await;
        let _ = stream.flush().await;
        let answer = response_within(&mut stream, Duration::from_secs(20)).await;
        assert_eq!(status_of(&answer), 503, "{answer}\n{}", weir.logs());
        assert!(answer.to_ascii_lowercase().contains("retry-after:"), "{answer}");

        let mut slow = connect(&weir, Dial::default()).await;
        slow.write_all(b"GET /cgi-bin/big HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            .await
            .expect("request");
        // Unread for a while: the edge cannot spill the response and waits for this client.
        let waited = wait_until(Duration::from_secs(20), || weir.logs().contains("spill file"));
        assert!(waited, "no log line about the spill file\n{}", weir.logs());
        tokio::time::sleep(Duration::from_secs(1)).await;
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), slow.read_to_end(&mut all)).await;
        assert!(all.len() > 4_000_000, "got {} bytes\n{}", all.len(), weir.logs());
    });
    let lines = weir.logs().lines().filter(|l| l.contains("spill file")).count();
    assert!(lines <= 2, "{lines} log lines about spill files\n{}", weir.logs());
}

/// Over h2 a body larger than the spill space may hold is answered 503, as over HTTP/1.1, with
/// or without a declared length (it was a reset stream with no status).
#[test]
fn an_h2_body_larger_than_the_spill_space_gets_503() {
    let site = Site::new();
    site.script("count", COUNT);
    let weir = site.start("SpillLimit 2M\n");
    runtime().block_on(async {
        for declared in [true, false] {
            let mut sender = h2::connect(&weir).await;
            let (tx, rx) = tokio::sync::mpsc::channel(4);
            let mut request = http::Request::builder().method("POST").uri("https://localhost/cgi-bin/count");
            if declared {
                request = request.header("content-length", 8 << 20);
            }
            let request = request.body(h2::Fed(rx)).expect("request");
            let response = tokio::spawn(async move {
                sender.send_request(request).await.map(|r| r.status().as_u16()).map_err(|e| e.to_string())
            });
            let piece = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
            for _ in 0..128 {
                match tokio::time::timeout(Duration::from_secs(5), tx.send(piece.clone())).await {
                    Ok(Ok(())) => {}
                    _ => break,
                }
                if response.is_finished() {
                    break;
                }
            }
            let status = tokio::time::timeout(Duration::from_secs(20), response).await;
            let status = status.ok().and_then(|joined| joined.ok());
            assert!(
                matches!(status, Some(Ok(503))),
                "declared length {declared}: {status:?}\n{}",
                weir.logs()
            );
            drop(tx);
        }
    });
}

/// Four h2 connections from 127.0.0.2 with 100 streams each, every stream sending 200 KB of a
/// body (under the in-memory bound of one body) and then holding it open: before, all 80 MB sat
/// in the edge's memory at once. Now one source's bodies in memory count against its share
/// (16 MiB of the 64 MiB budget) and the rest go to spill files: the edge's RSS grows by at
/// most that share plus 32 MiB (TLS, h2 windows, allocator slack).
#[test]
fn many_h2_bodies_from_one_source_stay_within_the_memory_budget() {
    let site = Site::new();
    site.script("slow", "#!/bin/sh\nsleep 30\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nwc -c\n");
    let weir =
        site.start("StartServers 1\nMinSpareServers 1\nMaxSpareServers 2\nMaxRequestWorkers 2\nTimeout 60\n");
    let (_, edge) = weir.roles();
    let idle = crate::support::procs::status_kib(edge.pid, "VmRSS");
    let mut most = idle;
    runtime().block_on(async {
        let piece = bytes::Bytes::from(vec![b'q'; 200 * 1000]);
        let mut senders = Vec::new();
        let mut pending = Vec::new();
        let mut open = Vec::new();
        for _ in 0..4 {
            let mut sender = h2::connect_from(&weir, from(2)).await;
            for _ in 0..100 {
                if sender.ready().await.is_err() {
                    break;
                }
                // The body stays open: every one of them is held at the edge at once.
                let (tx, rx) = tokio::sync::mpsc::channel(1);
                let _ = tx.try_send(piece.clone());
                open.push(tx);
                let request = http::Request::builder()
                    .method("POST")
                    .uri("https://localhost/cgi-bin/slow")
                    .body(h2::Fed(rx))
                    .expect("request");
                pending.push(tokio::spawn(sender.send_request(request)));
            }
            senders.push(sender);
        }
        let until = tokio::time::Instant::now() + Duration::from_secs(12);
        while tokio::time::Instant::now() < until {
            most = most.max(crate::support::procs::status_kib(edge.pid, "VmRSS"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for task in pending {
            task.abort();
        }
        drop(open);
        drop(senders);
    });
    let growth = most.saturating_sub(idle);
    eprintln!("edge RSS: idle {idle} KiB, peak {most} KiB, growth {growth} KiB");
    assert!(
        growth <= (16 + 32) * 1024,
        "the edge's RSS grew by {growth} KiB (from {idle} KiB)\n{}",
        weir.logs()
    );
}

/// Eight connections from 127.0.0.30 ask for a response that never ends and never read it, with
/// a 4 MiB SpillLimit (a 1 MiB share) and eight workers: before, once the share was full each
/// response waited for its client and held its worker until Timeout (60 s here), so a request
/// from 127.0.0.3 was refused or waited. Now a response that can be neither kept nor spilled
/// waits at most 2 s for its client, is cut, and its worker is free: the other source is served
/// within seconds and the cut is logged.
#[test]
fn never_reading_clients_at_their_share_do_not_hold_workers() {
    let site = Site::new();
    site.script("forever", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec yes weir\n");
    site.script("hello", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello\\n'\n");
    let weir = site.start(
        "StartServers 8\nMinSpareServers 1\nMaxSpareServers 8\nMaxRequestWorkers 8\nTimeout 60\nSpillLimit 4M\n",
    );
    runtime().block_on(async {
        let mut hogs = Vec::new();
        for _ in 0..8 {
            let dial = Dial { recv_buffer: Some(4096), ..from(30) };
            let mut stream = connect(&weir, dial).await;
            attack::send(&mut stream, b"GET /cgi-bin/forever HTTP/1.1\r\nHost: x\r\n\r\n")
                .await
                .expect("send");
            hogs.push(stream);
        }
        // Every hog's response has filled what it may hold by now (or been cut).
        tokio::time::sleep(Duration::from_secs(3)).await;
        let started = Instant::now();
        let mut served = None;
        while started.elapsed() < Duration::from_secs(20) && served.is_none() {
            let mut other = connect(&weir, from(3)).await;
            let reply = tokio::time::timeout(
                Duration::from_secs(5),
                attack::exchange(
                    &mut other,
                    b"GET /cgi-bin/hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                ),
            )
            .await;
            if let Ok(Ok(reply)) = reply {
                if reply.status == 200 {
                    served = Some(started.elapsed());
                }
            }
        }
        assert!(served.is_some_and(|t| t < Duration::from_secs(15)), "{served:?}\n{}", weir.logs());
        drop(hogs);
    });
    assert!(weir.logs().contains("could not be spilled"), "{}", weir.logs());
}
