//! Request bodies, read whole before any worker is contacted: small ones in memory, large ones
//! spilled to an unlinked temporary file (so it is removed whatever happens to the process).

use std::io::Write;

use bytes::Bytes;
use http::StatusCode;
use http_body_util::BodyExt;
use hyper::body::Incoming;

use crate::reqtimeout::{log_expiry, StageClock};

/// Bodies above this many bytes go to a temporary file.
pub const SPILL_THRESHOLD: usize = 1 << 20;

/// A complete request body.
#[derive(Debug)]
pub enum RequestBody {
    Memory(Bytes),
    /// An unlinked temporary file holding `len` bytes, positioned at its start.
    File {
        file: std::fs::File,
        len: u64,
    },
}

impl RequestBody {
    pub fn empty() -> RequestBody {
        RequestBody::Memory(Bytes::new())
    }

    pub fn len(&self) -> u64 {
        match self {
            RequestBody::Memory(bytes) => bytes.len() as u64,
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
    #[error("could not store the request body: {0}")]
    Storage(std::io::Error),
}

impl BodyError {
    pub fn status(&self) -> StatusCode {
        match self {
            BodyError::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            BodyError::Timeout => StatusCode::REQUEST_TIMEOUT,
            BodyError::Malformed(_) => StatusCode::BAD_REQUEST,
            BodyError::Storage(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// Collects body bytes, moving to a temporary file past [`SPILL_THRESHOLD`].
pub struct BodyBuffer {
    memory: Vec<u8>,
    file: Option<std::fs::File>,
    len: u64,
    /// LimitRequestBody; 0: none.
    limit: u64,
}

impl BodyBuffer {
    pub fn new(limit: u64) -> BodyBuffer {
        BodyBuffer { memory: Vec::new(), file: None, len: 0, limit }
    }

    /// Appends bytes; fails as soon as the total passes the limit.
    pub fn push(&mut self, bytes: &[u8]) -> Result<(), BodyError> {
        let len = self.len + bytes.len() as u64;
        if self.limit > 0 && len > self.limit {
            return Err(BodyError::TooLarge);
        }
        self.len = len;
        if let Some(file) = &mut self.file {
            return file.write_all(bytes).map_err(BodyError::Storage);
        }
        self.memory.extend_from_slice(bytes);
        if self.memory.len() > SPILL_THRESHOLD {
            // Written synchronously: page-cache writes of a MiB do not stall the runtime
            // noticeably, and the file never outlives the request (it has no name).
            let mut file = tempfile::tempfile().map_err(BodyError::Storage)?;
            file.write_all(&self.memory).map_err(BodyError::Storage)?;
            self.memory = Vec::new();
            self.file = Some(file);
        }
        Ok(())
    }

    pub fn finish(self) -> Result<RequestBody, BodyError> {
        match self.file {
            Some(mut file) => {
                use std::io::Seek;
                file.rewind().map_err(BodyError::Storage)?;
                Ok(RequestBody::File { file, len: self.len })
            }
            None => Ok(RequestBody::Memory(Bytes::from(self.memory))),
        }
    }
}

/// Reads an h2 (or hyper) request body whole, under LimitRequestBody and the body stage's
/// deadline; only DATA payload bytes count toward MinRate.
pub async fn read_incoming(
    mut incoming: Incoming,
    limit: u64,
    mut clock: Option<StageClock>,
    client: std::net::SocketAddr,
) -> Result<RequestBody, BodyError> {
    use hyper::body::Body as _;
    if limit > 0 && incoming.size_hint().lower() > limit {
        return Err(BodyError::TooLarge);
    }
    let mut buffer = BodyBuffer::new(limit);
    loop {
        let frame = match &clock {
            Some(running) => match tokio::time::timeout_at(running.deadline(), incoming.frame()).await {
                Ok(frame) => frame,
                Err(_) => {
                    log_expiry(running, client);
                    return Err(BodyError::Timeout);
                }
            },
            None => incoming.frame().await,
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn spills_past_the_threshold_and_enforces_the_limit() {
        let mut buffer = BodyBuffer::new(0);
        buffer.push(&vec![7u8; SPILL_THRESHOLD]).unwrap();
        buffer.push(&[8u8; 10]).unwrap();
        match buffer.finish().unwrap() {
            RequestBody::File { mut file, len } => {
                assert_eq!(len, SPILL_THRESHOLD as u64 + 10);
                let mut all = Vec::new();
                file.read_to_end(&mut all).unwrap();
                assert_eq!(all.len() as u64, len);
                assert_eq!(&all[all.len() - 10..], &[8u8; 10]);
            }
            RequestBody::Memory(_) => panic!("expected a spill"),
        }
        let mut limited = BodyBuffer::new(1000);
        limited.push(&[0u8; 1000]).unwrap();
        assert!(matches!(limited.push(&[0u8]), Err(BodyError::TooLarge)));
    }
}
