//! One HTTP/1.1 client connection, owned end to end by the edge: each request head is read under
//! mod_reqtimeout's header stage and checked strictly ([`super::head`]), its body under the body
//! stage and LimitRequestBody ([`super::chunked`] for chunked bodies), and only then handed to the
//! [`Site`]. Responses go back with exact framing; keep-alive follows KeepAlive,
//! KeepAliveTimeout and MaxKeepAliveRequests.

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode, Version};
use http_body_util::BodyExt;
use hyper::body::Body as _;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_util::sync::CancellationToken;
use weir_conf::edge::RequestReadTimeout;

use super::chunked::{ChunkError, ChunkedDecoder};
use super::head::{self, Framing, HeadError, Limits, RequestHead};
use crate::body::{self, Body};
use crate::client_facts::ClientFacts;
use crate::h1::hangup::{ClientSocket, Watch};
use crate::reqtimeout::{log_expiry, Stage, StageClock};
use crate::request_body::{check_declared, BodyBuffer, BodyError, RequestBody, LINGER_BYTES, LINGER_FOR};
use crate::request_checks;
use crate::site::Site;
use crate::source::Source;

/// The HTTP/1.1 settings of a connection.
#[derive(Debug, Clone)]
pub struct H1Settings {
    pub limits: Limits,
    pub read_timeout: RequestReadTimeout,
    pub keep_alive: bool,
    pub keep_alive_timeout: Duration,
    /// 0: no limit.
    pub max_keep_alive_requests: u64,
    /// LimitRequestBody; 0: no limit.
    pub limit_request_body: u64,
    /// Timeout: the longest one read of a body waits for its next bytes, whatever the body
    /// stage still allows. With MinRate and no maximum, a fast upload moves the stage's deadline
    /// hours away (a second per MinRate bytes: 300 MB buy days); Apache bounds every read by its
    /// core Timeout as well, and so does this.
    pub body_read_timeout: Duration,
}

/// Bytes read from the socket at a time for a body (a head grows from 1 KiB reads).
const READ_CHUNK: usize = 64 * 1024;

/// Capacity a connection's buffer may keep while it waits for a body's next bytes.
const IDLE_BUFFER: usize = 4 * 1024;

/// Largest head-plus-body written as one piece (one TLS record holds 16 KiB).
const COALESCE: usize = 16 * 1024;

/// How a request ended for the connection.
enum Next {
    KeepGoing,
    Close,
}

/// Serves requests on one connection until it closes, fails, or the edge drains.
pub async fn serve<IO>(
    mut io: IO,
    site: &Site,
    facts: &ClientFacts,
    settings: &H1Settings,
    draining: &CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + ClientSocket,
{
    let mut buffer: Vec<u8> = Vec::new();
    let mut served = 0u64;
    loop {
        if buffer.is_empty() && buffer.capacity() > 0 {
            // Nothing pipelined: give the memory back while the connection idles.
            buffer = Vec::new();
        }
        if served > 0 && buffer.is_empty() {
            // Between requests: KeepAliveTimeout until the first byte; the header stage starts
            // with that byte. A draining edge does not close an idle connection at once, since
            // a request may already be on its way: it answers that one with `Connection: close`
            // (or lets KeepAliveTimeout end the connection as usual).
            let first =
                tokio::time::timeout(settings.keep_alive_timeout, read_more(&mut io, &mut buffer)).await;
            match first {
                Ok(Ok(n)) if n > 0 => {}
                _ => return,
            }
        }
        let head = match read_head(&mut io, &mut buffer, site, facts, settings).await {
            Some(head) => head,
            None => {
                // TLS close_notify after an error answer, so strict clients see a clean end.
                let _ = io.shutdown().await;
                return;
            }
        };
        served += 1;
        // Boxed, like the refusals in `read_head`: a request's path (routing, the pool, files) is
        // a large future, and an idle connection, which most connections are, should not carry
        // room for it in its task.
        let request =
            Box::pin(serve_request(&mut io, &mut buffer, site, facts, settings, head, served, draining));
        match request.await {
            Next::KeepGoing => {}
            Next::Close => {
                let _ = io.shutdown().await;
                return;
            }
        }
    }
}

/// Reads and checks one request head under the header stage. `None`: the connection is done
/// (an error answer, if one was possible, has been sent).
async fn read_head<IO>(
    io: &mut IO,
    buffer: &mut Vec<u8>,
    site: &Site,
    facts: &ClientFacts,
    settings: &H1Settings,
) -> Option<RequestHead>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut clock = StageClock::start(Stage::Header, &settings.read_timeout.header);
    if let Some(clock) = clock.as_mut() {
        clock.received(buffer.len());
    }
    // Parsing rescans the buffer, so it runs only when a line has completed or the partial line
    // is already over a limit: a client sending a byte at a time cannot make it quadratic.
    let longest_line = settings.limits.request_line.max(settings.limits.field_size) + 2;
    let mut parsed_at = 0usize;
    loop {
        // In a block of its own, so that nothing of a parse (a head is a few hundred bytes)
        // stays in the future while it waits for the socket.
        {
            let since = &buffer[parsed_at.min(buffer.len())..];
            let partial = buffer.len() - buffer.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            let worth_parsing = parsed_at == 0 || since.contains(&b'\n') || partial > longest_line;
            parsed_at = buffer.len();
            if worth_parsing {
                match head::parse(buffer, &settings.limits) {
                    Ok((head, used)) => {
                        buffer.drain(..used);
                        return Some(head);
                    }
                    Err(HeadError::Incomplete) => {}
                    Err(error) => {
                        tracing::debug!(client = %facts.peer, ?error, "malformed request refused");
                        refuse(io, buffer, site, facts, error.status()).await;
                        return None;
                    }
                }
            }
        }
        let read = match &clock {
            Some(running) => {
                match tokio::time::timeout_at(running.deadline(), read_more(io, buffer)).await {
                    Ok(read) => read,
                    Err(_) => {
                        log_expiry(running, facts.peer);
                        // A client that sent nothing of a request gets no answer, as in Apache.
                        if !buffer.is_empty() {
                            refuse(io, buffer, site, facts, StatusCode::REQUEST_TIMEOUT).await;
                        }
                        return None;
                    }
                }
            }
            None => read_more(io, buffer).await,
        };
        match read {
            Ok(0) | Err(_) => return None,
            Ok(n) => {
                if let Some(clock) = clock.as_mut() {
                    clock.received(n);
                }
            }
        }
    }
}

/// Answers a request whose head could not be taken with an error page (the connection closes
/// after it). Boxed: the refusal's future is larger than a waiting head's, and most
/// connections never need it.
async fn refuse<IO>(io: &mut IO, buffer: &[u8], site: &Site, facts: &ClientFacts, status: StatusCode)
where
    IO: AsyncWrite + Unpin,
{
    let line = first_line(buffer);
    let response = site.refuse(facts, &line, Version::HTTP_11, body::error_page(status));
    let _ = Box::pin(write_response(io, response, Version::HTTP_11, false, false, None)).await;
}

#[allow(clippy::too_many_arguments)]
async fn serve_request<IO>(
    io: &mut IO,
    buffer: &mut Vec<u8>,
    site: &Site,
    facts: &ClientFacts,
    settings: &H1Settings,
    head: RequestHead,
    served: u64,
    draining: &CancellationToken,
) -> Next
where
    IO: AsyncRead + AsyncWrite + Unpin + ClientSocket,
{
    let version = head.version;
    let request_line = format!("{} {} {:?}", head.method, head.target, version);
    let has_body = !matches!(head.framing, Framing::None);
    if let Some(refused) = site.rate_limited(facts) {
        let response = site.refuse(facts, &request_line, version, refused);
        let _ = write_response(io, response, version, head.method == Method::HEAD, false, None).await;
        return Next::Close;
    }
    let keep_alive = head.keep_alive
        && settings.keep_alive
        && (settings.max_keep_alive_requests == 0 || served < settings.max_keep_alive_requests);
    let is_head = head.method == Method::HEAD;
    let framing = head.framing;
    let expect_continue = head.expect_continue;
    let Some(parts) = into_parts(head) else {
        let response = site.refuse(facts, &request_line, version, body::error_page(StatusCode::BAD_REQUEST));
        let _ = write_response(io, response, version, false, false, None).await;
        return Next::Close;
    };
    // The site routes from the head and asks for the body only for the pool; the 100 Continue
    // is sent only then, so a client that waits for it never sends a body nobody wants.
    let mut body_taken = false;
    let mut body_whole = false;
    // Once the body is in (every request for the pool has its body read, if only an empty
    // one), a client that hangs up ends the request, and later its answer: see `hangup`. Only
    // requests for the pool pay for the watch.
    let watch: std::sync::OnceLock<Watch> = std::sync::OnceLock::new();
    let (watching, watch_set) = tokio::sync::oneshot::channel::<()>();
    let handled = {
        let (taken, whole, io, buffer, framing, watch) =
            (&mut body_taken, &mut body_whole, &mut *io, &mut *buffer, &framing, &watch);
        site.handle(facts, parts, move || async move {
            *taken = true;
            if let Framing::Length(n) = framing {
                if !request_checks::body_fits(*n, settings.limit_request_body) {
                    return Err(BodyError::TooLarge);
                }
                check_declared(*n, &site.spill)?;
            }
            if expect_continue && has_body && io.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err() {
                return Err(BodyError::Malformed("connection closed before the body".into()));
            }
            let read = read_body(io, buffer, framing, settings, facts, site).await;
            *whole = read.is_ok();
            if read.is_ok() && watch.set(Watch::of(&*io)).is_ok() {
                let _ = watching.send(());
            }
            read
        })
    };
    let hung_up = async {
        match (watch_set.await, watch.get()) {
            (Ok(()), Some(watch)) => watch.hung_up().await,
            _ => std::future::pending().await,
        }
    };
    let response = tokio::select! {
        biased;
        response = handled => response,
        () = hung_up => {
            tracing::info!(
                client = %facts.peer,
                request = %request_line,
                "client closed the connection while its request was in the pool; the request was dropped"
            );
            return Next::Close;
        }
    };
    // A body nobody read: a small rest is read and dropped after the answer, so the connection
    // stays usable; a larger one (or one whose size is unknown, or that the client may still
    // be holding back for a 100 Continue) closes the connection after a lingering read, so the
    // client sees the answer instead of a reset.
    // A body refused part way (SpillLimit, SpillDir, a timeout) may still be coming: the
    // connection closes after a lingering read, so the client sees the status, not a reset.
    let unread = match (body_taken, body_whole) {
        (true, true) => Unread::Nothing,
        (true, false) => Unread::Linger,
        (false, _) => unread_body(&framing, buffer, expect_continue),
    };
    // A draining edge says so on this last response: the client may reuse nothing, and knows it.
    let keep_alive = keep_alive
        && !draining.is_cancelled()
        && !matches!(unread, Unread::Linger)
        && response.headers().get(header::CONNECTION).is_none_or(|v| v != "close");
    let written = write_response(io, response, version, is_head, keep_alive, watch.get()).await;
    match (written, unread) {
        (Ok(true), Unread::Nothing) => Next::KeepGoing,
        (Ok(true), Unread::Discard(left)) => match discard(io, buffer, left, settings, facts).await {
            Ok(()) => Next::KeepGoing,
            Err(_) => Next::Close,
        },
        (Ok(_), Unread::Linger) => {
            linger(io).await;
            Next::Close
        }
        _ => Next::Close,
    }
}

/// What is left of a request body the site did not read.
enum Unread {
    Nothing,
    /// This many bytes, read and dropped after the answer.
    Discard(u64),
    /// Too much or unknown: close after the answer, reading for a while first.
    Linger,
}

/// Most bytes of an unwanted body read and dropped to keep a connection, as nginx's
/// discard of a body it does not need (it reads whatever comes, while a client keeps the
/// connection): a small bound, since the bytes buy nothing but the connection.
const DISCARD_BOUND: u64 = 64 * 1024;

fn unread_body(framing: &Framing, buffer: &mut Vec<u8>, expect_continue: bool) -> Unread {
    match framing {
        Framing::None => Unread::Nothing,
        Framing::Length(n) => {
            let here = (buffer.len() as u64).min(*n);
            let left = n - here;
            if left == 0 {
                buffer.drain(..here as usize);
                Unread::Nothing
            } else if left <= DISCARD_BOUND && !expect_continue {
                buffer.drain(..here as usize);
                Unread::Discard(left)
            } else {
                Unread::Linger
            }
        }
        Framing::Chunked => Unread::Linger,
    }
}

/// Reads and drops the rest of an unwanted body under the body stage's timeout.
async fn discard<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buffer: &mut Vec<u8>,
    mut left: u64,
    settings: &H1Settings,
    facts: &ClientFacts,
) -> Result<(), BodyError> {
    let mut clock = StageClock::start(Stage::Body, &settings.read_timeout.body);
    while left > 0 {
        let n = read_in_stage(io, buffer, &mut clock, settings.body_read_timeout, facts).await?;
        if n == 0 {
            return Err(BodyError::Malformed("connection closed inside the body".into()));
        }
        let take = (buffer.len() as u64).min(left) as usize;
        buffer.drain(..take);
        left -= take as u64;
    }
    Ok(())
}

/// Lingering close: our side is shut for writing, and what the client still sends is read
/// and dropped for at most [`LINGER_FOR`] and [`LINGER_BYTES`].
async fn linger<IO: AsyncRead + AsyncWrite + Unpin>(io: &mut IO) {
    let _ = io.shutdown().await;
    let mut sink = vec![0u8; 16 * 1024];
    let mut read = 0u64;
    let until = tokio::time::Instant::now() + LINGER_FOR;
    while read < LINGER_BYTES {
        match tokio::time::timeout_at(until, io.read(&mut sink)).await {
            Ok(Ok(n)) if n > 0 => read += n as u64,
            _ => return,
        }
    }
}

/// Reads the body the head announced, under the body stage and LimitRequestBody.
async fn read_body<IO>(
    io: &mut IO,
    buffer: &mut Vec<u8>,
    framing: &Framing,
    settings: &H1Settings,
    facts: &ClientFacts,
    site: &Site,
) -> Result<RequestBody, BodyError>
where
    IO: AsyncRead + Unpin,
{
    let mut clock = StageClock::start(Stage::Body, &settings.read_timeout.body);
    let mut stored =
        BodyBuffer::new(settings.limit_request_body, site.spill.clone(), Source::of(facts.peer.ip()));
    match framing {
        Framing::None => return Ok(RequestBody::empty()),
        Framing::Length(total) => {
            let mut left = *total;
            loop {
                let take = (buffer.len() as u64).min(left) as usize;
                if take > 0 {
                    stored.push(&buffer[..take])?;
                    buffer.drain(..take);
                    left -= take as u64;
                }
                if left == 0 {
                    break;
                }
                let n = read_in_stage(io, buffer, &mut clock, settings.body_read_timeout, facts).await?;
                if n == 0 {
                    return Err(BodyError::Malformed("connection closed inside the body".into()));
                }
            }
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new(settings.limit_request_body);
            let mut decoded = Vec::new();
            loop {
                let used = decoder.feed(buffer, &mut decoded).map_err(|error| match error {
                    ChunkError::TooLarge => BodyError::TooLarge,
                    ChunkError::Malformed(reason) => BodyError::Malformed(reason.to_string()),
                })?;
                buffer.drain(..used);
                stored.push(&decoded)?;
                decoded.clear();
                if decoder.is_done() {
                    break;
                }
                let n = read_in_stage(io, buffer, &mut clock, settings.body_read_timeout, facts).await?;
                if n == 0 {
                    return Err(BodyError::Malformed("connection closed inside the body".into()));
                }
            }
        }
    }
    stored.finish()
}

/// One read under a stage's deadline and `idle` (Timeout), counting the bytes toward MinRate.
async fn read_in_stage<IO: AsyncRead + Unpin>(
    io: &mut IO,
    buffer: &mut Vec<u8>,
    clock: &mut Option<StageClock>,
    idle: Duration,
    facts: &ClientFacts,
) -> Result<usize, BodyError> {
    let idle_until = tokio::time::Instant::now() + idle;
    let deadline = clock.as_ref().map_or(idle_until, |running| running.deadline().min(idle_until));
    let n = match tokio::time::timeout_at(deadline, read_body_more(io, buffer)).await {
        Ok(read) => read,
        Err(_) => {
            match clock {
                Some(running) if running.deadline() <= deadline => log_expiry(running, facts.peer),
                _ => tracing::debug!(client = %facts.peer, "no request body bytes within Timeout"),
            }
            return Err(BodyError::Timeout);
        }
    }
    .map_err(|e| BodyError::Malformed(e.to_string()))?;
    if let Some(running) = clock.as_mut() {
        running.received(n);
    }
    Ok(n)
}

/// Reads more of a body. Like a head, a body waits with no buffer: a body trickled a few bytes
/// every few seconds (slowhttptest -B) would otherwise hold a 64 KiB read buffer per connection
/// between its bytes, and have it zero-filled for every one of them. So the first byte is
/// awaited with a one-byte read and what has already arrived behind it is then taken in one large
/// read into spare capacity (never zero-filled), without waiting again; once the caller has
/// consumed everything, the buffer is given back before the next wait.
async fn read_body_more<IO: AsyncRead + Unpin>(io: &mut IO, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    if buffer.is_empty() && buffer.capacity() > IDLE_BUFFER {
        *buffer = Vec::new();
    }
    let mut first = [0u8; 1];
    if io.read(&mut first).await? == 0 {
        return Ok(0);
    }
    buffer.push(first[0]);
    buffer.reserve(READ_CHUNK);
    // One poll: whatever is buffered or readable now; a pending read is dropped unstarted
    // (reads on tokio and tokio-rustls streams are cancel-safe).
    let more = match futures_util::FutureExt::now_or_never(io.read_buf(buffer)) {
        Some(Ok(n)) => n,
        // The byte already read still counts; an error shows again at the next read.
        Some(Err(_)) | None => 0,
    };
    Ok(1 + more)
}

/// Reads more of a request head. An idle connection waits with no buffer at all: the first byte of
/// a request is awaited with a one-byte read (cheap: it happens once per request), and only then
/// is room made for the rest. Thousands of idle keep-alive or Slowloris connections then cost a
/// few hundred bytes each here, not a read buffer each.
async fn read_more<IO: AsyncRead + Unpin>(io: &mut IO, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    let start = buffer.len();
    let chunk = if start == 0 { 1 } else { READ_CHUNK.min(start.max(1024)) };
    buffer.resize(start + chunk, 0);
    let result = io.read(&mut buffer[start..]).await;
    buffer.truncate(start + *result.as_ref().unwrap_or(&0));
    result
}

/// The checked head as `http` request parts.
fn into_parts(head: RequestHead) -> Option<http::request::Parts> {
    let uri: http::Uri = head.target.parse().ok()?;
    let mut request = http::Request::new(());
    *request.method_mut() = head.method;
    *request.uri_mut() = uri;
    *request.version_mut() = head.version;
    let mut headers = head.headers;
    // The body is whole now; its original framing means nothing past this point.
    headers.remove(header::TRANSFER_ENCODING);
    headers.remove(header::CONTENT_LENGTH);
    if let Some(host) = head.host {
        if let Ok(value) = HeaderValue::from_str(&host) {
            headers.insert(header::HOST, value);
        }
    }
    *request.headers_mut() = headers;
    Some(request.into_parts().0)
}

/// The first line of what the client sent, for the access log of a refused request.
fn first_line(buffer: &[u8]) -> String {
    let end = buffer.iter().position(|&b| b == b'\r' || b == b'\n').unwrap_or(buffer.len()).min(256);
    String::from_utf8_lossy(&buffer[..end]).into_owned()
}

/// Writes a response with exact framing. Returns whether the connection may carry another
/// request.
async fn write_response<IO>(
    io: &mut IO,
    response: Response<Body>,
    version: Version,
    is_head: bool,
    mut keep_alive: bool,
    hang_up: Option<&Watch>,
) -> std::io::Result<bool>
where
    IO: AsyncWrite + Unpin,
{
    let (parts, mut body) = response.into_parts();
    let status = parts.status;
    let bodiless = is_head || status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED;
    // A streamed file knows its length though its body cannot say so: trust the producer's
    // Content-Length then (only edge code makes responses; pool responses are read whole).
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let length = body.size_hint().exact().or(declared);
    let chunked = !bodiless && length.is_none() && version == Version::HTTP_11;
    if !bodiless && length.is_none() && !chunked {
        // HTTP/1.0 without a known length: the close delimits the body.
        keep_alive = false;
    }
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(status.canonical_reason().unwrap_or("Unknown").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        // A HEAD answer keeps the Content-Length its GET would have; otherwise framing is
        // computed here from the body actually sent.
        let framing = name == header::CONTENT_LENGTH && !is_head;
        if framing
            || matches!(name, &header::CONNECTION | &header::TRANSFER_ENCODING | &header::DATE)
            || name.as_str() == "keep-alive"
        {
            continue;
        }
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(format!("Date: {}\r\n", httpdate::fmt_http_date(SystemTime::now())).as_bytes());
    match length {
        Some(n) if !bodiless => {
            head.extend_from_slice(format!("Content-Length: {n}\r\n").as_bytes());
        }
        _ if chunked => head.extend_from_slice(b"Transfer-Encoding: chunked\r\n"),
        _ => {}
    }
    if !keep_alive {
        head.extend_from_slice(b"Connection: close\r\n");
    } else if version == Version::HTTP_10 {
        head.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    head.extend_from_slice(b"\r\n");
    if !bodiless && !chunked {
        // A small body goes out with its head: one TLS record and one write instead of two.
        if let Some(frame) = body.frame().await {
            if let Ok(data) = frame?.into_data() {
                if head.len() + data.len() <= COALESCE {
                    head.extend_from_slice(&data);
                    io.write_all(&head).await?;
                } else {
                    io.write_all(&head).await?;
                    io.write_all(&data).await?;
                }
                head.clear();
            }
        }
    }
    if !head.is_empty() {
        io.write_all(&head).await?;
    }
    if !bodiless {
        while let Some(frame) = next_frame(&mut body, hang_up).await? {
            let Ok(data) = frame.into_data() else {
                continue;
            };
            write_data(io, &data, chunked).await?;
        }
        if chunked {
            io.write_all(b"0\r\n\r\n").await?;
        }
    }
    io.flush().await?;
    Ok(keep_alive)
}

/// The body's next frame; for an answer from the pool, unless its client hangs up first (the
/// answer is then dropped, and with it the exchange, so the worker stops the script).
async fn next_frame(
    body: &mut Body,
    hang_up: Option<&Watch>,
) -> std::io::Result<Option<hyper::body::Frame<Bytes>>> {
    let Some(watch) = hang_up else {
        return body.frame().await.transpose();
    };
    tokio::select! {
        biased;
        frame = body.frame() => frame.transpose(),
        () = watch.hung_up() => Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionAborted,
            "client closed the connection while its answer came from the pool",
        )),
    }
}

async fn write_data<IO: AsyncWrite + Unpin>(io: &mut IO, data: &Bytes, chunked: bool) -> std::io::Result<()> {
    if data.is_empty() {
        return Ok(());
    }
    if chunked {
        io.write_all(format!("{:x}\r\n", data.len()).as_bytes()).await?;
        io.write_all(data).await?;
        io.write_all(b"\r\n").await
    } else {
        io.write_all(data).await
    }
}
