//! The access-log line of a request, written once its answer is known; for a response streamed
//! from a worker, when its body ends, so the line records the bytes actually sent and the whole
//! time taken.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::SystemTime;

use bytes::Bytes;
use hyper::body::{Frame, SizeHint};

use crate::access_log::{AccessLog, Entry};
use crate::body::Body;

/// What the access log needs from the request, taken before the request is consumed.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub request_line: String,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    pub protocol: String,
    pub request_id: Option<String>,
    /// The request headers a site's own LogFormat reads (empty otherwise).
    pub headers: Vec<Option<String>>,
}

/// One request's line, all but its byte count.
pub struct Record {
    pub access_log: Option<Arc<AccessLog>>,
    pub scoreboard: weir_scoreboard::Scoreboard,
    pub client: SocketAddr,
    pub time: SystemTime,
    pub line: LogLine,
    pub status: u16,
    pub queue_wait_us: Option<u64>,
    pub tls: Option<&'static str>,
    pub worker_pid: Option<i32>,
    /// The user the request named (`%u`).
    pub user: Option<String>,
    /// The port the request came in on (`%p`).
    pub local_port: u16,
    /// The response headers a site's own LogFormat reads (empty otherwise).
    pub response_headers: Vec<Option<String>>,
}

impl Record {
    /// Counts the request in the scoreboard and writes its line.
    pub fn write(&self, bytes: u64) {
        let duration = self.time.elapsed().unwrap_or_default();
        self.scoreboard.counters().served(bytes, duration.as_micros() as u64);
        if let Some(log) = &self.access_log {
            log.write(&Entry {
                client: self.client,
                time: self.time,
                request_line: &self.line.request_line,
                status: self.status,
                bytes: Some(bytes),
                referer: self.line.referer.as_deref(),
                user_agent: self.line.user_agent.as_deref(),
                duration_us: duration.as_micros() as u64,
                queue_wait_us: self.queue_wait_us,
                tls: self.tls,
                protocol: &self.line.protocol,
                worker_pid: self.worker_pid,
                request_id: self.line.request_id.as_deref(),
                user: self.user.as_deref(),
                local_port: self.local_port,
                request_headers: &self.line.headers,
                response_headers: &self.response_headers,
            });
        }
    }
}

/// A streamed body that writes its request's line when it is dropped (sent, cut or abandoned),
/// with the bytes that went to the client.
pub struct LoggedBody {
    inner: Body,
    sent: u64,
    record: Record,
}

impl LoggedBody {
    pub fn new(inner: Body, record: Record) -> LoggedBody {
        LoggedBody { inner, sent: 0, record }
    }
}

impl hyper::body::Body for LoggedBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                self.sent += data.len() as u64;
            }
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for LoggedBody {
    fn drop(&mut self) {
        self.record.write(self.sent);
    }
}
