//! The trip to the prefork pool: one normalized HTTP/1.1 request at a time per Unix connection
//! (kept for the next request while its worker offers to wait for one), following the body
//! contract of [`wire::INLINE_BODY`]. The response is read from the worker as fast as it comes,
//! into a [`crate::response_spool`] the client drains at its own pace, so the worker is free
//! again (and its admission permit dropped) as soon as the whole response is in.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderName};
use http::{HeaderValue, Response, StatusCode, Version};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;

use weir_wire as wire;
use weir_wire::limits::HeadLimits;

use crate::body::{self, Body};
use crate::client_facts::ClientFacts;
use crate::forwarding::{normalize, remove_internal, strip_hop_by_hop};
use crate::h1::chunked::{ChunkError, ChunkedDecoder};
use crate::request_body::RequestBody;
use crate::response_spool::{self, SpoolWriter};
use crate::spill::SpillSpace;
use crate::worker_connections::IdleWorkers;

/// How the edge reaches the pool.
#[derive(Debug, Clone)]
pub struct PoolClient {
    /// The pool's Unix socket, in RuntimeDir.
    pub socket: PathBuf,
    /// A worker that takes longer than this answers 504.
    pub timeout: Duration,
    /// Connections whose worker waits for another request.
    idle: Arc<IdleWorkers>,
    /// Where responses a client reads slower than the worker writes wait.
    space: Arc<SpillSpace>,
    /// The configured head limits, by which workers read what is sent them.
    limits: HeadLimits,
}

/// The pid of the worker that answered (a response extension, for the access log).
#[derive(Debug, Clone, Copy)]
pub struct WorkerPid(pub i32);

/// What the pool answered.
pub enum PoolAnswer {
    /// A response for the client.
    Response(Response<Body>),
    /// A CGI local redirect: answer with a GET of this local URL instead.
    LocalRedirect(String),
}

/// Why the pool did not answer.
#[derive(Debug, thiserror::Error)]
pub enum PoolError {
    #[error("could not reach the pool: {0}")]
    Connect(std::io::Error),
    #[error("worker closed the connection early: {0}")]
    Worker(std::io::Error),
    #[error("worker did not answer within Timeout")]
    Timeout,
    /// The head the worker would read is beyond the contract's limits (only a client over the
    /// configured limits, or with a client certificate of kilobytes, can cause it).
    #[error("the request cannot go to a worker: {0}")]
    Unsendable(wire::request::RequestHeadError),
}

impl PoolError {
    /// The status the client gets: 504 for a slow worker, 502 for one that failed.
    pub fn status(&self) -> StatusCode {
        match self {
            PoolError::Timeout => StatusCode::GATEWAY_TIMEOUT,
            PoolError::Connect(_) | PoolError::Worker(_) => StatusCode::BAD_GATEWAY,
            PoolError::Unsendable(error) => {
                StatusCode::from_u16(error.status()).unwrap_or(StatusCode::BAD_REQUEST)
            }
        }
    }
}

/// How many times a request goes to another worker after one reset the connection unread.
const RESENDS: usize = 3;

impl PoolClient {
    /// `most_idle`: how many idle worker connections to keep (MaxRequestWorkers); `scoreboard`:
    /// the pool's, whose workers say when they wait in `accept()`; `limits`: the configured
    /// head limits.
    pub fn new(
        socket: PathBuf,
        timeout: Duration,
        most_idle: usize,
        scoreboard: Option<weir_scoreboard::Scoreboard>,
        space: Arc<SpillSpace>,
        limits: HeadLimits,
    ) -> PoolClient {
        let idle = Arc::new(IdleWorkers::new(most_idle, scoreboard));
        PoolClient { socket, timeout, idle, space, limits }
    }

    /// Sends a complete request to a worker and returns its response as soon as its head is in;
    /// the body follows through a spool. `hold` (the admission permit) is kept until the whole
    /// response has been read from the worker.
    ///
    /// A request goes to another worker (up to `RESENDS` times) when the worker reset the
    /// connection before any response byte, and either the body went with the head or no
    /// `100 Continue` came: a worker acts on a request only once it has read it whole (or sent
    /// 100 Continue), and a Unix socket closed with bytes still unread resets the connection, so
    /// such a reset means the worker never acted on it: it was retired or stopped while waiting
    /// on a kept connection, or killed while idle in `accept()` with the connection queued.
    /// After a 100 Continue any failure is a 502, never a resend.
    pub async fn send<H: Send + 'static>(
        &self,
        parts: &http::request::Parts,
        body: RequestBody,
        client: &ClientFacts,
        hold: H,
    ) -> Result<PoolAnswer, PoolError> {
        let inline = body.len() <= wire::INLINE_BODY;
        let head = worker_head(&normalize(parts, body.len(), !inline, client), &self.limits)
            .map_err(PoolError::Unsendable)?;
        let deadline = tokio::time::Instant::now() + self.timeout;
        let mut body = Some(body);
        let mut resends = 0;
        loop {
            // After a reset, a new connection: a stop or a reload ends many kept ones at once.
            let kept = if resends == 0 { self.idle.take() } else { None };
            let connecting = kept.is_none().then(|| self.idle.connecting());
            let stream = match kept {
                Some(stream) => stream,
                None => tokio::time::timeout_at(deadline, UnixStream::connect(&self.socket))
                    .await
                    .map_err(|_| PoolError::Timeout)?
                    .map_err(PoolError::Connect)?,
            };
            let exchanged =
                tokio::time::timeout_at(deadline, exchange(stream, &head, &mut body, inline)).await;
            drop(connecting);
            match exchanged {
                Err(_) => return Err(PoolError::Timeout),
                Ok(Err(failure)) if failure.resend && resends < RESENDS => {
                    tracing::debug!(error = %failure.error, "a worker left the request unread; sending it to another");
                    resends += 1;
                }
                Ok(Err(failure)) => return Err(failure.error),
                Ok(Ok(headed)) => {
                    let owner = crate::source::Source::of(client.peer.ip());
                    return self.answer(headed, hold, deadline, owner).await;
                }
            }
        }
    }

    /// The answer from a response whose head is in: the body whole when it came with the head,
    /// else a spool filled by a task that owns the worker connection until the end.
    async fn answer<H: Send + 'static>(
        &self,
        headed: Headed,
        hold: H,
        deadline: tokio::time::Instant,
        owner: crate::source::Source,
    ) -> Result<PoolAnswer, PoolError> {
        let Headed { mut parts, reader, sending, mut buffer } = headed;
        // Kept only when the worker offered it (and, below, sent nothing past the response).
        let worker_keeps = parts
            .headers
            .get(header::CONNECTION)
            .is_some_and(|value| value.as_bytes().eq_ignore_ascii_case(b"keep-alive"));
        strip_hop_by_hop(&mut parts.headers);
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove("x-powered-by");
        parts.headers.remove(header::SERVER);
        let local_redirect = match parts.headers.get(wire::LOCAL_REDIRECT).map(|v| v.to_str()) {
            None => None,
            // Only a local path: a worker's code is not trusted to name anything else.
            Some(Ok(target)) if wire::is_local_path(target) => Some(target.to_string()),
            Some(_) => return Err(early("a local redirect to no local path")),
        };
        let worker = parts
            .headers
            .get(wire::WORKER_PID)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .map(WorkerPid);
        let refusal = parts.headers.contains_key(wire::REFUSAL);
        remove_internal(&mut parts.headers);
        parts.version = Version::HTTP_11;
        let mut decoder = ChunkedDecoder::new(0);
        let mut decoded = Vec::new();
        let used = decoder.feed(&buffer, &mut decoded).map_err(chunk_error)?;
        buffer.drain(..used);
        let rest = Rest { reader, sending, buffer, decoder, decoded, worker_keeps, timeout: self.timeout };
        if let Some(target) = local_redirect {
            // The body of a local redirect is not wanted: read and dropped, within Timeout.
            let _ = tokio::time::timeout_at(deadline, rest.read(Sink::Discard, &self.idle)).await;
            drop(hold);
            return Ok(PoolAnswer::LocalRedirect(target));
        }
        let body = if rest.decoder.is_done() {
            // The usual case: the whole response came with its head.
            let bytes = std::mem::take(&mut { rest.decoded });
            let Rest { reader, sending, buffer, worker_keeps, .. } = rest;
            if let Some(stream) = reusable(reader, sending, worker_keeps && buffer.is_empty()).await {
                self.idle.put(stream);
            }
            drop(hold);
            body::full(bytes)
        } else {
            let (writer, spooled) = response_spool::spool(self.space.clone(), owner);
            let idle = self.idle.clone();
            // In the request's `site` span, if it has one: a response cut short is logged to
            // the site's own ErrorLog.
            let read = async move {
                rest.read(Sink::Spool(writer), &idle).await;
                drop(hold);
            };
            tokio::spawn(tracing::Instrument::in_current_span(read));
            http_body_util::BodyExt::boxed(spooled)
        };
        let mut response = Response::from_parts(parts, body);
        if let Some(worker) = worker {
            response.extensions_mut().insert(worker);
        }
        if refusal {
            response.extensions_mut().insert(crate::error_document::OwnError);
        }
        Ok(PoolAnswer::Response(response))
    }
}

/// A response whose head is in, and the connection it came on.
struct Headed {
    parts: http::response::Parts,
    reader: OwnedReadHalf,
    sending: Sending,
    /// Bytes read past the head.
    buffer: Vec<u8>,
}

/// The request body's way to the worker.
enum Sending {
    /// Sent whole (or there was none).
    Sent(OwnedWriteHalf),
    /// Never sent: the worker refused the request before 100 Continue.
    Withheld,
    /// Being sent, beside the reading of the response.
    Running(BodySend),
}

/// The task sending a body beside the reading of the response, stopped when dropped. Whatever
/// ends the exchange early (Timeout, a cut response, the client gone) ends the send with it: a
/// send left running alone kept writing to a worker whose output nobody read any more, so the
/// worker blocked writing, stopped reading, and both waited on each other (holding the body's
/// spill space) until the pool master killed the worker as busy past Timeout.
struct BodySend(JoinHandle<(OwnedWriteHalf, std::io::Result<()>)>);

impl Drop for BodySend {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A failed attempt, and whether the request may go to another worker.
struct Failure {
    error: PoolError,
    resend: bool,
}

impl From<PoolError> for Failure {
    fn from(error: PoolError) -> Failure {
        Failure { error, resend: false }
    }
}

/// One request on a connection to the pool, up to its response head.
///
/// Written by hand rather than with hyper's client: both ends are weir's own (the worker always
/// answers with a head and a chunked body), and the exchange is then one write and a few reads
/// in this task. hyper's client needs a connection task and channels between the two, which
/// cost about a fifth of the requests a minimal Handler serves (measured side by side with wrk:
/// ~12,300 against ~15,100 req/s).
async fn exchange(
    stream: UnixStream,
    head: &[u8],
    body: &mut Option<RequestBody>,
    inline: bool,
) -> Result<Headed, Failure> {
    let (mut reader, mut writer) = stream.into_split();
    let unread =
        |error: std::io::Error| Failure { resend: reset_unread(&error), error: PoolError::Worker(error) };
    match body.as_ref() {
        Some(RequestBody::Memory(bytes, _)) if inline => {
            let mut all = Vec::with_capacity(head.len() + bytes.len());
            all.extend_from_slice(head);
            all.extend_from_slice(bytes);
            writer.write_all(&all).await.map_err(unread)?;
        }
        Some(RequestBody::File { file, len }) if inline => {
            writer.write_all(head).await.map_err(unread)?;
            send_file(file, *len, &mut writer).await.map_err(unread)?;
        }
        _ => writer.write_all(head).await.map_err(unread)?,
    }
    let mut writer = Some(writer);
    let mut sending = None;
    let mut buffer = Vec::with_capacity(READ_CHUNK);
    loop {
        if let Some((parts, used)) = parse_response_head(&buffer)? {
            buffer.drain(..used);
            if parts.status == StatusCode::CONTINUE && !inline && sending.is_none() {
                // The worker took the request: the body goes now, beside the reading of the
                // response, so a script that answers before it reads stdin cannot deadlock.
                let (Some(writer), Some(body)) = (writer.take(), body.take()) else {
                    return Err(early("100 Continue without a body to send").into());
                };
                sending = Some(Sending::Running(BodySend(tokio::spawn(send_body(writer, body)))));
                continue;
            }
            // Only the one 100 Continue asked for: a 1xx from code would have its body read by
            // the client as the next response.
            if parts.status.is_informational() {
                return Err(early("an informational response from the worker").into());
            }
            let sending = match (sending, writer) {
                (Some(sending), _) => sending,
                (None, Some(writer)) if inline => Sending::Sent(writer),
                (None, _) => Sending::Withheld,
            };
            return Ok(Headed { parts, reader, sending, buffer });
        }
        let nothing_yet = buffer.is_empty() && sending.is_none();
        match read_some(&mut reader, &mut buffer).await {
            Ok(0) => return Err(early("the connection closed before a response head").into()),
            Ok(_) => {}
            Err(error) => {
                return Err(Failure {
                    resend: nothing_yet && reset_unread(&error),
                    error: PoolError::Worker(error),
                })
            }
        }
    }
}

/// Sends a body announced with Expect, after the worker's 100 Continue.
async fn send_body(mut writer: OwnedWriteHalf, body: RequestBody) -> (OwnedWriteHalf, std::io::Result<()>) {
    let result = match &body {
        RequestBody::Memory(bytes, _) => writer.write_all(bytes).await,
        RequestBody::File { file, len } => send_file(file, *len, &mut writer).await,
    };
    (writer, result)
}

/// Where the rest of a response body goes.
enum Sink {
    Spool(SpoolWriter),
    Discard,
}

impl Sink {
    /// Resolves once the client the answer is for has gone; never for a discarded answer.
    async fn reader_gone(&self) {
        match self {
            Sink::Spool(writer) => writer.reader_gone().await,
            Sink::Discard => std::future::pending().await,
        }
    }
}

/// The rest of a response after its head: what is still to be read from the worker.
struct Rest {
    reader: OwnedReadHalf,
    sending: Sending,
    buffer: Vec<u8>,
    decoder: ChunkedDecoder,
    /// Decoded bytes not yet passed on.
    decoded: Vec<u8>,
    worker_keeps: bool,
    /// Timeout: the longest wait for each read from the worker.
    timeout: Duration,
}

impl Rest {
    /// Reads the response to its end into `sink`, and gives the connection back to `idle` when it
    /// may be reused, before the spool says the response is whole: a client that sends its next
    /// request the moment it has this answer finds the worker's connection ready for it. A
    /// worker that fails now cuts the client's response short (it must not look whole).
    async fn read(mut self, mut sink: Sink, idle: &IdleWorkers) {
        loop {
            if !self.decoded.is_empty() {
                if let Sink::Spool(writer) = &mut sink {
                    if writer.write(&self.decoded).await.is_err() {
                        tracing::debug!("the client left before the end of a worker's response");
                        return;
                    }
                }
                self.decoded.clear();
            }
            if self.decoder.is_done() {
                break;
            }
            // A client gone while the worker is still answering (a script that writes, then
            // works on) ends the exchange now, not after the script or Timeout.
            let read = tokio::select! {
                read = tokio::time::timeout(self.timeout, read_some(&mut self.reader, &mut self.buffer)) => read,
                () = sink.reader_gone() => {
                    tracing::debug!("the client left while its answer was still coming from the worker");
                    return;
                }
            };
            let why = match read {
                Ok(Ok(n)) if n > 0 => None,
                Ok(Ok(_)) => Some("the worker closed the connection inside the response body".to_string()),
                Ok(Err(error)) => Some(format!("worker connection failed inside the response body: {error}")),
                Err(_) => Some("the worker did not send the rest of its response within Timeout".to_string()),
            };
            let why = why.or_else(|| match self.decoder.feed(&self.buffer, &mut self.decoded) {
                Ok(used) => {
                    self.buffer.drain(..used);
                    None
                }
                Err(error) => Some(format!("malformed response body: {error:?}")),
            });
            if let Some(why) = why {
                tracing::warn!(reason = %why, "response cut short");
                if let Sink::Spool(writer) = sink {
                    writer.fail(why);
                }
                // Dropping the send (in `self`) stops it.
                return;
            }
        }
        let keep = self.worker_keeps && self.buffer.is_empty();
        if let Some(stream) = reusable(self.reader, self.sending, keep).await {
            idle.put(stream);
        }
        if let Sink::Spool(writer) = sink {
            writer.finish();
        }
    }
}

/// The connection back in one piece when the worker offered to keep it and the body went
/// whole; else it closes here.
async fn reusable(reader: OwnedReadHalf, sending: Sending, keep: bool) -> Option<UnixStream> {
    let writer = match sending {
        Sending::Sent(writer) => Some(writer),
        Sending::Withheld => None,
        // The worker answered without reading all its body: it closes, so does this end (the
        // send stops as it is dropped).
        Sending::Running(_) if !keep => None,
        Sending::Running(mut send) => {
            // A worker that keeps the connection has read the whole body, so the send is done
            // or about to be.
            match tokio::time::timeout(Duration::from_secs(1), &mut send.0).await {
                Ok(Ok((writer, Ok(())))) => Some(writer),
                _ => None,
            }
        }
    };
    if !keep {
        return None;
    }
    reader.reunite(writer?).ok()
}

/// Sends a spilled body by explicit offsets, from its start. Each attempt reads on its own:
/// a read left over from an attempt the worker cut short (as tokio's file reads, which run on
/// the blocking pool, would be) cannot move a shared file offset under the next one. The file
/// was written moments ago, so its pages are in the page cache and a read takes microseconds,
/// as for the static files the edge reads on this thread.
async fn send_file(
    file: &crate::spill::SpillFile,
    len: u64,
    stream: &mut OwnedWriteHalf,
) -> std::io::Result<()> {
    let mut chunk = vec![0u8; SEND_CHUNK];
    let mut offset = 0u64;
    while offset < len {
        let want = usize::try_from(len - offset).unwrap_or(SEND_CHUNK).min(SEND_CHUNK);
        let n = file.read_at(&mut chunk[..want], offset)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        stream.write_all(&chunk[..n]).await?;
        offset += n as u64;
    }
    Ok(())
}

/// Bytes of a spilled body read and sent at a time.
const SEND_CHUNK: usize = 64 * 1024;

/// Bytes asked of the worker's socket per read.
const READ_CHUNK: usize = 16 * 1024;

async fn read_some(stream: &mut OwnedReadHalf, buffer: &mut Vec<u8>) -> std::io::Result<usize> {
    let start = buffer.len();
    buffer.resize(start + READ_CHUNK, 0);
    let read = stream.read(&mut buffer[start..]).await;
    buffer.truncate(start + *read.as_ref().unwrap_or(&0));
    read
}

/// The response head at the start of `buffer` and its length, once it is complete, read by
/// the contract's rules ([`wire::response::parse`]).
fn parse_response_head(buffer: &[u8]) -> Result<Option<(http::response::Parts, usize)>, PoolError> {
    let mut response = Response::new(());
    let headers = response.headers_mut();
    let parsed = wire::response::parse(buffer, |name, value| {
        let bad = |what: &str| wire::response::ResponseHeadError::Malformed(what.to_string());
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| bad("bad header name"))?;
        let value = HeaderValue::from_bytes(value).map_err(|_| bad("bad header value"))?;
        headers.append(name, value);
        Ok(())
    });
    let head = match parsed {
        Ok(Some(head)) => head,
        Ok(None) => return Ok(None),
        Err(error) => return Err(early(&error.to_string())),
    };
    let Ok(status) = StatusCode::from_u16(head.status) else {
        return Err(early("response head without a valid status"));
    };
    *response.status_mut() = status;
    Ok(Some((response.into_parts().0, head.len)))
}

fn early(reason: &str) -> PoolError {
    PoolError::Worker(std::io::Error::new(std::io::ErrorKind::InvalidData, reason.to_string()))
}

fn chunk_error(error: ChunkError) -> PoolError {
    match error {
        ChunkError::Malformed(reason) => early(reason),
        ChunkError::TooLarge => early("response body too large"),
    }
}

/// The request a worker reads, serialized by the contract ([`wire::request::write`]).
fn worker_head(
    head: &http::request::Parts,
    limits: &HeadLimits,
) -> Result<Vec<u8>, wire::request::RequestHeadError> {
    let target = head.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let fields = head.headers.iter().map(|(name, value)| (name.as_str(), value.as_bytes()));
    wire::request::write(head.method.as_str(), target, fields, limits)
}

/// Whether the worker reset the connection (rather than closing it after reading).
fn reset_unread(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    #[test]
    fn a_worker_response_head_is_taken_only_whole_and_chunked() {
        let whole = b"HTTP/1.1 201 Created\r\nX-A: b\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc";
        let (parts, used) = parse_response_head(whole).unwrap().unwrap();
        assert_eq!(parts.status, StatusCode::CREATED);
        assert_eq!(parts.headers["x-a"], "b");
        assert_eq!(&whole[used..], b"3\r\nabc");
        assert!(parse_response_head(&whole[..20]).unwrap().is_none(), "a partial head waits for more");
        let (parts, _) = parse_response_head(wire::response::CONTINUE).unwrap().unwrap();
        assert_eq!(parts.status, StatusCode::CONTINUE, "the worker's own, which the exchange judges");
        for bad in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"[..],
            b"HTTP/1.1 2000 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nBad Name: x\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 103 Early Hints\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"HTTP/1.1 100 Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
        ] {
            assert!(parse_response_head(bad).is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn the_worker_head_is_an_origin_form_request() {
        let request = Request::builder()
            .method("GET")
            .uri("/a?b=c")
            .header("host", "example.com")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        let bytes = worker_head(&request, &HeadLimits::default()).unwrap();
        assert_eq!(bytes, b"GET /a?b=c HTTP/1.1\r\nhost: example.com\r\n\r\n");
    }

    /// A worker end on a real Unix socket: answers the first request on a connection with
    /// keep-alive, then closes the connection with the next request unread; answers on the
    /// second connection normally. Returns the number of connections it saw.
    fn worker_that_leaves_a_kept_connection(listener: std::os::unix::net::UnixListener) -> usize {
        use std::io::{Read, Write};
        let answer = |stream: &mut std::os::unix::net::UnixStream, keep: &str| {
            let mut buffer = [0u8; 65536];
            let mut got = Vec::new();
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = stream.read(&mut buffer).unwrap();
                assert!(n > 0);
                got.extend_from_slice(&buffer[..n]);
            }
            let text = String::from_utf8_lossy(&got).to_string();
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            let head_len = got.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            while got.len() < head_len + length {
                let n = stream.read(&mut buffer).unwrap();
                got.extend_from_slice(&buffer[..n]);
            }
            let body = format!("{}", length);
            write!(
                stream,
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: {keep}\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                body.len()
            )
            .unwrap();
        };
        let (mut first, _) = listener.accept().unwrap();
        answer(&mut first, "keep-alive");
        // The edge's next request arrives on the kept connection, and the worker leaves.
        let mut byte = 0u8;
        // SAFETY: a one-byte buffer we own, on a descriptor this thread holds.
        let peeked = unsafe {
            use std::os::fd::AsRawFd;
            libc::recv(first.as_raw_fd(), std::ptr::addr_of_mut!(byte).cast(), 1, libc::MSG_PEEK)
        };
        assert_eq!(peeked, 1);
        drop(first);
        let (mut second, _) = listener.accept().unwrap();
        answer(&mut second, "close");
        2
    }

    #[tokio::test]
    async fn a_request_the_worker_left_unread_on_a_kept_connection_goes_to_another() {
        for body in [bytes::Bytes::new(), bytes::Bytes::from(vec![b'x'; 5000])] {
            let dir =
                std::env::temp_dir().join(format!("weir-pool-client-{}-{}", std::process::id(), body.len()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            let socket = dir.join("pool.sock");
            let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
            let worker = std::thread::spawn(move || worker_that_leaves_a_kept_connection(listener));
            let client = PoolClient::new(
                socket,
                Duration::from_secs(5),
                4,
                None,
                SpillSpace::new(None, 1 << 20, 1 << 20),
                HeadLimits::default(),
            );
            let facts = ClientFacts {
                peer: "127.0.0.1:5555".parse().unwrap(),
                local: "127.0.0.1:8443".parse().unwrap(),
                tls: None,
            };
            let parts = Request::builder().method("POST").uri("/x").body(()).unwrap().into_parts().0;
            for _ in 0..2 {
                let answer = client.send(&parts, RequestBody::Memory(body.clone(), None), &facts, ()).await;
                let Ok(PoolAnswer::Response(response)) = answer else {
                    panic!("no response with a {}-byte body: {:?}", body.len(), answer.err());
                };
                assert_eq!(response.status(), StatusCode::OK);
                // Read whole, as a client would before its next request: by then the worker's
                // connection is back among the kept ones.
                let answered =
                    http_body_util::BodyExt::collect(response.into_body()).await.unwrap().to_bytes();
                assert_eq!(answered, body.len().to_string().as_bytes());
            }
            assert_eq!(worker.join().unwrap(), 2);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
