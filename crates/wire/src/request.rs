//! The request head on the pool socket: written by the edge ([`write()`]), read by a worker
//! ([`parse`]), both within the same [`HeadLimits`].
//!
//! The edge has checked and re-framed the request before it writes it (origin-form target,
//! exactly one Content-Length, no Transfer-Encoding), so the format is plain HTTP/1.1 with CRLF
//! line ends. The writer refuses whatever the reader would refuse or read differently, so a
//! request either reaches the worker as the edge meant it or gets its 4xx at the edge.

use crate::fields::{is_target, is_token, is_value};
use crate::limits::HeadLimits;

/// Why a request head cannot go to, or be read by, a worker.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestHeadError {
    /// The request line is longer than [`HeadLimits::max_line`].
    #[error("request line longer than a worker reads")]
    LineTooLong,
    /// More field lines than [`HeadLimits::max_fields`].
    #[error("more request header fields than a worker reads")]
    TooManyFields,
    /// A head longer than [`HeadLimits::max_head`].
    #[error("request head larger than a worker reads")]
    TooLarge,
    /// The method is not a token.
    #[error("request method is not a token")]
    BadMethod,
    /// The target is empty, or holds a space or a control character.
    #[error("request target with a space or a control character")]
    BadTarget,
    /// A field name that is not a token.
    #[error("request header name {0:?} is not a token")]
    BadName(String),
    /// A field value with CR, LF, NUL or another control character; the field's name.
    #[error("request header {0} has a control character in its value")]
    BadValue(String),
    /// Bytes that are no request head.
    #[error("malformed request head: {0}")]
    Malformed(String),
}

impl RequestHeadError {
    /// The status a client gets for a request whose head the edge cannot send: 414 for the line,
    /// 431 for the fields, 400 for the rest (which the edge's own checks should have caught).
    pub fn status(&self) -> u16 {
        match self {
            RequestHeadError::LineTooLong => 414,
            RequestHeadError::TooManyFields | RequestHeadError::TooLarge => 431,
            _ => 400,
        }
    }
}

/// A request head as a worker reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The origin-form target as sent: path and query, still percent-encoded.
    pub target: String,
    /// The `1` of `HTTP/1.1` (the edge writes nothing else).
    pub minor_version: u8,
    /// The fields in order, names as sent, values without whitespace at their ends.
    pub fields: Vec<(String, Vec<u8>)>,
}

/// The head the edge sends a worker: `method target HTTP/1.1`, `fields` in order, the blank
/// line. Refused (nothing written) when a part is malformed or the head is beyond `limits`.
pub fn write<'a>(
    method: &str,
    target: &str,
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    limits: &HeadLimits,
) -> Result<Vec<u8>, RequestHeadError> {
    if !is_token(method.as_bytes()) {
        return Err(RequestHeadError::BadMethod);
    }
    if !is_target(target.as_bytes()) {
        return Err(RequestHeadError::BadTarget);
    }
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1");
    if out.len() > limits.max_line() {
        return Err(RequestHeadError::LineTooLong);
    }
    out.extend_from_slice(b"\r\n");
    let (max_fields, max_head) = (limits.max_fields(), limits.max_head());
    for (count, (name, value)) in fields.into_iter().enumerate() {
        if count == max_fields {
            return Err(RequestHeadError::TooManyFields);
        }
        if !is_token(name.as_bytes()) {
            return Err(RequestHeadError::BadName(name.to_string()));
        }
        if !is_value(value) {
            return Err(RequestHeadError::BadValue(name.to_string()));
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
        if out.len() + 2 > max_head {
            return Err(RequestHeadError::TooLarge);
        }
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

/// Where the head that starts `buffer` ends (just past its blank line), looking only from
/// `searched` on (less three bytes, for a line end split across reads): a reader that calls
/// this as bytes arrive scans each byte about once.
pub fn head_end(buffer: &[u8], searched: usize) -> Option<usize> {
    let from = searched.saturating_sub(3).min(buffer.len());
    buffer[from..].windows(4).position(|w| w == b"\r\n\r\n").map(|i| from + i + 4)
}

/// Reads the head at the start of `buffer`: `None` while it is incomplete and within `limits`,
/// else the head and its length.
pub fn parse(buffer: &[u8], limits: &HeadLimits) -> Result<Option<(RequestHead, usize)>, RequestHeadError> {
    let Some(end) = head_end(buffer, 0) else {
        return match buffer.len() > limits.max_head() {
            true => Err(RequestHeadError::TooLarge),
            false => Ok(None),
        };
    };
    if end > limits.max_head() {
        return Err(RequestHeadError::TooLarge);
    }
    let head = &buffer[..end];
    let line_end = head.iter().position(|&b| b == b'\n').unwrap_or(end);
    if line_end.saturating_sub(1) > limits.max_line() {
        return Err(RequestHeadError::LineTooLong);
    }
    // Room for exactly the fields there are (every line but the request line and the blank
    // one), found before any is parsed: no fixed array, whatever LimitRequestFields says.
    let lines = head.iter().filter(|&&b| b == b'\n').count();
    let count = lines.saturating_sub(2);
    if count > limits.max_fields() {
        return Err(RequestHeadError::TooManyFields);
    }
    let mut slots = vec![httparse::EMPTY_HEADER; count];
    let mut parsed = httparse::Request::new(&mut slots);
    let malformed = |what: &str| RequestHeadError::Malformed(what.to_string());
    match parsed.parse(head) {
        Ok(httparse::Status::Complete(used)) if used == end => {}
        Ok(_) => return Err(malformed("the head does not end at its blank line")),
        Err(error) => return Err(malformed(&error.to_string())),
    }
    let missing = || malformed("incomplete request line");
    let request = RequestHead {
        method: parsed.method.ok_or_else(missing)?.to_string(),
        target: parsed.path.ok_or_else(missing)?.to_string(),
        minor_version: parsed.version.ok_or_else(missing)?,
        fields: parsed.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect(),
    };
    Ok(Some((request, end)))
}

#[cfg(test)]
mod tests;
