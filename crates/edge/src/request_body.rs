//! Request bodies for the pool, read whole before any worker is contacted (a worker never waits
//! on a slow client): small ones in memory, large ones spilled to an unnamed file in SpillDir,
//! counted against SpillLimit.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;

use crate::reqtimeout::{log_expiry, StageClock};
use crate::request_checks;
use crate::source::Source;
use crate::spill::{Full, MemoryHold, SpillError, SpillFile, SpillSpace};

/// Bodies above this many bytes go to a spill file: the same bound as a response's memory (see
/// [`crate::response_spool`]), so a request costs the edge at most this much of either.
pub const SPILL_THRESHOLD: usize = 256 * 1024;

/// How long and how much of a request body nobody wants is still read after the answer, so a
/// client still sending sees the answer instead of a reset (nginx's lingering close; Apache
/// reads for up to 2 s). HTTP/1.1 lingers on the connection, h2 on the stream.
pub const LINGER_FOR: std::time::Duration = std::time::Duration::from_secs(2);
pub const LINGER_BYTES: u64 = 16 << 20;

/// A complete request body.
#[derive(Debug)]
pub enum RequestBody {
    /// In memory, counted against the edge's memory budget by the hold while it lives.
    Memory(Bytes, Option<MemoryHold>),
    /// A spill file holding `len` bytes from its start.
    File { file: SpillFile, len: u64 },
}

impl RequestBody {
    pub fn empty() -> RequestBody {
        RequestBody::Memory(Bytes::new(), None)
    }

    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Memory(bytes, _) => bytes.len() as u64,
            RequestBody::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why a body could not be read; each is the client's fault and maps to a status.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body larger than LimitRequestBody")]
    TooLarge,
    #[error("request body read timeout")]
    Timeout,
    #[error("malformed request body: {0}")]
    Malformed(String),
    /// SpillDir could not take it: the operator's problem, not the client's, and likely
    /// passing (503).
    #[error("could not store the request body: {0}")]
    Storage(std::io::Error),
    #[error("{0}")]
    SpillFull(Full),
}

impl From<SpillError> for BodyError {
    fn from(error: SpillError) -> BodyError {
        match error {
            SpillError::Full(full) => BodyError::SpillFull(full),
            SpillError::Io(error) => BodyError::Storage(error),
        }
    }
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Malformed(_) => StatusCode::BAD_REQUEST,
            BodyError::Storage(_) | BodyError::SpillFull(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// Collects body bytes, moving to a spill file past [`SPILL_THRESHOLD`], or as soon as the
/// edge's memory budget (or the source's share of it) cannot take more.
pub struct BodyBuffer {
    memory: Vec<u8>,
    /// The memory's allocation, counted against the budget.
    hold: MemoryHold,
    file: Option<SpillFile>,
    len: u64,
    /// LimitRequestBody; 0: none.
    limit: u64,
    space: Arc<SpillSpace>,
    /// Whose share of the spill space the body counts against.
    owner: Source,
}

impl BodyBuffer {
    pub fn new(limit: u64, space: Arc<SpillSpace>, owner: Source) -> BodyBuffer {
        let hold = space.memory_hold(owner);
        BodyBuffer { memory: Vec::new(), hold, file: None, len: 0, limit, space, owner }
    }

    /// Appends bytes; fails as soon as the total passes the limit or the spill space is full.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), BodyError> {
        let len = self.len + bytes.len() as u64;
        if !request_checks::body_fits(len, self.limit) {
            return Err(BodyError::TooLarge);
        }
        if let Some(file) = &mut self.file {
            file.write_at(bytes, self.len)?;
            self.len = len;
            return Ok(());
        }
        let needed = self.memory.len() + bytes.len();
        let capacity = self.memory.capacity();
        // The allocation is what costs memory, so it is what is counted: grown by doubling as a
        // Vec would, up to the threshold, and only as far as the budget allows.
        let target = (capacity * 2).max(needed).min(SPILL_THRESHOLD);
        let fits = needed <= SPILL_THRESHOLD && (needed <= capacity || self.hold.grow(target - capacity));
        if fits {
            if needed > capacity {
                self.memory.reserve_exact(target - self.memory.len());
            }
            self.memory.extend_from_slice(bytes);
            self.len = len;
            return Ok(());
        }
        // Written synchronously: page-cache writes of a few hundred KiB do not stall the
        // runtime noticeably, and the file never outlives the request (it has no name).
        let mut file = self.space.file(self.owner).map_err(BodyError::Storage)?;
        file.write_at(&self.memory, 0)?;
        file.write_at(bytes, self.memory.len() as u64)?;
        self.memory = Vec::new();
        self.hold.clear();
        self.file = Some(file);
        self.len = len;
        Ok(())
    }

    pub fn finish(self) -> Result<RequestBody, BodyError> {
        match self.file {
            Some(file) => Ok(RequestBody::File { file, len: self.len }),
            None => Ok(RequestBody::Memory(Bytes::from(self.memory), Some(self.hold))),
        }
    }
}

/// Refuses from the head a body that could never be stored: one larger than what its source
/// may spill (it would only be read, spilled and refused at the share; over h2 a refusal
/// that late left the stream reset without a status).
pub fn check_declared(declared: u64, space: &SpillSpace) -> Result<(), BodyError> {
    if declared > SPILL_THRESHOLD as u64 && declared > space.share() {
        return Err(BodyError::SpillFull(Full::Source));
    }
    Ok(())
}

/// Reads an h2 (or hyper) request body whole, under LimitRequestBody, the body stage's deadline
/// and `idle` (Timeout) for each frame; only DATA payload bytes count toward MinRate.
pub async fn read_incoming<B>(
    incoming: &mut B,
    limit: u64,
    mut clock: Option<StageClock>,
    idle: std::time::Duration,
    client: std::net::SocketAddr,
    space: Arc<SpillSpace>,
) -> Result<RequestBody, BodyError>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Display,
{
    let declared = incoming.size_hint().lower();
    if !request_checks::body_fits(declared, limit) {
        return Err(BodyError::TooLarge);
    }
    check_declared(declared, &space)?;
    let mut buffer = BodyBuffer::new(limit, space, Source::of(client.ip()));
    loop {
        let idle_until = tokio::time::Instant::now() + idle;
        let deadline = clock.as_ref().map_or(idle_until, |running| running.deadline().min(idle_until));
        let frame = match tokio::time::timeout_at(deadline, incoming.frame()).await {
            Ok(frame) => frame,
            Err(_) => {
                match &clock {
                    Some(running) if running.deadline() <= deadline => log_expiry(running, client),
                    _ => tracing::debug!(%client, "no request body bytes within Timeout"),
                }
                return Err(BodyError::Timeout);
            }
        };
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| BodyError::Malformed(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if let Some(running) = clock.as_mut() {
                running.received(data.len());
            }
            buffer.push(&data)?;
        }
    }
    buffer.finish()
}

/// An h2 request body the answer did not take, or took only part of (a 413, a static file, a
/// refusal): read and dropped in a task of its own for at most [`LINGER_FOR`] and
/// [`LINGER_BYTES`], so the client can finish sending and read the answer. curl (7.88), for one,
/// drops an answer whose stream is reset while it is still uploading, though RFC 9113 8.1 allows
/// the reset: with the reset sent right after the answer, it read the 413 of 5 to 9 in 20
/// over-limit uploads of 1 MB; reading on, 20 of 20. A client that ends its body ends the
/// stream cleanly; past the bound the body is dropped, and h2 resets the stream with NO_ERROR
/// once the answer is complete (never before: the stream is held until then).
pub fn discard_incoming<B>(incoming: B)
where
    B: hyper::body::Body<Data = Bytes> + Send + Unpin + 'static,
{
    if incoming.is_end_stream() {
        return;
    }
    tokio::spawn(async move {
        let mut incoming = incoming;
        let until = tokio::time::Instant::now() + LINGER_FOR;
        let mut read = 0u64;
        while read < LINGER_BYTES {
            match tokio::time::timeout_at(until, incoming.frame()).await {
                Ok(Some(Ok(frame))) => read += frame.data_ref().map_or(0, |data| data.len() as u64),
                _ => return,
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spills_past_the_threshold_and_enforces_the_limit() {
        let me = Source::of([192, 0, 2, 1].into());
        let space = SpillSpace::new(None, 1 << 30, 1 << 30);
        let mut buffer = BodyBuffer::new(0, space.clone(), me);
        buffer.push(&vec![7u8; SPILL_THRESHOLD]).unwrap();
        buffer.push(&[8u8; 10]).unwrap();
        match buffer.finish().unwrap() {
            RequestBody::File { file, len } => {
                assert_eq!(len, SPILL_THRESHOLD as u64 + 10);
                assert_eq!(space.used(), len);
                let mut all = vec![0u8; len as usize + 1];
                assert_eq!(file.read_at(&mut all, 0).unwrap() as u64, len);
                assert_eq!(&all[len as usize - 10..len as usize], &[8u8; 10]);
            }
            RequestBody::Memory(..) => panic!("expected a spill"),
        }
        assert_eq!(space.used(), 0, "the file's bytes are given back with it");
        let mut limited = BodyBuffer::new(1000, space.clone(), me);
        limited.push(&[0u8; 1000]).unwrap();
        assert!(matches!(limited.push(&[0u8]), Err(BodyError::TooLarge)));
        let small = SpillSpace::new(None, SPILL_THRESHOLD as u64 + 5, SPILL_THRESHOLD as u64 + 5);
        let mut capped = BodyBuffer::new(0, small.clone(), me);
        capped.push(&vec![1u8; SPILL_THRESHOLD + 1]).unwrap();
        assert!(matches!(capped.push(&[0u8; 10]), Err(BodyError::SpillFull(Full::Total))));
        assert!(check_declared(SPILL_THRESHOLD as u64 + 5, &small).is_ok());
        assert!(matches!(
            check_declared(SPILL_THRESHOLD as u64 + 6, &small),
            Err(BodyError::SpillFull(Full::Source))
        ));
    }

    #[test]
    fn bodies_past_the_memory_budget_or_share_go_to_a_file() {
        let me = Source::of([192, 0, 2, 1].into());
        let other = Source::of([192, 0, 2, 2].into());
        // A 400 KiB budget: 100 KiB per source.
        let space = SpillSpace::with_memory(None, 1 << 30, 1 << 30, 400 * 1024);
        let mut first = BodyBuffer::new(0, space.clone(), me);
        first.push(&[1u8; 64 * 1024]).unwrap();
        let first = first.finish().unwrap();
        assert!(matches!(first, RequestBody::Memory(..)));
        assert_eq!(space.memory_used(), 64 * 1024);
        let mut second = BodyBuffer::new(0, space.clone(), me);
        second.push(&[2u8; 64 * 1024]).unwrap();
        let second = second.finish().unwrap();
        assert!(matches!(second, RequestBody::File { len, .. } if len == 64 * 1024), "over the share");
        assert_eq!(space.used(), 64 * 1024);
        let mut theirs = BodyBuffer::new(0, space.clone(), other);
        theirs.push(&[3u8; 64 * 1024]).unwrap();
        assert!(matches!(theirs.finish().unwrap(), RequestBody::Memory(..)), "another source's share");
        drop(first);
        assert_eq!(space.memory_used(), 0);
    }
}
