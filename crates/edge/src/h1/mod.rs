//! Strict HTTP/1.1 request reading (RFC 9112).
//!
//! The edge reads HTTP/1.1 requests itself instead of relying on hyper's HTTP/1 server, which is
//! lenient on purpose. Here anything a peer or a backend could read two ways (line endings,
//! framing, folding, whitespace) is rejected, so nothing ambiguous is ever forwarded.
//!
//! - [`head`]: the request line and header section, with Apache-style size limits.
//! - [`chunked`]: an incremental decoder for `Transfer-Encoding: chunked` bodies.

pub mod chunked;
pub mod conn;
pub mod hangup;
pub mod head;
