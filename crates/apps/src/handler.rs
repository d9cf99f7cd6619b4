//! The Rust Handler API: application code that runs inside prefork workers.
//!
//! A handler is registered on a path when the server is built; the edge sends every request for
//! that path (and below it) to the pool, and the worker that accepts it calls the handler. Each
//! worker has its own copy of every handler (the pool master forks it), so a handler may hold
//! state that is not thread-safe — a connection to a C library opened in [`Handler::init`], say —
//! and never shares it with another process.

use crate::request::Request;

/// Application code that answers requests inside a worker.
pub trait Handler {
    /// Called once in each new worker, before its first request: open libraries and files here.
    fn init(&mut self) {}
    /// Answers one request. `request.body` holds the whole body: the worker reads it into memory
    /// before calling the handler, bounded by the request's Content-Length, which the edge
    /// limits by `LimitRequestBody`. Memory for a Handler thus grows with the bodies it accepts
    /// (CGI scripts, by contrast, read theirs as a stream): set LimitRequestBody with the
    /// largest body a handler must take in mind.
    fn handle(&mut self, request: &Request) -> Response;
    /// Called once when the worker leaves normally (recycling, reload, stop).
    fn exit(&mut self) {}
}

/// A handler's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// A final status, 200 to 599: an informational one (1xx) is answered 502, since only weir
    /// sends `100 Continue`; anything else outside that range 500.
    pub status: u16,
    /// Header fields. A name must be a token and a value must hold no CR, LF, NUL or other
    /// control character: a response that breaks this is never written, and the client gets 500
    /// (the error log names the field). Framing headers (Content-Length, Transfer-Encoding,
    /// Connection) and weir's internal `x-weir-*` ones are weir's to set and are dropped.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Response {
    /// An empty response with this status.
    pub fn new(status: u16) -> Response {
        Response { status, headers: Vec::new(), body: Vec::new() }
    }

    /// A `text/plain` response.
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        Response::new(status).with_header("Content-Type", "text/plain; charset=utf-8").with_body(body.into())
    }

    /// Adds a header field.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_string(), value.as_bytes().to_vec()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }
}

pub use weir_wire::route_matches;
