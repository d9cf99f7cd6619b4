//! The response head on the pool socket: written by a worker ([`write()`]), read by the edge
//! ([`parse`]), within [`MAX_RESPONSE_HEAD`] and [`MAX_RESPONSE_FIELDS`].
//!
//! Application code (a Handler, a CGI script) chooses the status and the fields; the worker adds
//! its own and the framing. The writer refuses, before a byte is written, a head the reader
//! would refuse or read as more than it is: a field name that is not a token, a value or reason
//! with CR, LF or NUL in it, an informational status. An interim response is the edge's to ask
//! for and the worker's to give ([`CONTINUE`]), never code's: code that answers 1xx would have
//! its body read by the client as the next response. Internal and framing fields from code are
//! dropped, so only the worker writes them.

use crate::fields::{is_token, is_value};
use crate::limits::{MAX_RESPONSE_FIELDS, MAX_RESPONSE_HEAD};

/// What a worker writes to let the edge send a body it announced with `Expect`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// Why a response head cannot be written, or was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseHeadError {
    /// A status outside 100 to 599 (RFC 9110 defines no class above 5xx; clients differ on them).
    #[error("status {0} is not a three-digit code")]
    BadStatus(u16),
    /// A 1xx status from code, or one the edge did not ask for.
    #[error("informational status {0} from code")]
    Informational(u16),
    /// A reason phrase with a control character.
    #[error("reason phrase with a control character")]
    BadReason,
    /// A field name that is not a token.
    #[error("response header name {0:?} is not a token")]
    BadName(String),
    /// A field value with CR, LF, NUL or another control character.
    #[error("response header {name} has a control character in its value {value:?}")]
    BadValue { name: String, value: String },
    /// More than [`MAX_RESPONSE_FIELDS`] field lines.
    #[error("more than {MAX_RESPONSE_FIELDS} response header fields")]
    TooManyFields,
    /// A head longer than [`MAX_RESPONSE_HEAD`].
    #[error("response head larger than {MAX_RESPONSE_HEAD} bytes")]
    TooLarge,
    /// A final response whose body is not chunked.
    #[error("response body not chunked")]
    NotChunked,
    /// Bytes that are no response head.
    #[error("malformed response head: {0}")]
    Malformed(String),
}

/// The fields a worker adds to every response head: they are its own, never code's.
#[derive(Debug, Clone, Copy)]
pub struct Own<'a> {
    /// The worker's pid, for the access log.
    pub pid: u32,
    /// `Connection: keep-alive` (else `close`).
    pub keep_alive: bool,
    /// A CGI local redirect's target (a [`crate::is_local_path`]).
    pub local_redirect: Option<&'a str>,
    /// The worker's own 404 or 403 for a script ([`crate::REFUSAL`]).
    pub refusal: bool,
}

/// The fields every head ends with: the worker's pid, Transfer-Encoding and Connection.
const OWN_FIELDS: usize = 3;

/// Fields that frame the message on the pool socket: the worker's to write.
fn is_framing(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "keep-alive"]
        .iter()
        .any(|framing| name.eq_ignore_ascii_case(framing))
}

/// Whether `status` may be a final response's: 200 to 599 (not 1xx, and no class RFC 9110 does
/// not define).
pub fn check_status(status: u16) -> Result<(), ResponseHeadError> {
    match status {
        100..=199 => Err(ResponseHeadError::Informational(status)),
        200..=599 => Ok(()),
        _ => Err(ResponseHeadError::BadStatus(status)),
    }
}

/// The head of a final response with a chunked body: the status line, code's `fields` (less
/// framing and internal ones, which only the worker writes), then the worker's own. Refused,
/// with nothing written, when any part is malformed or it would be beyond the limits.
pub fn write<'a>(
    status: u16,
    reason: &str,
    fields: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    own: &Own<'_>,
) -> Result<Vec<u8>, ResponseHeadError> {
    check_status(status)?;
    if !is_value(reason.as_bytes()) {
        return Err(ResponseHeadError::BadReason);
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"HTTP/1.1 ");
    push_decimal(&mut out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut count = 0;
    for (name, value) in fields {
        if is_framing(name) || crate::is_internal(name) {
            continue;
        }
        push_field(&mut out, name, value)?;
        count += 1;
        // Refused as soon as it is beyond the limits, before code's fields are all copied.
        if count + OWN_FIELDS > MAX_RESPONSE_FIELDS {
            return Err(ResponseHeadError::TooManyFields);
        }
        if out.len() > MAX_RESPONSE_HEAD {
            return Err(ResponseHeadError::TooLarge);
        }
    }
    if let Some(target) = own.local_redirect {
        if !crate::is_local_path(target) {
            return Err(ResponseHeadError::BadValue {
                name: crate::LOCAL_REDIRECT.to_string(),
                value: target.to_string(),
            });
        }
        push_field(&mut out, crate::LOCAL_REDIRECT, target.as_bytes())?;
        count += 1;
    }
    if own.refusal {
        out.extend_from_slice(crate::REFUSAL.as_bytes());
        out.extend_from_slice(b": 1\r\n");
        count += 1;
    }
    out.extend_from_slice(crate::WORKER_PID.as_bytes());
    out.extend_from_slice(b": ");
    push_decimal(&mut out, u64::from(own.pid));
    out.extend_from_slice(b"\r\nTransfer-Encoding: chunked\r\n");
    out.extend_from_slice(if own.keep_alive {
        b"Connection: keep-alive\r\n\r\n"
    } else {
        b"Connection: close\r\n\r\n"
    });
    if count + OWN_FIELDS > MAX_RESPONSE_FIELDS {
        return Err(ResponseHeadError::TooManyFields);
    }
    if out.len() > MAX_RESPONSE_HEAD {
        return Err(ResponseHeadError::TooLarge);
    }
    Ok(out)
}

/// Appends one checked field line.
fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) -> Result<(), ResponseHeadError> {
    if !is_token(name.as_bytes()) {
        return Err(ResponseHeadError::BadName(name.to_string()));
    }
    if !is_value(value) {
        let value = String::from_utf8_lossy(value).into_owned();
        return Err(ResponseHeadError::BadValue { name: name.to_string(), value });
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
    Ok(())
}

/// Writes `n` in decimal without a formatter's machinery.
fn push_decimal(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = n;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A response head the edge has read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponseHead {
    /// A final status (200 to 599), or 100 for the worker's [`CONTINUE`].
    pub status: u16,
    /// Bytes of head, blank line included.
    pub len: usize,
}

/// Reads the head at the start of `buffer`, handing each field to `field` in order: `None`
/// while it is incomplete and within the limits. Taken: a `100 Continue` without fields (the
/// caller decides whether it asked for one), and final responses with a chunked body.
pub fn parse(
    buffer: &[u8],
    mut field: impl FnMut(&str, &[u8]) -> Result<(), ResponseHeadError>,
) -> Result<Option<ResponseHead>, ResponseHeadError> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_RESPONSE_FIELDS];
    let mut parsed = httparse::Response::new(&mut slots);
    let len = match parsed.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) if buffer.len() > MAX_RESPONSE_HEAD => {
            return Err(ResponseHeadError::TooLarge)
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(ResponseHeadError::TooManyFields),
        Err(error) => return Err(ResponseHeadError::Malformed(error.to_string())),
    };
    if len > MAX_RESPONSE_HEAD {
        return Err(ResponseHeadError::TooLarge);
    }
    let status = parsed.code.ok_or_else(|| ResponseHeadError::Malformed("no status".to_string()))?;
    if status == 100 && parsed.headers.is_empty() {
        return Ok(Some(ResponseHead { status, len }));
    }
    check_status(status)?;
    let chunked = parsed.headers.iter().any(|f| {
        f.name.eq_ignore_ascii_case("transfer-encoding") && f.value.eq_ignore_ascii_case(b"chunked")
    });
    if !chunked {
        return Err(ResponseHeadError::NotChunked);
    }
    for f in parsed.headers.iter() {
        field(f.name, f.value)?;
    }
    Ok(Some(ResponseHead { status, len }))
}

#[cfg(test)]
mod tests;
