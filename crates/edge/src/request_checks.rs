//! The one request checker: what a request must be before it is routed, whichever protocol
//! carried it, so HTTP/1.1 and h2 cannot drift apart. A request that one protocol refuses and
//! the other lets through is a way around every limit.
//!
//! The HTTP/1.1 reader ([`crate::h1::head`]) applies these rules line by line as a head arrives
//! (it must: the limits bound what it buffers). The h2 service applies them through [`h2`] to the
//! request hyper decoded, measured as the HTTP/1.1 request it stands for: `:authority` is its
//! Host line, each field a `name: value` line, and `METHOD :path HTTP/1.1` its request line.
//! Cookie crumbs are joined first (RFC 9113 8.2.3), so they count as the one `Cookie` line an
//! HTTP/1.1 client sends, and reach workers as that line.
//!
//! Runs in the edge process.

use std::net::Ipv6Addr;

use http::header::{CONTENT_LENGTH, COOKIE, EXPECT, HOST};
use http::request::Parts;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

/// Apache's request-head limits, under their directives' names and defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `LimitRequestLine`: longest request line, excluding its CRLF.
    pub request_line: usize,
    /// `LimitRequestFieldSize`: longest field line (name, colon and value), excluding its CRLF.
    pub field_size: usize,
    /// `LimitRequestFields`: most field lines in the head.
    pub fields: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { request_line: 8190, field_size: 8190, fields: 100 }
    }
}

/// Why a request is refused before routing; each maps to one status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The request line (over h2: `METHOD :path HTTP/1.1`) is longer than LimitRequestLine.
    #[error("request line too long")]
    LineTooLong,
    /// A field line is longer than LimitRequestFieldSize.
    #[error("request header field too large")]
    FieldTooLarge,
    /// More field lines than LimitRequestFields.
    #[error("too many request header fields")]
    TooManyFields,
    /// The request is malformed or could be read two ways; the text is for logs only.
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    /// An `Expect` value other than `100-continue`.
    #[error("unsupported expectation")]
    ExpectationFailed,
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::LineTooLong => StatusCode::URI_TOO_LONG,
            Refusal::FieldTooLarge | Refusal::TooManyFields => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Refusal::Malformed(_) => StatusCode::BAD_REQUEST,
            Refusal::ExpectationFailed => StatusCode::EXPECTATION_FAILED,
        }
    }
}

impl Limits {
    /// LimitRequestLine, for a request line of `len` bytes.
    pub fn request_line(&self, len: usize) -> Result<(), Refusal> {
        if len > self.request_line {
            return Err(Refusal::LineTooLong);
        }
        Ok(())
    }

    /// LimitRequestFieldSize, for a field line of `len` bytes.
    pub fn field_line(&self, len: usize) -> Result<(), Refusal> {
        if len > self.field_size {
            return Err(Refusal::FieldTooLarge);
        }
        Ok(())
    }

    /// LimitRequestFields, for a head of `count` field lines.
    pub fn field_count(&self, count: usize) -> Result<(), Refusal> {
        if count > self.fields {
            return Err(Refusal::TooManyFields);
        }
        Ok(())
    }

    /// The SETTINGS_MAX_HEADER_LIST_SIZE to announce over h2: room for every field these limits
    /// admit (h2 counts 32 bytes per field on top of name and value) and the request line, so
    /// the checker, not the h2 layer, is what refuses, with weir's error page and log line. At
    /// most 1 MiB, whatever the limits, so a peer cannot make the decoder hold more.
    pub fn h2_header_list_size(&self) -> u32 {
        let fields = self.fields.saturating_mul(self.field_size.saturating_add(32));
        let pseudo = self.request_line.saturating_add(4 * 32);
        fields.saturating_add(pseudo).min(1 << 20) as u32
    }
}

/// The length of the request line `METHOD SP target SP HTTP/1.1`.
pub fn request_line_len(method: &Method, target: &str) -> usize {
    method.as_str().len() + 1 + target.len() + " HTTP/1.1".len()
}

/// The length of the field line `name: value`.
pub fn field_line_len(name: &str, value: &[u8]) -> usize {
    name.len() + 2 + value.len()
}

/// LimitRequestBody (0: no limit) for a body of `len` bytes, declared or counted so far.
pub fn body_fits(len: u64, limit: u64) -> bool {
    limit == 0 || len <= limit
}

/// Accepts `host [ ":" port ]` where host is a reg-name of unreserved characters, an IPv4
/// address or an `[IPv6]` literal: the syntax of Host and of `:authority` alike. Stricter than
/// RFC 3986 on purpose: userinfo, percent-encoding and sub-delims in a host name are read
/// differently by different components.
pub fn authority(authority: &str) -> Result<(), &'static str> {
    let port = if let Some(rest) = authority.strip_prefix('[') {
        let (address, after) = rest.split_once(']').ok_or("unterminated IPv6 literal")?;
        address.parse::<Ipv6Addr>().map_err(|_| "invalid IPv6 literal")?;
        match after.strip_prefix(':') {
            Some(port) => Some(port),
            None if after.is_empty() => None,
            None => return Err("invalid authority"),
        }
    } else {
        let (host, port) = match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        };
        if host.is_empty() {
            return Err("empty host");
        }
        if !host.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
            return Err("invalid host");
        }
        port
    };
    match port {
        Some(port) if !is_valid_port(port) => Err("invalid port"),
        _ => Ok(()),
    }
}

/// 1 to 5 digits, at most 65535. An empty port is legal in RFC 3986 but never needed.
fn is_valid_port(port: &str) -> bool {
    (1..=5).contains(&port.len()) && port.bytes().all(|b| b.is_ascii_digit()) && port.parse::<u16>().is_ok()
}

/// The authority a request is for: its target's (HTTP/1.1 absolute-form, h2 `:authority`),
/// else its one Host field. At most one Host; each present must be a valid authority; and the
/// two, when both are present, must agree (RFC 9112 3.2.2, RFC 9113 8.3.1), or a cache and a
/// backend could disagree on which site was asked for. `None` when there is neither; whether
/// that is allowed is the protocol's rule.
pub fn host<'a>(fields: &'a HeaderMap, target: Option<&'a str>) -> Result<Option<&'a str>, Refusal> {
    let mut values = fields.get_all(HOST).iter();
    let field = values.next();
    if values.next().is_some() {
        return Err(Refusal::Malformed("more than one Host"));
    }
    let field = match field {
        Some(value) => {
            let value = value.to_str().map_err(|_| Refusal::Malformed("invalid Host"))?;
            authority(value).map_err(|_| Refusal::Malformed("invalid Host"))?;
            Some(value)
        }
        None => None,
    };
    if let Some(target) = target {
        authority(target).map_err(Refusal::Malformed)?;
    }
    match (target, field) {
        (Some(target), Some(field)) if !target.eq_ignore_ascii_case(field) => {
            Err(Refusal::Malformed("Host differs from the target's authority"))
        }
        (Some(target), _) => Ok(Some(target)),
        (None, field) => Ok(field),
    }
}

/// The one Content-Length, if any: `1*DIGIT`, at most 19 digits so it always fits a u64; no
/// sign, no inner whitespace and no comma list (which RFC 9110 would let a recipient collapse,
/// and others would not), and never two fields.
pub fn content_length(fields: &HeaderMap) -> Result<Option<u64>, Refusal> {
    let mut values = fields.get_all(CONTENT_LENGTH).iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(Refusal::Malformed("more than one Content-Length"));
    }
    let value = value.as_bytes();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(Refusal::Malformed("invalid Content-Length"));
    }
    if value.len() > 19 {
        return Err(Refusal::Malformed("Content-Length too long"));
    }
    value
        .iter()
        .try_fold(0u64, |n, &d| n.checked_mul(10)?.checked_add(u64::from(d - b'0')))
        .map(Some)
        .ok_or(Refusal::Malformed("Content-Length overflows"))
}

/// Whether the client asked for `100-continue`. It is the only expectation defined; anything
/// else is 417 (RFC 9110 10.1.1).
pub fn expects_continue(fields: &HeaderMap) -> Result<bool, Refusal> {
    let mut any = false;
    for value in fields.get_all(EXPECT) {
        if !value.as_bytes().eq_ignore_ascii_case(b"100-continue") {
            return Err(Refusal::ExpectationFailed);
        }
        any = true;
    }
    Ok(any)
}

/// Checks an h2 request as hyper decoded it, in the order the HTTP/1.1 reader meets the same
/// things: the request line, then each field line against the limits, then what needs the whole
/// head. Joins cookie crumbs into one field on the way.
///
/// What the h2 layer refuses itself never gets here: connection-specific fields
/// (Transfer-Encoding, Connection...), a Content-Length that is not digits or does not match the
/// DATA frames, uppercase or invalid field names, and values with CR, LF or NUL are malformed h2
/// (RFC 9113 8.1.1) and reset with PROTOCOL_ERROR. A `#fragment` in `:path` is cut off by the
/// `http` crate before any of weir sees it: such a request is read one way, without it.
pub fn h2(parts: &mut Parts, limits: &Limits) -> Result<(), Refusal> {
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    limits.request_line(request_line_len(&parts.method, target))?;
    if !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(Refusal::Malformed("invalid byte in request target"));
    }
    join_cookies(&mut parts.headers);
    let authority = parts.uri.authority().map(|a| a.as_str());
    // `:authority` is the Host line of the HTTP/1.1 request, unless a `host` field is sent too.
    let host_line = authority.filter(|_| !parts.headers.contains_key(HOST));
    limits.field_count(parts.headers.len() + usize::from(host_line.is_some()))?;
    if let Some(authority) = host_line {
        limits.field_line(field_line_len("host", authority.as_bytes()))?;
    }
    for (name, value) in &parts.headers {
        limits.field_line(field_line_len(name.as_str(), value.as_bytes()))?;
        // RFC 9113 8.2.1; over HTTP/1.1 such whitespace is not part of the value at all.
        if value.as_bytes().first().is_some_and(|b| matches!(b, b' ' | b'\t'))
            || value.as_bytes().last().is_some_and(|b| matches!(b, b' ' | b'\t'))
        {
            return Err(Refusal::Malformed("whitespace around a field value"));
        }
    }
    if parts.method == Method::CONNECT {
        return Err(Refusal::Malformed("CONNECT is not supported"));
    }
    if !matches!(parts.uri.scheme_str(), None | Some("http" | "https")) {
        return Err(Refusal::Malformed("unsupported :scheme"));
    }
    if target == "*" && parts.method != Method::OPTIONS {
        return Err(Refusal::Malformed("asterisk-form target with a method other than OPTIONS"));
    }
    if host(&parts.headers, authority)?.is_none() {
        return Err(Refusal::Malformed("request without :authority or Host"));
    }
    content_length(&parts.headers)?;
    expects_continue(&parts.headers)?;
    Ok(())
}

/// RFC 9113 8.2.3: the `cookie` fields of an h2 request are one field, its crumbs joined with
/// "; ", before the request goes anywhere HTTP/1.1 is spoken (a worker would join them with ",
/// " as for any repeated field, which no cookie parser reads).
fn join_cookies(fields: &mut HeaderMap) {
    let crumbs = fields.get_all(COOKIE);
    if crumbs.iter().nth(1).is_none() {
        return;
    }
    let joined = crumbs.iter().map(HeaderValue::as_bytes).collect::<Vec<_>>().join(&b"; "[..]);
    if let Ok(value) = HeaderValue::from_bytes(&joined) {
        fields.insert(COOKIE, value);
    }
}

#[cfg(test)]
mod tests;
