//! Strict reading of an HTTP/1.1 request head: request line and field section (RFC 9112
//! sections 2, 3, 5 and 6).
//!
//! The edge sits in front of backends that parse the request again. Any head that two parsers
//! could read differently (bare LF, obs-fold, whitespace before a colon, duplicate or
//! conflicting framing fields, ...) is a request-smuggling or cache-poisoning vector, so every
//! such head is rejected instead of being "repaired". As a last line of defence, every head we
//! accept is read a second time with `httparse` and must come out the same.
//!
//! [`parse`] is stateless: call it on the whole buffer each time more bytes arrive. It returns
//! [`HeadError::Incomplete`] only while no limit is exceeded, so the buffer a peer can make us
//! hold is bounded by [`Limits::max_head_len`].

use http::header::{CONNECTION, CONTENT_LENGTH, HOST, TRANSFER_ENCODING};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Version};

pub use crate::request_checks::Limits;
use crate::request_checks::{self, Refusal};

/// How many empty lines before the request line we skip (RFC 9112 section 2.2 says "at least
/// one"; browsers may send a stray CRLF after a POST body).
const MAX_LEADING_EMPTY_LINES: usize = 2;

impl Limits {
    /// A strict upper bound on the buffer length for which [`parse`] can still answer
    /// `Incomplete`: a caller holding this much without a result has a bug. Useful to size read
    /// buffers.
    pub fn max_head_len(&self) -> usize {
        let field_lines = self.fields.saturating_mul(self.field_size.saturating_add(2));
        (MAX_LEADING_EMPTY_LINES * 2)
            .saturating_add(self.request_line)
            .saturating_add(2)
            .saturating_add(field_lines)
            .saturating_add(2)
    }
}

/// How the message body, if any, is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body: neither Content-Length nor Transfer-Encoding.
    None,
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// A request head that passed every check.
#[derive(Debug, Clone)]
pub struct RequestHead {
    pub method: Method,
    /// The request-target as sent: origin-form, absolute-form, or `*` (OPTIONS only).
    pub target: String,
    /// The origin-form equivalent of `target`: for absolute-form, its path and query ("/" if
    /// empty); otherwise `target` itself.
    pub path_and_query: String,
    /// `HTTP_10` or `HTTP_11`.
    pub version: Version,
    /// Every field line, in order, duplicates kept; names lowercased.
    pub headers: HeaderMap,
    /// The authority the request is for, as sent: from an absolute-form target, else Host.
    pub host: Option<String>,
    pub framing: Framing,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// The client sent `Expect: 100-continue` on an HTTP/1.1 request.
    pub expect_continue: bool,
}

/// Why a head was not accepted (or not yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HeadError {
    /// Not an error: the head is not complete yet and no limit is exceeded; read more.
    #[error("request head incomplete")]
    Incomplete,
    /// The request line is longer than `Limits::request_line`.
    #[error("request line too long")]
    LineTooLong,
    /// A field line is longer than `Limits::field_size`.
    #[error("request header field too large")]
    FieldTooLarge,
    /// More field lines than `Limits::fields`.
    #[error("too many request header fields")]
    TooManyFields,
    /// The head violates RFC 9112 or is ambiguous; the text is for logs only.
    #[error("malformed request head: {0}")]
    Malformed(&'static str),
    /// An `Expect` value other than `100-continue`.
    #[error("unsupported expectation")]
    ExpectationFailed,
    /// A well-formed HTTP version other than 1.0 and 1.1.
    #[error("HTTP version not supported")]
    VersionNotSupported,
}

impl From<Refusal> for HeadError {
    fn from(refusal: Refusal) -> HeadError {
        match refusal {
            Refusal::LineTooLong => HeadError::LineTooLong,
            Refusal::FieldTooLarge => HeadError::FieldTooLarge,
            Refusal::TooManyFields => HeadError::TooManyFields,
            Refusal::Malformed(reason) => HeadError::Malformed(reason),
            Refusal::ExpectationFailed => HeadError::ExpectationFailed,
        }
    }
}

impl HeadError {
    /// The status to answer with. `Incomplete` maps to 400 for the case where the peer stopped
    /// sending (EOF) in the middle of a head; a caller timing out may prefer 408.
    pub fn status(&self) -> StatusCode {
        match self {
            HeadError::Incomplete | HeadError::Malformed(_) => StatusCode::BAD_REQUEST,
            HeadError::LineTooLong => StatusCode::URI_TOO_LONG,
            HeadError::FieldTooLarge | HeadError::TooManyFields => {
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE
            }
            HeadError::ExpectationFailed => StatusCode::EXPECTATION_FAILED,
            HeadError::VersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }
}

/// Where the head in `buf` ends (just past the CRLF CRLF), after skipping the leading empty lines
/// [`parse`] skips. A cheap pre-check only: [`parse`] is the authority on whether the head is
/// valid and must still be called, also while this returns `None`, to enforce the limits early.
pub fn head_end(buf: &[u8]) -> Option<usize> {
    let start = skip_leading_empty_lines(buf);
    let rest = buf.get(start..)?;
    rest.windows(4).position(|w| w == b"\r\n\r\n").map(|i| start + i + 4)
}

/// Parses the request head at the start of `buf`.
///
/// Returns the head and the number of bytes it took (leading empty lines and the final CRLF
/// CRLF included; what follows is body or the next request). Returns `Err(Incomplete)` only
/// while the head could still become valid within the limits.
pub fn parse(buf: &[u8], limits: &Limits) -> Result<(RequestHead, usize), HeadError> {
    let start = skip_leading_empty_lines(buf);
    let (line, mut pos) = next_line(buf, start, |len| limits.request_line(len))?;
    // Checked before the fields arrive, so a bad request line fails without waiting for them.
    let request_line = parse_request_line(line)?;

    let mut fields: Vec<(&[u8], &[u8])> = Vec::new();
    loop {
        if buf.get(pos).is_some_and(|&b| b != b'\r') {
            // Another line starts and it is not the blank line that ends the head.
            limits.field_count(fields.len() + 1)?;
        }
        let (line, next) = next_line(buf, pos, |len| limits.field_line(len))?;
        pos = next;
        if line.is_empty() {
            break;
        }
        fields.push(split_field_line(line).map_err(HeadError::Malformed)?);
    }

    let head = build_head(request_line, &fields)?;
    cross_check(buf, pos, &head, &fields)?;
    Ok((head, pos))
}

/// Skips up to [`MAX_LEADING_EMPTY_LINES`] CRLFs at the start of `buf`.
fn skip_leading_empty_lines(buf: &[u8]) -> usize {
    let mut pos = 0;
    for _ in 0..MAX_LEADING_EMPTY_LINES {
        match buf.get(pos..pos + 2) {
            Some(b"\r\n") => pos += 2,
            _ => break,
        }
    }
    pos
}

/// Returns the line starting at `start` (without its CRLF) and the offset after the CRLF.
///
/// Only CRLF ends a line: a bare LF or a CR not followed by LF is `Malformed`, because other
/// parsers split lines there differently. A line the checker's `fits` refuses (by its length so
/// far) fails as soon as that is certain, complete or not, so an unterminated line cannot grow
/// without bound.
fn next_line(
    buf: &[u8],
    start: usize,
    fits: impl Fn(usize) -> Result<(), Refusal>,
) -> Result<(&[u8], usize), HeadError> {
    let rest = buf.get(start..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\r' || b == b'\n') {
        Some(i) if rest[i] == b'\n' => Err(HeadError::Malformed("bare LF line ending")),
        Some(i) => {
            fits(i)?;
            match rest.get(i + 1) {
                Some(b'\n') => Ok((&rest[..i], start + i + 2)),
                Some(_) => Err(HeadError::Malformed("bare CR")),
                None => Err(HeadError::Incomplete),
            }
        }
        None => {
            fits(rest.len())?;
            Err(HeadError::Incomplete)
        }
    }
}

/// The three parts of a request line.
struct RequestLine<'a> {
    method: Method,
    target: &'a str,
    version: Version,
}

/// Parses `method SP request-target SP HTTP-version` with exactly single spaces and nothing
/// else: no tabs, no leading or trailing whitespace (RFC 9112 section 3).
fn parse_request_line(line: &[u8]) -> Result<RequestLine<'_>, HeadError> {
    if line.is_empty() {
        return Err(HeadError::Malformed("too many empty lines before the request line"));
    }
    if line.contains(&b'\t') {
        return Err(HeadError::Malformed("tab in request line"));
    }
    let (method, rest) = split_at_space(line).ok_or(HeadError::Malformed("request line without a target"))?;
    let (target, version) = split_at_space(rest)
        .ok_or(HeadError::Malformed("request line without an HTTP version (HTTP/0.9 is not supported)"))?;
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(HeadError::Malformed("invalid method"));
    }
    if target.is_empty() {
        return Err(HeadError::Malformed("empty request target"));
    }
    if !target.iter().all(|&b| b.is_ascii_graphic()) {
        return Err(HeadError::Malformed("invalid byte in request target"));
    }
    if target.contains(&b'#') {
        // A fragment is not part of a request-target; some URI parsers silently drop it.
        return Err(HeadError::Malformed("fragment in request target"));
    }
    // Last, so that a well-formed line with an unknown version gets its 505.
    let version = parse_version(version)?;
    let method = Method::from_bytes(method).map_err(|_| HeadError::Malformed("invalid method"))?;
    let target =
        std::str::from_utf8(target).map_err(|_| HeadError::Malformed("invalid byte in request target"))?;
    Ok(RequestLine { method, target, version })
}

/// Splits at the first SP, dropping it.
fn split_at_space(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let i = bytes.iter().position(|&b| b == b' ')?;
    Some((&bytes[..i], &bytes[i + 1..]))
}

/// `HTTP/` DIGIT `.` DIGIT, case-sensitive (RFC 9112 section 2.3). A well-formed version we do
/// not speak is 505; anything else is 400.
fn parse_version(version: &[u8]) -> Result<Version, HeadError> {
    match version {
        b"HTTP/1.1" => Ok(Version::HTTP_11),
        b"HTTP/1.0" => Ok(Version::HTTP_10),
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Err(HeadError::VersionNotSupported)
        }
        _ => Err(HeadError::Malformed("invalid HTTP version")),
    }
}

/// RFC 9110 `tchar`: the bytes allowed in a token (methods, field names, ...).
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Bytes allowed in a field value: HTAB, SP, VCHAR and obs-text. Excludes NUL, the other
/// controls and DEL, which parsers disagree on.
pub(crate) fn is_field_value_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Splits `name: value` into the name and the trimmed value, rejecting obs-fold, whitespace
/// before the colon (RFC 9112 section 5.1 requires a 400) and any byte outside the grammar.
/// Shared with the trailer section of chunked bodies.
pub(crate) fn split_field_line(line: &[u8]) -> Result<(&[u8], &[u8]), &'static str> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err("obsolete line folding");
    }
    let colon = line.iter().position(|&b| b == b':').ok_or("field line without a colon")?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() {
        return Err("empty field name");
    }
    if matches!(name.last(), Some(b' ' | b'\t')) {
        return Err("whitespace before the colon");
    }
    if !name.iter().all(|&b| is_tchar(b)) {
        return Err("invalid byte in field name");
    }
    let value = trim_ows(value);
    if !value.iter().all(|&b| is_field_value_byte(b)) {
        return Err("invalid byte in field value");
    }
    Ok((name, value))
}

/// Applies the semantic rules that need the whole head: Host, target form, framing,
/// Connection and Expect.
fn build_head(line: RequestLine<'_>, fields: &[(&[u8], &[u8])]) -> Result<RequestHead, HeadError> {
    let headers = header_map(fields)?;
    let (path_and_query, target_authority) =
        classify_target(&line.method, line.target).map_err(HeadError::Malformed)?;
    let host = request_host(&headers, line.version, target_authority)?;
    let framing = framing(&headers, line.version)?;
    let keep_alive = keep_alive(&headers, line.version)?;
    let expect_continue = expect_continue(&headers, line.version)?;
    Ok(RequestHead {
        method: line.method,
        target: line.target.to_owned(),
        path_and_query,
        version: line.version,
        headers,
        host,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// Builds the header map, keeping duplicates in order.
fn header_map(fields: &[(&[u8], &[u8])]) -> Result<HeaderMap, HeadError> {
    let mut headers = HeaderMap::with_capacity(fields.len());
    for &(name, value) in fields {
        let name =
            HeaderName::from_bytes(name).map_err(|_| HeadError::Malformed("invalid byte in field name"))?;
        let value = HeaderValue::from_bytes(value)
            .map_err(|_| HeadError::Malformed("invalid byte in field value"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// Checks the request-target form against the method (RFC 9112 section 3.2) and returns the
/// origin-form path and query plus, for absolute-form, the authority.
fn classify_target<'a>(method: &Method, target: &'a str) -> Result<(String, Option<&'a str>), &'static str> {
    if method == Method::CONNECT {
        // authority-form only exists for CONNECT, and weir is not a forward proxy.
        return Err("CONNECT is not supported");
    }
    if target.starts_with('/') {
        return Ok((checked_path_and_query(target)?, None));
    }
    if target == "*" {
        if method == Method::OPTIONS {
            return Ok((target.to_owned(), None));
        }
        return Err("asterisk-form target with a method other than OPTIONS");
    }
    let (scheme, rest) = target.split_once("://").ok_or("unsupported request-target form")?;
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return Err("unsupported scheme in absolute-form target");
    }
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    request_checks::authority(authority)?;
    let path_and_query = match path.as_bytes().first() {
        None => "/".to_owned(),
        Some(b'?') => format!("/{path}"),
        Some(_) => path.to_owned(),
    };
    Ok((checked_path_and_query(&path_and_query)?, Some(authority)))
}

/// Makes sure the `http` crate reads the path and query exactly as we do, so the request we
/// build for the backend carries the same target the client sent.
fn checked_path_and_query(path_and_query: &str) -> Result<String, &'static str> {
    match path_and_query.parse::<http::uri::PathAndQuery>() {
        Ok(parsed) if parsed.as_str() == path_and_query => Ok(path_and_query.to_owned()),
        _ => Err("invalid request target"),
    }
}

/// The authority the request is for, by the checker's Host rules. HTTP/1.1 requires a Host
/// field, absolute-form target or not (RFC 9112 section 3.2).
fn request_host(
    headers: &HeaderMap,
    version: Version,
    target_authority: Option<&str>,
) -> Result<Option<String>, HeadError> {
    let host = request_checks::host(headers, target_authority)?;
    if version == Version::HTTP_11 && !headers.contains_key(HOST) {
        return Err(HeadError::Malformed("HTTP/1.1 request without Host"));
    }
    Ok(host.map(str::to_owned))
}

/// Decides the body framing (RFC 9112 section 6.3), refusing every combination that another
/// parser could frame differently: that is how requests are smuggled.
fn framing(headers: &HeaderMap, version: Version) -> Result<Framing, HeadError> {
    let transfer_encoding = single_field(headers, &TRANSFER_ENCODING, "more than one Transfer-Encoding")?;
    match (transfer_encoding, headers.contains_key(CONTENT_LENGTH)) {
        (Some(_), true) => Err(HeadError::Malformed("both Transfer-Encoding and Content-Length")),
        (Some(_), false) if version == Version::HTTP_10 => {
            Err(HeadError::Malformed("Transfer-Encoding in an HTTP/1.0 request"))
        }
        (Some(te), false) if te.as_bytes().eq_ignore_ascii_case(b"chunked") => Ok(Framing::Chunked),
        (Some(_), false) => Err(HeadError::Malformed("Transfer-Encoding other than exactly chunked")),
        (None, _) => Ok(request_checks::content_length(headers)?.map_or(Framing::None, Framing::Length)),
    }
}

/// The only value of a field that must not repeat; `None` if absent.
fn single_field<'h>(
    headers: &'h HeaderMap,
    name: &HeaderName,
    duplicate: &'static str,
) -> Result<Option<&'h HeaderValue>, HeadError> {
    let mut values = headers.get_all(name).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(HeadError::Malformed(duplicate));
    }
    Ok(first)
}

/// Persistence (RFC 9112 section 9.3): HTTP/1.1 unless `close`; HTTP/1.0 only with
/// `keep-alive` (and no `close`). Every list element must be a token.
fn keep_alive(headers: &HeaderMap, version: Version) -> Result<bool, HeadError> {
    let (mut close, mut keep_alive) = (false, false);
    for value in headers.get_all(CONNECTION) {
        for option in value.as_bytes().split(|&b| b == b',').map(trim_ows) {
            if option.is_empty() {
                continue;
            }
            if !option.iter().all(|&b| is_tchar(b)) {
                return Err(HeadError::Malformed("invalid Connection option"));
            }
            close |= option.eq_ignore_ascii_case(b"close");
            keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
        }
    }
    Ok(!close && (version == Version::HTTP_11 || keep_alive))
}

/// `Expect: 100-continue`, by the checker's rule. An HTTP/1.0 client cannot handle a 100
/// response, so there it is ignored.
fn expect_continue(headers: &HeaderMap, version: Version) -> Result<bool, HeadError> {
    Ok(request_checks::expects_continue(headers)? && version == Version::HTTP_11)
}

/// Reads the accepted head again with `httparse` (default configuration) and requires the same
/// result: same length, request line and fields. Our parser is meant to be strictly narrower;
/// if the two ever disagree, the head is ambiguous by definition and is refused.
fn cross_check(
    buf: &[u8],
    consumed: usize,
    head: &RequestHead,
    fields: &[(&[u8], &[u8])],
) -> Result<(), HeadError> {
    let mut headers = vec![httparse::EMPTY_HEADER; fields.len()];
    let mut request = httparse::Request::new(&mut headers);
    let minor = if head.version == Version::HTTP_11 { 1 } else { 0 };
    let agrees = match request.parse(buf.get(..consumed).unwrap_or_default()) {
        Ok(httparse::Status::Complete(n)) => {
            n == consumed
                && request.method == Some(head.method.as_str())
                && request.path == Some(head.target.as_str())
                && request.version == Some(minor)
                && request.headers.len() == fields.len()
                && request
                    .headers
                    .iter()
                    .zip(fields)
                    .all(|(h, &(name, value))| h.name.as_bytes() == name && h.value == value)
        }
        _ => false,
    };
    if agrees {
        Ok(())
    } else {
        Err(HeadError::Malformed("request head read differently by httparse"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_default(input: &[u8]) -> Result<(RequestHead, usize), HeadError> {
        parse(input, &Limits::default())
    }

    /// What a valid vector must parse to.
    struct Expect {
        method: Method,
        target: &'static str,
        path_and_query: &'static str,
        version: Version,
        host: Option<&'static str>,
        framing: Framing,
        keep_alive: bool,
        expect_continue: bool,
        /// Bytes after the head that must not be consumed.
        trailing: usize,
    }

    impl Expect {
        fn get(target: &'static str, host: &'static str) -> Self {
            Expect {
                method: Method::GET,
                target,
                path_and_query: target,
                version: Version::HTTP_11,
                host: Some(host),
                framing: Framing::None,
                keep_alive: true,
                expect_continue: false,
                trailing: 0,
            }
        }
    }

    fn valid_cases() -> Vec<(&'static str, &'static [u8], Expect)> {
        vec![
            ("simple GET", b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", Expect::get("/", "example.com")),
            (
                "GET with query, port and several fields",
                b"GET /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8443\r\nAccept: */*\r\nUser-Agent: t\r\n\r\n",
                Expect::get("/a/b?c=d&e", "example.com:8443"),
            ),
            (
                "POST with Content-Length and a body after the head",
                b"POST /submit HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello",
                Expect {
                    method: Method::POST,
                    framing: Framing::Length(5),
                    trailing: 5,
                    ..Expect::get("/submit", "h")
                },
            ),
            (
                "POST chunked, TE case-insensitive and trimmed",
                b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \t ChUnKeD \t\r\n\r\n5\r\n",
                Expect {
                    method: Method::POST,
                    framing: Framing::Chunked,
                    trailing: 3,
                    ..Expect::get("/", "h")
                },
            ),
            (
                "Content-Length with leading zeros, 19 digits",
                b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 0000000000000000042\r\n\r\n",
                Expect { method: Method::PUT, framing: Framing::Length(42), ..Expect::get("/x", "h") },
            ),
            (
                "HTTP/1.0 without Host closes by default",
                b"GET /old HTTP/1.0\r\n\r\n",
                Expect {
                    version: Version::HTTP_10,
                    host: None,
                    keep_alive: false,
                    ..Expect::get("/old", "")
                },
            ),
            (
                "HTTP/1.0 with keep-alive",
                b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\nHost: h\r\n\r\n",
                Expect { version: Version::HTTP_10, ..Expect::get("/", "h") },
            ),
            (
                "HTTP/1.0 with keep-alive and close",
                b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
                Expect { version: Version::HTTP_10, host: None, keep_alive: false, ..Expect::get("/", "") },
            ),
            (
                "HTTP/1.1 Connection: close among other options",
                b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: ,  CLOSE ,\r\n\r\n",
                Expect { keep_alive: false, ..Expect::get("/", "h") },
            ),
            (
                "absolute-form with matching Host",
                b"GET HTTPS://Example.COM:443/p?q HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
                Expect {
                    path_and_query: "/p?q",
                    ..Expect::get("HTTPS://Example.COM:443/p?q", "Example.COM:443")
                },
            ),
            (
                "absolute-form with an empty path",
                b"GET http://h HTTP/1.1\r\nHost: h\r\n\r\n",
                Expect { path_and_query: "/", ..Expect::get("http://h", "h") },
            ),
            (
                "absolute-form with only a query",
                b"GET http://h?x=1 HTTP/1.1\r\nHost: h\r\n\r\n",
                Expect { path_and_query: "/?x=1", ..Expect::get("http://h?x=1", "h") },
            ),
            (
                "absolute-form on HTTP/1.0 without Host",
                b"GET http://[::1]:8080/ HTTP/1.0\r\n\r\n",
                Expect {
                    version: Version::HTTP_10,
                    keep_alive: false,
                    path_and_query: "/",
                    ..Expect::get("http://[::1]:8080/", "[::1]:8080")
                },
            ),
            (
                "OPTIONS *",
                b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
                Expect { method: Method::OPTIONS, ..Expect::get("*", "h") },
            ),
            ("one leading CRLF", b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", Expect::get("/", "h")),
            ("two leading CRLFs", b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", Expect::get("/", "h")),
            (
                "Expect: 100-continue",
                b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 1\r\n\r\n",
                Expect {
                    method: Method::POST,
                    framing: Framing::Length(1),
                    expect_continue: true,
                    ..Expect::get("/", "h")
                },
            ),
            (
                "Expect: 100-continue ignored on HTTP/1.0",
                b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
                Expect {
                    method: Method::POST,
                    version: Version::HTTP_10,
                    host: None,
                    keep_alive: false,
                    framing: Framing::Length(1),
                    ..Expect::get("/", "")
                },
            ),
            (
                "obs-text and tabs inside a value, empty value, IPv4 host",
                b"GET / HTTP/1.1\r\nHost: 192.0.2.1\r\nX-A: caf\xc3\xa9\tau\xff lait\r\nX-Empty:\r\n\r\n",
                Expect::get("/", "192.0.2.1"),
            ),
            (
                "extension method",
                b"PURGE /cache HTTP/1.1\r\nHost: h\r\n\r\n",
                Expect { method: Method::from_bytes(b"PURGE").unwrap(), ..Expect::get("/cache", "h") },
            ),
            (
                "next pipelined request is not consumed",
                b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\n",
                Expect { trailing: 17, ..Expect::get("/", "h") },
            ),
        ]
    }

    #[test]
    fn valid_heads() {
        for (name, input, want) in valid_cases() {
            let (head, consumed) = parse_default(input).unwrap_or_else(|e| panic!("{name}: {e:?}"));
            assert_eq!(consumed, input.len() - want.trailing, "{name}: consumed");
            assert_eq!(head.method, want.method, "{name}: method");
            assert_eq!(head.target, want.target, "{name}: target");
            assert_eq!(head.path_and_query, want.path_and_query, "{name}: path");
            assert_eq!(head.version, want.version, "{name}: version");
            assert_eq!(head.host.as_deref(), want.host, "{name}: host");
            assert_eq!(head.framing, want.framing, "{name}: framing");
            assert_eq!(head.keep_alive, want.keep_alive, "{name}: keep_alive");
            assert_eq!(head.expect_continue, want.expect_continue, "{name}: expect");
            assert_eq!(head_end(input), Some(consumed), "{name}: head_end");
        }
    }

    #[test]
    fn headers_are_kept_lowercased_trimmed_and_in_order() {
        let input = b"GET / HTTP/1.1\r\nHost: h\r\nX-Dup: 1\r\nx-dup:  2 \t\r\nX-Empty:\r\n\r\n";
        let (head, _) = parse_default(input).unwrap();
        let dups: Vec<_> = head.headers.get_all("x-dup").iter().collect();
        assert_eq!(dups, ["1", "2"]);
        assert_eq!(head.headers.get("x-empty").unwrap(), "");
        assert_eq!(head.headers.len(), 4);
    }

    #[test]
    fn every_proper_prefix_of_a_valid_head_is_incomplete() {
        for (name, input, want) in valid_cases() {
            let end = input.len() - want.trailing;
            for cut in 0..end {
                assert_eq!(
                    parse_default(&input[..cut]).map(|(_, n)| n),
                    Err(HeadError::Incomplete),
                    "{name}: prefix of {cut} bytes"
                );
            }
        }
    }

    fn malformed_cases() -> Vec<(&'static str, &'static [u8], &'static str)> {
        vec![
            // Framing.
            ("CL then TE", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", "both Transfer-Encoding and Content-Length"),
            ("TE then CL", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", "both Transfer-Encoding and Content-Length"),
            ("duplicate CL, same value", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", "more than one Content-Length"),
            ("duplicate CL, different values", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "more than one Content-Length"),
            ("CL +5", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +5\r\n\r\n", "invalid Content-Length"),
            ("CL -5", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n", "invalid Content-Length"),
            ("CL with inner space", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5 5\r\n\r\n", "invalid Content-Length"),
            ("CL 0x5", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x5\r\n\r\n", "invalid Content-Length"),
            ("CL 5,5", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5,5\r\n\r\n", "invalid Content-Length"),
            ("CL 5, 5", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\n\r\n", "invalid Content-Length"),
            ("CL empty", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length:\r\n\r\n", "invalid Content-Length"),
            ("CL 20 digits", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 18446744073709551616\r\n\r\n", "Content-Length too long"),
            ("CL 20 digits, leading zeros", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 00000000000000000005\r\n\r\n", "Content-Length too long"),
            ("TE chunked, identity", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n", "Transfer-Encoding other than exactly chunked"),
            ("TE gzip, chunked", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", "Transfer-Encoding other than exactly chunked"),
            ("TE xchunked", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n", "Transfer-Encoding other than exactly chunked"),
            ("TE chunked;q=1", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked;q=1\r\n\r\n", "Transfer-Encoding other than exactly chunked"),
            ("TE with inner tab", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chun\tked\r\n\r\n", "Transfer-Encoding other than exactly chunked"),
            ("TE with inner space", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked chunked\r\n\r\n", "Transfer-Encoding other than exactly chunked"),
            ("TE quoted", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: \"chunked\"\r\n\r\n", "Transfer-Encoding other than exactly chunked"),
            ("TE identity", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n", "Transfer-Encoding other than exactly chunked"),
            ("TE empty", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n\r\n", "Transfer-Encoding other than exactly chunked"),
            ("two TE fields", b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", "more than one Transfer-Encoding"),
            ("TE on HTTP/1.0", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", "Transfer-Encoding in an HTTP/1.0 request"),
            // Field syntax.
            ("space before colon", b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length : 5\r\n\r\n", "whitespace before the colon"),
            ("tab before colon", b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length\t: 5\r\n\r\n", "whitespace before the colon"),
            ("obs-fold", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n 2\r\n\r\n", "obsolete line folding"),
            ("obs-fold with tab", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: 1\r\n\t2\r\n\r\n", "obsolete line folding"),
            ("whitespace before the first field", b"GET / HTTP/1.1\r\n Host: h\r\n\r\n", "obsolete line folding"),
            ("bare CR in value", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", "bare CR"),
            ("bare CR at the end of a line", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\r\n\r\n", "bare CR"),
            ("bare LF field line ending", b"GET / HTTP/1.1\r\nHost: h\nX-A: a\r\n\r\n", "bare LF line ending"),
            ("bare LF request line ending", b"GET / HTTP/1.1\nHost: h\r\n\r\n", "bare LF line ending"),
            ("bare LF blank line", b"GET / HTTP/1.1\r\nHost: h\r\n\n", "bare LF line ending"),
            ("bare LF leading line", b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "bare LF line ending"),
            ("NUL in value", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\0b\r\n\r\n", "invalid byte in field value"),
            ("0x01 in value", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x01b\r\n\r\n", "invalid byte in field value"),
            ("DEL in value", b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x7fb\r\n\r\n", "invalid byte in field value"),
            ("control byte in name", b"GET / HTTP/1.1\r\nHost: h\r\nX-\x01A: a\r\n\r\n", "invalid byte in field name"),
            ("NUL in name", b"GET / HTTP/1.1\r\nHost: h\r\nX\0: a\r\n\r\n", "invalid byte in field name"),
            ("separator in name", b"GET / HTTP/1.1\r\nHost: h\r\nX(A): a\r\n\r\n", "invalid byte in field name"),
            ("empty name", b"GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n", "empty field name"),
            ("no colon", b"GET / HTTP/1.1\r\nHost: h\r\nX-A a\r\n\r\n", "field line without a colon"),
            // Request line.
            ("double space after method", b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "empty request target"),
            ("double space before version", b"GET /  HTTP/1.1\r\nHost: h\r\n\r\n", "invalid HTTP version"),
            ("trailing space", b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n", "invalid HTTP version"),
            ("leading space", b" GET / HTTP/1.1\r\nHost: h\r\n\r\n", "invalid method"),
            ("tab separator", b"GET\t/ HTTP/1.1\r\nHost: h\r\n\r\n", "tab in request line"),
            ("tab before version", b"GET /\tHTTP/1.1\r\nHost: h\r\n\r\n", "tab in request line"),
            ("four parts", b"GET / x HTTP/1.1\r\nHost: h\r\n\r\n", "invalid HTTP version"),
            ("HTTP/0.9", b"GET /\r\n\r\n", "request line without an HTTP version (HTTP/0.9 is not supported)"),
            ("method only", b"GET\r\n\r\n", "request line without a target"),
            ("lowercase version", b"GET / http/1.1\r\nHost: h\r\n\r\n", "invalid HTTP version"),
            ("version without minor", b"GET / HTTP/1\r\nHost: h\r\n\r\n", "invalid HTTP version"),
            ("two-digit major", b"GET / HTTP/11.1\r\nHost: h\r\n\r\n", "invalid HTTP version"),
            ("separator in method", b"G(T / HTTP/1.1\r\nHost: h\r\n\r\n", "invalid method"),
            ("control byte in target", b"GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid byte in request target"),
            ("DEL in target", b"GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", "invalid byte in request target"),
            ("non-ASCII in target", b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n", "invalid byte in request target"),
            ("fragment in target", b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", "fragment in request target"),
            ("three leading CRLFs", b"\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", "too many empty lines before the request line"),
            // Host and target form.
            ("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\nX-A: a\r\n\r\n", "HTTP/1.1 request without Host"),
            ("absolute-form on HTTP/1.1 without Host", b"GET http://h/ HTTP/1.1\r\n\r\n", "HTTP/1.1 request without Host"),
            ("two Hosts", b"GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n", "more than one Host"),
            ("two Hosts on HTTP/1.0", b"GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", "more than one Host"),
            ("Host with inner space", b"GET / HTTP/1.1\r\nHost: exa mple.com\r\n\r\n", "invalid Host"),
            ("empty Host", b"GET / HTTP/1.1\r\nHost:\r\n\r\n", "invalid Host"),
            ("Host list", b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", "invalid Host"),
            ("Host with userinfo", b"GET / HTTP/1.1\r\nHost: user@h\r\n\r\n", "invalid Host"),
            ("Host with path", b"GET / HTTP/1.1\r\nHost: h/x\r\n\r\n", "invalid Host"),
            ("Host with percent-encoding", b"GET / HTTP/1.1\r\nHost: %68\r\n\r\n", "invalid Host"),
            ("Host with obs-text", b"GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", "invalid Host"),
            ("Host with empty port", b"GET / HTTP/1.1\r\nHost: h:\r\n\r\n", "invalid Host"),
            ("Host with bad port", b"GET / HTTP/1.1\r\nHost: h:8x\r\n\r\n", "invalid Host"),
            ("Host with port too big", b"GET / HTTP/1.1\r\nHost: h:65536\r\n\r\n", "invalid Host"),
            ("Host with two colons", b"GET / HTTP/1.1\r\nHost: h:1:2\r\n\r\n", "invalid Host"),
            ("Host with a bad IPv6 literal", b"GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", "invalid Host"),
            ("Host with an unterminated IPv6 literal", b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", "invalid Host"),
            ("Host with junk after IPv6", b"GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", "invalid Host"),
            ("absolute-form with a different Host", b"GET http://a.example/ HTTP/1.1\r\nHost: b.example\r\n\r\n", "Host differs from the target's authority"),
            ("absolute-form with a different port", b"GET http://a:80/ HTTP/1.1\r\nHost: a\r\n\r\n", "Host differs from the target's authority"),
            ("absolute-form with userinfo", b"GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", "invalid host"),
            ("absolute-form with empty authority", b"GET http:///x HTTP/1.1\r\nHost: h\r\n\r\n", "empty host"),
            ("absolute-form with another scheme", b"GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", "unsupported scheme in absolute-form target"),
            ("absolute-form without //", b"GET http:/x HTTP/1.1\r\nHost: h\r\n\r\n", "unsupported request-target form"),
            ("asterisk with GET", b"GET * HTTP/1.1\r\nHost: h\r\n\r\n", "asterisk-form target with a method other than OPTIONS"),
            ("authority-form with GET", b"GET h:443 HTTP/1.1\r\nHost: h\r\n\r\n", "unsupported request-target form"),
            ("relative target", b"GET a/b HTTP/1.1\r\nHost: h\r\n\r\n", "unsupported request-target form"),
            ("CONNECT", b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", "CONNECT is not supported"),
            ("CONNECT with origin-form", b"CONNECT / HTTP/1.1\r\nHost: h\r\n\r\n", "CONNECT is not supported"),
            ("invalid Connection option", b"GET / HTTP/1.1\r\nHost: h\r\nConnection: clo se\r\n\r\n", "invalid Connection option"),
        ]
    }

    #[test]
    fn malformed_heads_are_rejected_for_the_right_reason() {
        for (name, input, reason) in malformed_cases() {
            let error = parse_default(input).err();
            assert_eq!(error, Some(HeadError::Malformed(reason)), "{name}");
            assert_eq!(error.map(|e| e.status()), Some(StatusCode::BAD_REQUEST), "{name}");
        }
    }

    #[test]
    fn connect_has_its_own_reason() {
        let input = b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n";
        assert_eq!(parse_default(input).err(), Some(HeadError::Malformed("CONNECT is not supported")));
    }

    #[test]
    fn other_errors_and_their_statuses() {
        let cases: &[(&str, &[u8], HeadError, u16)] = &[
            ("HTTP/2.0", b"GET / HTTP/2.0\r\nHost: h\r\n\r\n", HeadError::VersionNotSupported, 505),
            ("HTTP/1.2", b"GET / HTTP/1.2\r\nHost: h\r\n\r\n", HeadError::VersionNotSupported, 505),
            ("HTTP/0.9 spelled out", b"GET / HTTP/0.9\r\n\r\n", HeadError::VersionNotSupported, 505),
            ("h2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", HeadError::VersionNotSupported, 505),
            (
                "Expect: foo",
                b"POST / HTTP/1.1\r\nHost: h\r\nExpect: foo\r\n\r\n",
                HeadError::ExpectationFailed,
                417,
            ),
            (
                "Expect list",
                b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue, foo\r\n\r\n",
                HeadError::ExpectationFailed,
                417,
            ),
            (
                "Expect second field",
                b"POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nExpect: x\r\n\r\n",
                HeadError::ExpectationFailed,
                417,
            ),
            (
                "Expect on HTTP/1.0",
                b"POST / HTTP/1.0\r\nExpect: foo\r\n\r\n",
                HeadError::ExpectationFailed,
                417,
            ),
        ];
        for &(name, input, want, status) in cases {
            let got = parse_default(input).err();
            assert_eq!(got, Some(want), "{name}");
            assert_eq!(want.status().as_u16(), status, "{name}");
        }
        assert_eq!(HeadError::LineTooLong.status().as_u16(), 414);
        assert_eq!(HeadError::FieldTooLarge.status().as_u16(), 431);
        assert_eq!(HeadError::TooManyFields.status().as_u16(), 431);
        assert_eq!(HeadError::Incomplete.status().as_u16(), 400);
    }

    const SMALL: Limits = Limits { request_line: 20, field_size: 10, fields: 2 };

    #[test]
    fn limits_on_complete_heads() {
        // "GET /aaaaaaaa HTTP/1.1" is 22 bytes, one per 'a' below.
        let line = |n: usize| format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(n));
        assert!(parse(line(6).as_bytes(), &SMALL).is_ok(), "exactly 20");
        assert_eq!(parse(line(7).as_bytes(), &SMALL).err(), Some(HeadError::LineTooLong));
        let field = |n: usize| format!("GET / HTTP/1.1\r\nHost: h\r\nX: {}\r\n\r\n", "v".repeat(n));
        assert!(parse(field(7).as_bytes(), &SMALL).is_ok(), "exactly 10");
        assert_eq!(parse(field(8).as_bytes(), &SMALL).err(), Some(HeadError::FieldTooLarge));
        let fields = |n: usize| {
            let mut s = String::from("GET / HTTP/1.1\r\nHost: h\r\n");
            for i in 1..n {
                s.push_str(&format!("X{i}: v\r\n"));
            }
            s + "\r\n"
        };
        assert!(parse(fields(2).as_bytes(), &SMALL).is_ok(), "exactly 2");
        assert_eq!(parse(fields(3).as_bytes(), &SMALL).err(), Some(HeadError::TooManyFields));
        let defaults = Limits::default();
        assert_eq!((defaults.request_line, defaults.field_size, defaults.fields), (8190, 8190, 100));
        let long = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(8190));
        assert_eq!(parse_default(long.as_bytes()).err(), Some(HeadError::LineTooLong));
    }

    #[test]
    fn limits_fail_early_on_incomplete_heads() {
        let cases: &[(&str, &[u8], HeadError)] = &[
            ("request line at the limit", b"GET /aaaaaa HTTP/1.1", HeadError::Incomplete),
            ("request line at the limit plus CR", b"GET /aaaaaa HTTP/1.1\r", HeadError::Incomplete),
            ("request line over the limit", b"GET /aaaaaa HTTP/1.1x", HeadError::LineTooLong),
            ("request line over, ends in CR", b"GET /aaaaaaa HTTP/1.1\r", HeadError::LineTooLong),
            ("no CRLF at all", &[b'A'; 64], HeadError::LineTooLong),
            ("field at the limit", b"GET / HTTP/1.1\r\nHost: h\r\nX: vvvvvvv", HeadError::Incomplete),
            ("field over the limit", b"GET / HTTP/1.1\r\nHost: h\r\nX: vvvvvvvv", HeadError::FieldTooLarge),
            ("blank line may still come", b"GET / HTTP/1.1\r\nHost: h\r\nX: v\r\n\r", HeadError::Incomplete),
            ("one field too many", b"GET / HTTP/1.1\r\nHost: h\r\nX: v\r\nY", HeadError::TooManyFields),
            (
                "bad request line fails at once",
                b"GET  / HTTP/1.1\r\n",
                HeadError::Malformed("empty request target"),
            ),
            ("HTTP/2.0 fails at once", b"GET / HTTP/2.0\r\n", HeadError::VersionNotSupported),
            (
                "bad field fails at once",
                b"GET / HTTP/1.1\r\nX : v\r\n",
                HeadError::Malformed("whitespace before the colon"),
            ),
            ("bare LF fails at once", b"GET / HTTP/1.1\n", HeadError::Malformed("bare LF line ending")),
            ("bare CR fails at once", b"GET / HTTP/1.1\r\nX: a\rb", HeadError::Malformed("bare CR")),
        ];
        for &(name, input, want) in cases {
            assert_eq!(parse(input, &SMALL).err(), Some(want), "{name}");
        }
    }

    /// Feeds an endless stream of plausible field lines and checks that `Incomplete` stops before
    /// `max_head_len`, whatever the limits.
    #[test]
    fn incomplete_never_lets_the_buffer_grow_without_bound() {
        let limits = [SMALL, Limits::default()];
        let streams: [&[u8]; 3] = [b"X: v\r\n", b"Xxxxxxxxxx: vvvvvvvvvvvvvv", b"a"];
        for limits in limits {
            for stream in streams {
                let mut buf = b"GET / HTTP/1.1\r\n".to_vec();
                let result = loop {
                    match parse(&buf, &limits) {
                        Err(HeadError::Incomplete) => {
                            assert!(buf.len() < limits.max_head_len(), "{limits:?}");
                            buf.extend_from_slice(stream);
                        }
                        other => break other.map(|(_, n)| n),
                    }
                };
                assert!(
                    matches!(result, Err(HeadError::TooManyFields | HeadError::FieldTooLarge)),
                    "{limits:?} {result:?}"
                );
            }
        }
        let mut buf = Vec::new();
        while matches!(parse(&buf, &SMALL), Err(HeadError::Incomplete)) {
            buf.push(b'G');
        }
        assert_eq!(parse(&buf, &SMALL).err(), Some(HeadError::LineTooLong));
        assert_eq!(buf.len(), SMALL.request_line + 1);
    }

    /// Valid heads never reach the disagreement branch, so check it directly: a head paired
    /// with bytes that say something else must be refused.
    #[test]
    fn cross_check_refuses_a_different_reading() {
        let input = b"GET /a HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n";
        let (head, consumed) = parse_default(input).unwrap();
        let fields: [(&[u8], &[u8]); 2] = [(b"Host", b"h"), (b"X", b"1")];
        assert_eq!(cross_check(input, consumed, &head, &fields), Ok(()));
        let others: [&[u8]; 4] = [
            b"GET /b HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n",
            b"PUT /a HTTP/1.1\r\nHost: h\r\nX: 1\r\n\r\n",
            b"GET /a HTTP/1.0\r\nHost: h\r\nX: 1\r\n\r\n",
            b"GET /a HTTP/1.1\r\nHost: h\r\nX: 2\r\n\r\n",
        ];
        for other in others {
            assert!(cross_check(other, consumed, &head, &fields).is_err());
        }
        let fewer: [(&[u8], &[u8]); 1] = [(b"Host", b"h")];
        assert!(cross_check(input, consumed, &head, &fewer).is_err());
        assert!(cross_check(input, consumed - 1, &head, &fields).is_err());
    }

    #[test]
    fn head_end_finds_the_blank_line() {
        assert_eq!(head_end(b"GET / HTTP/1.1\r\nHost: h\r\n"), None);
        assert_eq!(head_end(b"\r\n\r\nGET / HTTP/1.0\r\n\r\nbody"), Some(22));
        assert_eq!(head_end(b""), None);
    }
}
