//! Large request and response bodies through CGI: a worker streams a body into the script's
//! stdin and the script's stdout back to the edge in bounded pieces, so its peak memory does not
//! grow with either; a script that answers early or reads only part of its body costs nothing
//! to the next request.

use std::io;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::attack::{tls_config, tls_connect};
use crate::support::{procs, Site, Weir};

/// One worker, so the request under test and the ones after it all reach the same process.
/// One worker, and room for the large bodies (the default LimitRequestBody is 64 MiB, and one
/// source may spill a quarter of SpillLimit).
const ONE_WORKER: &str =
    "StartServers 1\nMinSpareServers 1\nMaxSpareServers 2\nMaxRequestWorkers 1\nTimeout 120\n\
                          LimitRequestBody 1073741824\nSpillLimit 4G\n";

/// The most a worker's peak RSS may grow while it serves a large body.
const MOST_GROWTH_KIB: u64 = 32 * 1024;

/// Bytes in the large bodies: big enough that buffering one whole is plain to see.
const LARGE: u64 = 300_000_000;

/// Longest a whole large exchange may take on this shared 2-core machine.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(180);

/// Counts its stdin.
const COUNT_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nexec wc -c\n";

/// A response as the test client saw it: the head, and the body counted rather than kept.
struct Counted {
    status: u16,
    head: String,
    /// Bytes of body received.
    length: u64,
    /// The first bytes of the body, as text.
    start: String,
}

/// Sends `method path` with a body of `body_len` bytes (generated piece by piece, never held
/// whole) while reading the response, which is counted rather than stored.
fn exchange(weir: &Weir, method: &str, path: &str, body_len: u64) -> io::Result<Counted> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let config = tls_config(&weir.cert_pem);
    let addr = weir.addr();
    runtime.block_on(async {
        let stream = tls_connect(addr, &config).await?;
        let (mut reader, mut writer) = tokio::io::split(stream);
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {body_len}\r\n\
             Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n"
        );
        let send = async move {
            writer.write_all(head.as_bytes()).await?;
            let piece: Vec<u8> = (0..64 * 1024).map(|i| b'a' + (i % 26) as u8).collect();
            let mut left = body_len;
            while left > 0 {
                let n = left.min(piece.len() as u64) as usize;
                writer.write_all(&piece[..n]).await?;
                left -= n as u64;
            }
            writer.flush().await?;
            Ok::<_, io::Error>(writer)
        };
        let receive = read_counted(&mut reader);
        let both = async { tokio::join!(send, receive) };
        let (sent, received) = tokio::time::timeout(EXCHANGE_DEADLINE, both)
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "exchange timed out"))?;
        let received = received?;
        // A server that answered without taking the whole body may close on the rest.
        if let Err(error) = sent {
            eprintln!("body write ended early: {error}");
        }
        Ok(received)
    })
}

/// Reads one response whose body is framed by Content-Length, by chunks, or by the close.
async fn read_counted<R: tokio::io::AsyncRead + Unpin>(reader: &mut R) -> io::Result<Counted> {
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            let seen = String::from_utf8_lossy(&bytes).into_owned();
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("no whole head: {seen:?}")));
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let status = head.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    let field = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    let mut body = Body::new(field("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked")));
    let content_length = field("content-length").and_then(|v| v.parse::<u64>().ok());
    body.take(&bytes[head_end..])?;
    loop {
        if body.done || content_length.is_some_and(|length| body.length >= length) {
            break;
        }
        let n = reader.read(&mut buf).await?;
        if n == 0 {
            if body.chunked || content_length.is_some() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed inside the body"));
            }
            break;
        }
        body.take(&buf[..n])?;
    }
    Ok(Counted {
        status,
        head,
        length: body.length,
        start: String::from_utf8_lossy(&body.start).into_owned(),
    })
}

/// A body counted as it arrives, de-chunked when chunked.
struct Body {
    chunked: bool,
    /// Bytes of the current chunk still to come (chunked only).
    in_chunk: u64,
    /// Unparsed bytes of a chunk-size line or of a chunk's trailing CRLF.
    pending: Vec<u8>,
    length: u64,
    start: Vec<u8>,
    done: bool,
}

impl Body {
    fn new(chunked: bool) -> Body {
        Body { chunked, in_chunk: 0, pending: Vec::new(), length: 0, start: Vec::new(), done: false }
    }

    fn payload(&mut self, bytes: &[u8]) {
        self.length += bytes.len() as u64;
        let room = 4096usize.saturating_sub(self.start.len());
        self.start.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    fn take(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        if !self.chunked {
            self.payload(bytes);
            return Ok(());
        }
        while !bytes.is_empty() && !self.done {
            if self.in_chunk > 0 {
                let n = (self.in_chunk.min(bytes.len() as u64)) as usize;
                self.payload(&bytes[..n]);
                self.in_chunk -= n as u64;
                bytes = &bytes[n..];
                continue;
            }
            self.pending.push(bytes[0]);
            bytes = &bytes[1..];
            if !self.pending.ends_with(b"\r\n") {
                continue;
            }
            let line = String::from_utf8_lossy(&self.pending[..self.pending.len() - 2]).into_owned();
            self.pending.clear();
            if line.is_empty() {
                continue; // the CRLF after a chunk's data
            }
            let size = u64::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("chunk size {line:?}")))?;
            if size == 0 {
                self.done = true;
            }
            self.in_chunk = size;
        }
        Ok(())
    }
}

/// The only worker, once the pool has settled on one.
fn only_worker(weir: &Weir) -> i32 {
    let mut pid = 0;
    let one = crate::support::wait_until(Duration::from_secs(10), || {
        let workers = weir.workers();
        pid = workers.first().map_or(0, |w| w.pid);
        workers.len() == 1
    });
    assert!(one, "expected one worker\n{}", weir.logs());
    pid
}

/// Runs `during` and asserts that the one worker served it without its peak RSS growing by more
/// than [`MOST_GROWTH_KIB`].
fn assert_worker_stays_small(weir: &Weir, what: &str, during: impl FnOnce()) {
    let worker = only_worker(weir);
    let before = procs::status_kib(worker, "VmHWM");
    during();
    assert!(procs::read(worker).is_some(), "the worker {worker} is gone after {what}\n{}", weir.logs());
    let after = procs::status_kib(worker, "VmHWM");
    let growth = after.saturating_sub(before);
    eprintln!("{what}: worker {worker} VmHWM {before} KiB -> {after} KiB (+{growth} KiB)");
    assert!(
        growth <= MOST_GROWTH_KIB,
        "{what}: the worker's peak RSS grew by {growth} KiB ({before} -> {after} KiB)"
    );
}

#[test]
fn a_300_mb_post_streams_into_a_script_without_growing_the_worker() {
    let site = Site::new();
    site.script("count", COUNT_SCRIPT);
    let weir = site.start(ONE_WORKER);
    assert_worker_stays_small(&weir, "a 300 MB POST", || {
        let reply = exchange(&weir, "POST", "/cgi-bin/count", LARGE).expect("POST");
        assert_eq!(reply.status, 200, "{}\n{}", reply.head, weir.logs());
        assert_eq!(reply.start.trim(), LARGE.to_string(), "the script's count of its stdin");
    });
}

#[test]
fn a_300_mb_cgi_response_streams_without_growing_the_worker() {
    let site = Site::new();
    site.script(
        "zeros",
        &format!("#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nexec head -c {LARGE} /dev/zero\n"),
    );
    let weir = site.start(ONE_WORKER);
    assert_worker_stays_small(&weir, "a 300 MB response", || {
        let reply = exchange(&weir, "GET", "/cgi-bin/zeros", 0).expect("GET");
        assert_eq!(reply.status, 200, "{}\n{}", reply.head, weir.logs());
        assert_eq!(reply.length, LARGE, "response bytes received");
    });
}

#[test]
fn a_script_that_answers_before_reading_its_body_is_heard_and_the_worker_goes_on() {
    let site = Site::new();
    site.script(
        "early",
        "#!/bin/sh\nprintf 'Status: 201 Created\\r\\nContent-Type: text/plain\\r\\n\\r\\nearly answer\\n'\n",
    );
    site.script("count", COUNT_SCRIPT);
    let weir = site.start(ONE_WORKER);
    let worker = only_worker(&weir);
    // Well above the inline limit, so the body streams; more than a pipe and a socket hold.
    for len in [4_000_000u64, 100] {
        let reply =
            exchange(&weir, "POST", "/cgi-bin/early", len).expect("POST to a script that reads nothing");
        assert_eq!(reply.status, 201, "{len}: {}\n{}", reply.head, weir.logs());
        assert_eq!(reply.start, "early answer\n", "{len}");
        let next = exchange(&weir, "POST", "/cgi-bin/count", 300_000).expect("the next request");
        assert_eq!(next.status, 200, "{}\n{}", next.head, weir.logs());
        assert_eq!(next.start.trim(), "300000", "after a {len}-byte body left unread");
    }
    assert_eq!(only_worker(&weir), worker, "the same worker served every request");
}

#[test]
fn a_script_that_reads_half_its_body_works_and_the_next_request_is_fine() {
    let site = Site::new();
    site.script(
        "half",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nhead -c $((CONTENT_LENGTH / 2)) | wc -c\n",
    );
    site.script("count", COUNT_SCRIPT);
    let weir = site.start(ONE_WORKER);
    let worker = only_worker(&weir);
    for len in [6_000_000u64, 100_000, 1_000] {
        let reply = exchange(&weir, "POST", "/cgi-bin/half", len).expect("POST to a script that reads half");
        assert_eq!(reply.status, 200, "{len}: {}\n{}", reply.head, weir.logs());
        assert_eq!(reply.start.trim(), (len / 2).to_string(), "the script read half of {len}");
        let next = exchange(&weir, "POST", "/cgi-bin/count", 200_000).expect("the next request");
        assert_eq!(next.status, 200, "{}\n{}", next.head, weir.logs());
        assert_eq!(next.start.trim(), "200000", "after half of a {len}-byte body was left unread");
    }
    assert_eq!(only_worker(&weir), worker, "the same worker served every request");
}

/// A connection straight to the pool's Unix socket, as the edge has (the tests run as root),
/// to speak the edge–worker contract to a worker directly.
fn pool_connection(weir: &Weir) -> std::os::unix::net::UnixStream {
    let run = weir.path().join("run");
    let socket = std::fs::read_dir(&run)
        .expect("RuntimeDir")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .find(|path| path.file_name().is_some_and(|n| n.to_string_lossy().starts_with("pool-")))
        .unwrap_or_else(|| panic!("no pool socket in {}", run.display()));
    let stream = std::os::unix::net::UnixStream::connect(&socket).expect("connect to the pool");
    stream.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
    stream.set_write_timeout(Some(Duration::from_secs(20))).expect("write timeout");
    stream
}

/// Reads until `done` holds for what was read, the worker closes, or the read times out.
fn read_until(stream: &mut std::os::unix::net::UnixStream, done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    use std::io::Read;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    while !done(&bytes) {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
        }
    }
    bytes
}

#[test]
fn a_worker_asks_for_an_announced_body_only_for_a_request_it_will_run() {
    use std::io::Write;
    let site = Site::new();
    site.script("count", COUNT_SCRIPT);
    let weir = site.start(ONE_WORKER);
    let announced = |path: &str| {
        format!("POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100000\r\nExpect: 100-continue\r\n\r\n")
    };

    // A refusal: the final answer at once, no 100, and the connection closes (no body follows).
    let mut refused = pool_connection(&weir);
    refused.write_all(announced("/cgi-bin/missing").as_bytes()).expect("head");
    let answer = String::from_utf8_lossy(&read_until(&mut refused, |_| false)).into_owned();
    assert!(answer.starts_with("HTTP/1.1 404 "), "{answer}");
    assert!(!answer.contains("100 Continue"), "{answer}");
    assert!(answer.contains("Connection: close\r\n"), "{answer}");

    // A script: 100 Continue first, then the body is read and the script answers.
    let mut taken = pool_connection(&weir);
    taken.write_all(announced("/cgi-bin/count").as_bytes()).expect("head");
    let interim = read_until(&mut taken, |b| b.ends_with(b"\r\n\r\n"));
    assert_eq!(String::from_utf8_lossy(&interim), "HTTP/1.1 100 Continue\r\n\r\n");
    taken.write_all(&[b'z'; 100_000]).expect("body");
    let answer = read_until(&mut taken, |b| b.ends_with(b"\r\n0\r\n\r\n"));
    let answer = String::from_utf8_lossy(&answer).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("100000\n"), "the script read the whole body: {answer}");
}

#[test]
fn a_handler_gets_a_large_body_whole_after_100_continue() {
    use std::io::Write;
    let weir = Site::new().with_example("testapp").start(ONE_WORKER);

    // Through the edge, a body above the inline limit.
    let reply = exchange(&weir, "POST", "/app/echo", 1_000_000).expect("POST to a Handler");
    assert_eq!(reply.status, 200, "{}\n{}", reply.head, weir.logs());
    assert!(reply.start.contains("body_len=1000000\n"), "{}", reply.start);

    // Announced, straight to the worker: 100 Continue once routed to the Handler, then the
    // Handler sees the whole body.
    let mut pool = pool_connection(&weir);
    pool.write_all(
        b"PUT /app/x HTTP/1.1\r\nHost: localhost\r\nContent-Length: 200000\r\nExpect: 100-continue\r\n\r\n",
    )
    .expect("head");
    let interim = read_until(&mut pool, |b| b.ends_with(b"\r\n\r\n"));
    assert_eq!(String::from_utf8_lossy(&interim), "HTTP/1.1 100 Continue\r\n\r\n");
    pool.write_all(&[b'h'; 200_000]).expect("body");
    let answer =
        String::from_utf8_lossy(&read_until(&mut pool, |b| b.ends_with(b"\r\n0\r\n\r\n"))).into_owned();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.contains("body_len=200000\n"), "{answer}");
}
