//! Reading the one request the edge sends on a worker connection.
//!
//! The edge has already checked and re-framed the request (origin-form target, exactly one
//! Content-Length, no Transfer-Encoding), so this reader is strict and small: httparse for the
//! head, then exactly Content-Length bytes of body.

use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use weir_conf::wire;

/// Most bytes of request head accepted from the edge (its own limits are far lower).
const MAX_HEAD: usize = 128 * 1024;
/// Most header fields accepted from the edge.
const MAX_FIELDS: usize = 256;

/// A request as a worker sees it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The target as sent: path and query, still percent-encoded.
    pub target: String,
    /// `HTTP/1.1` or `HTTP/1.0`: the client's version, which the edge passes on.
    pub protocol: String,
    /// Header fields in order, names as sent.
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The client's address as the edge saw it (`Forwarded: for=`).
    pub client: Option<SocketAddr>,
    /// The TLS connection the request came on, when it came over TLS.
    pub tls: Option<TlsFacts>,
}

/// What the edge knew of the client's TLS connection, in mod_ssl's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFacts {
    /// `TLSv1.2` or `TLSv1.3` (SSL_PROTOCOL).
    pub protocol: String,
    /// OpenSSL's name of the cipher suite (SSL_CIPHER).
    pub cipher: String,
    /// `SUCCESS`, `NONE` or `FAILED:reason` (SSL_CLIENT_VERIFY).
    pub client_verify: String,
    /// The verified client certificate's subject (SSL_CLIENT_S_DN), when one was sent.
    pub client_subject: Option<String>,
}

/// Why a request from the edge could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("edge connection failed: {0}")]
    Io(#[from] std::io::Error),
    #[error("edge closed the connection before a whole request arrived")]
    Truncated,
    #[error("malformed request from the edge: {0}")]
    Malformed(String),
}

/// Bytes asked of the socket per read of a request head.
const READ_CHUNK: usize = 8192;

impl Request {
    /// Reads one request: the head, then its Content-Length body. A head with
    /// `Expect: 100-continue` gets `HTTP/1.1 100 Continue` on `continue_to` before the body is
    /// read: the edge sends a large body only after it.
    pub fn read_from(
        stream: &mut impl Read,
        continue_to: &mut impl std::io::Write,
    ) -> Result<Request, ReadError> {
        // Read straight into the heap buffer: a stack array would leave its pages touched for
        // the worker's whole life.
        let mut buffer: Vec<u8> = Vec::new();
        loop {
            let start = buffer.len();
            buffer.resize(start + READ_CHUNK, 0);
            let read = stream.read(&mut buffer[start..]);
            buffer.truncate(start + *read.as_ref().unwrap_or(&0));
            let n = match read {
                Ok(n) => n,
                // The master's SIGUSR1 (retire after this request) interrupts reads; go on.
                Err(error) if error.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error.into()),
            };
            if n == 0 {
                return Err(ReadError::Truncated);
            }
            let mut fields = [httparse::EMPTY_HEADER; MAX_FIELDS];
            let mut parsed = httparse::Request::new(&mut fields);
            match parsed.parse(&buffer) {
                Ok(httparse::Status::Complete(head_len)) => {
                    let mut request = Self::from_parsed(&parsed)?;
                    let length = request.content_length()?;
                    if request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue")) {
                        continue_to.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
                    }
                    let mut body = buffer.split_off(head_len);
                    if body.len() > length {
                        return Err(ReadError::Malformed("more body than Content-Length".into()));
                    }
                    body.reserve_exact(length - body.len());
                    let missing = (length - body.len()) as u64;
                    stream.take(missing).read_to_end(&mut body)?;
                    if body.len() != length {
                        return Err(ReadError::Truncated);
                    }
                    request.body = body;
                    return Ok(request);
                }
                Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => continue,
                Ok(httparse::Status::Partial) => {
                    return Err(ReadError::Malformed("request head too large".into()))
                }
                Err(error) => return Err(ReadError::Malformed(error.to_string())),
            }
        }
    }

    fn from_parsed(parsed: &httparse::Request<'_, '_>) -> Result<Request, ReadError> {
        let missing = || ReadError::Malformed("incomplete request line".into());
        let headers: Vec<(String, Vec<u8>)> =
            parsed.headers.iter().map(|h| (h.name.to_string(), h.value.to_vec())).collect();
        let mut request = Request {
            method: parsed.method.ok_or_else(missing)?.to_string(),
            target: parsed.path.ok_or_else(missing)?.to_string(),
            protocol: format!("HTTP/1.{}", parsed.version.ok_or_else(missing)?),
            headers,
            body: Vec::new(),
            client: None,
            tls: None,
        };
        request.client = request.header("forwarded").and_then(forwarded_for);
        request.tls = request.header(wire::SSL_PROTOCOL).map(|protocol| TlsFacts {
            protocol: protocol.to_string(),
            cipher: request.header(wire::SSL_CIPHER).unwrap_or("").to_string(),
            client_verify: request.header(wire::SSL_CLIENT_VERIFY).unwrap_or("NONE").to_string(),
            client_subject: request.header(wire::SSL_CLIENT_S_DN).map(str::to_string),
        });
        Ok(request)
    }

    /// The first value of a header, by case-insensitive name, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn content_length(&self) -> Result<usize, ReadError> {
        match self.header("content-length") {
            None => Ok(0),
            Some(value) => value
                .trim()
                .parse()
                .map_err(|_| ReadError::Malformed(format!("bad Content-Length {value:?}"))),
        }
    }

    /// `X-Request-Id`: the client's own when it was well-formed, else one the edge made.
    pub fn request_id(&self) -> Option<&str> {
        self.header("x-request-id")
    }

    /// The path part of the target, still percent-encoded.
    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }

    /// The query string, without the `?`.
    pub fn query(&self) -> &str {
        self.target.split_once('?').map(|(_, q)| q).unwrap_or("")
    }
}

/// `for="1.2.3.4:5678"` or `for="[::1]:5678"` from the edge's one-element Forwarded header.
fn forwarded_for(value: &str) -> Option<SocketAddr> {
    value.split(';').find_map(|pair| {
        let (key, raw) = pair.trim().split_once('=')?;
        if !key.eq_ignore_ascii_case("for") {
            return None;
        }
        let raw = raw.trim_matches('"');
        raw.parse::<SocketAddr>().ok().or_else(|| raw.parse::<IpAddr>().ok().map(|ip| SocketAddr::new(ip, 0)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_head_and_body() {
        let raw = b"POST /cgi-bin/x?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nForwarded: for=\"[::1]:4000\";proto=https\r\n\r\nhello";
        let request = Request::read_from(&mut &raw[..], &mut std::io::sink()).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path(), "/cgi-bin/x");
        assert_eq!(request.query(), "a=1");
        assert_eq!(request.body, b"hello");
        assert_eq!(request.client, Some("[::1]:4000".parse().unwrap()));
    }

    #[test]
    fn short_body_is_truncated() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nhello";
        assert!(matches!(Request::read_from(&mut &raw[..], &mut std::io::sink()), Err(ReadError::Truncated)));
    }
}
