//! Reading the one request the edge sends on a worker connection.
//!
//! The edge has already checked and re-framed the request (origin-form target, exactly one
//! Content-Length, no Transfer-Encoding), so this reader is strict and small: the contract's
//! parser for the head, within the limits the edge admits heads by ([`wire::limits`]), then the
//! body as the contract says (see [`crate::body`]).

use std::io::Read;
use std::net::{IpAddr, SocketAddr};

use weir_wire as wire;

use crate::body::RequestBody;

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
    /// The whole body, for a Handler (read after routing, bounded by the head's Content-Length,
    /// which the edge limits by LimitRequestBody). Always empty for CGI, whose body is streamed
    /// into the script's stdin and never held whole.
    pub body: Vec<u8>,
    /// The client's address as the edge saw it (`Forwarded: for=`).
    pub client: Option<SocketAddr>,
    /// The TLS connection the request came on, when it came over TLS.
    pub tls: Option<TlsFacts>,
    /// The site that routed it ([`wire::VHOST`]): 0 the main server, n the n-th
    /// `<VirtualHost>`; `None` for a number that is not a decimal (never from the edge).
    pub vhost: Option<usize>,
    /// The user the edge authenticated (Basic), never a client's claim: REMOTE_USER.
    pub remote_user: Option<String>,
    /// How: `Basic` (AUTH_TYPE), with `remote_user`.
    pub auth_type: Option<String>,
    /// `CGIPassAuth On` applies: scripts see `Authorization` as HTTP_AUTHORIZATION.
    pub cgi_pass_auth: bool,
    /// Set when this request fetches an `ErrorDocument` for another one (the edge's
    /// [`wire::REDIRECT_STATUS`] and its fellows): the REDIRECT_* variables.
    pub redirect: Option<Redirect>,
}

/// The request an `ErrorDocument` answers, as Apache's internal redirect tells a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// REDIRECT_STATUS: the error's status.
    pub status: String,
    /// REDIRECT_URL: the URL path that had the error.
    pub url: String,
    /// REDIRECT_QUERY_STRING (empty when there was none).
    pub query: String,
    /// REDIRECT_REQUEST_METHOD.
    pub method: String,
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
    /// `SSLOptions +ExportCertData`: the server's certificate in PEM (SSL_SERVER_CERT).
    pub server_cert: Option<String>,
    /// The client's certificate in PEM (SSL_CLIENT_CERT).
    pub client_cert: Option<String>,
    /// The rest of the client's chain in PEM, in order (SSL_CLIENT_CERT_CHAIN_n).
    pub client_chain: Vec<String>,
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
    /// Reads one request's head from the edge, and with it the body as the contract has it
    /// ([`wire::INLINE_BODY`]): an inline body whole; a larger one left on the socket, to be
    /// read through the returned [`RequestBody`] once the request has been routed. `body` is
    /// empty here; a Handler's is filled in after routing ([`RequestBody::read_all`]). `limits`
    /// are the configured ones, by which the edge admitted the request.
    pub fn read_head<S: Read>(
        mut stream: S,
        limits: &wire::limits::HeadLimits,
    ) -> Result<(Request, RequestBody<S>), ReadError> {
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
            // Parsed once its blank line is in, not once for each piece of a large head.
            if wire::request::head_end(&buffer, start).is_none() && buffer.len() <= limits.max_head() {
                continue;
            }
            match wire::request::parse(&buffer, limits) {
                Ok(Some((head, head_len))) => {
                    let request = Self::from_head(head);
                    let early = buffer.split_off(head_len);
                    let body = request.body_after_head(stream, early)?;
                    return Ok((request, body));
                }
                Ok(None) => continue,
                Err(error) => return Err(ReadError::Malformed(error.to_string())),
            }
        }
    }

    /// The body that follows this head, `early` being the bytes read past the head.
    fn body_after_head<S: Read>(
        &self,
        mut stream: S,
        mut early: Vec<u8>,
    ) -> Result<RequestBody<S>, ReadError> {
        let length = self.content_length()?;
        if early.len() as u64 > length {
            return Err(ReadError::Malformed("more body than Content-Length".into()));
        }
        let withheld = self.header("expect").is_some_and(|v| v.trim().eq_ignore_ascii_case("100-continue"));
        if withheld {
            if !early.is_empty() {
                return Err(ReadError::Malformed("body sent before 100 Continue".into()));
            }
            return Ok(RequestBody::new(stream, early, length, true));
        }
        if length <= wire::INLINE_BODY {
            // Inline: read whole now, as the edge sent it with the head.
            let missing = length - early.len() as u64;
            early.reserve_exact(missing as usize);
            (&mut stream).take(missing).read_to_end(&mut early)?;
            if early.len() as u64 != length {
                return Err(ReadError::Truncated);
            }
        }
        Ok(RequestBody::new(stream, early, length, false))
    }

    fn from_head(head: wire::request::RequestHead) -> Request {
        let mut request = Request {
            method: head.method,
            target: head.target,
            protocol: format!("HTTP/1.{}", head.minor_version),
            headers: head.fields,
            body: Vec::new(),
            client: None,
            tls: None,
            vhost: None,
            remote_user: None,
            auth_type: None,
            cgi_pass_auth: false,
            redirect: None,
        };
        request.remote_user = request.header(wire::REMOTE_USER).map(str::to_string);
        request.auth_type = request.header(wire::AUTH_TYPE).map(str::to_string);
        request.cgi_pass_auth = request.header(wire::CGI_PASS_AUTH).is_some();
        request.client = request.header("forwarded").and_then(forwarded_for);
        request.redirect = request.header(wire::REDIRECT_STATUS).map(|status| Redirect {
            status: status.to_string(),
            url: request.header(wire::REDIRECT_URL).unwrap_or("").to_string(),
            query: request.header(wire::REDIRECT_QUERY).unwrap_or("").to_string(),
            method: request.header(wire::REDIRECT_METHOD).unwrap_or("GET").to_string(),
        });
        request.vhost = match request.header(wire::VHOST) {
            None => Some(0),
            Some(number) => number.parse().ok(),
        };
        request.tls = request.header(wire::SSL_PROTOCOL).map(|protocol| TlsFacts {
            protocol: protocol.to_string(),
            cipher: request.header(wire::SSL_CIPHER).unwrap_or("").to_string(),
            client_verify: request.header(wire::SSL_CLIENT_VERIFY).unwrap_or("NONE").to_string(),
            client_subject: request.header(wire::SSL_CLIENT_S_DN).map(str::to_string),
            server_cert: request.header(wire::SSL_SERVER_CERT).and_then(wire::cert_pem),
            client_cert: request.header(wire::SSL_CLIENT_CERT).and_then(wire::cert_pem),
            client_chain: request
                .header(wire::SSL_CLIENT_CERT_CHAIN)
                .map(|chain| chain.split(',').filter_map(wire::cert_pem).collect())
                .unwrap_or_default(),
        });
        request
    }

    /// The first value of a header, by case-insensitive name, if it is valid UTF-8.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .and_then(|(_, v)| std::str::from_utf8(v).ok())
    }

    fn content_length(&self) -> Result<u64, ReadError> {
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
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    const LIMITS: wire::limits::HeadLimits =
        wire::limits::HeadLimits { request_line: 8190, field_size: 8190, fields: 100 };

    #[test]
    fn reads_head_and_inline_body() {
        let raw = b"POST /cgi-bin/x?a=1 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nForwarded: for=\"[::1]:4000\";proto=https\r\n\r\nhello";
        let (request, mut body) = Request::read_head(&raw[..], &LIMITS).unwrap();
        assert_eq!(request.method, "POST");
        assert_eq!(request.path(), "/cgi-bin/x");
        assert_eq!(request.query(), "a=1");
        assert_eq!(request.client, Some("[::1]:4000".parse().unwrap()));
        assert_eq!(body.length(), 5);
        assert!(body.has_buffered(), "an inline body is read with its head");
        let mut text = Vec::new();
        body.read_to_end(&mut text).unwrap();
        assert_eq!(text, b"hello");
    }

    #[test]
    fn an_inline_body_is_read_whole_before_routing_even_in_pieces() {
        let (mut edge, worker) = UnixStream::pair().unwrap();
        let body_bytes = vec![b'b'; wire::INLINE_BODY as usize];
        edge.write_all(format!("PUT /h HTTP/1.1\r\nContent-Length: {}\r\n\r\n", body_bytes.len()).as_bytes())
            .unwrap();
        edge.write_all(&body_bytes).unwrap();
        let (_, body) = Request::read_head(&worker, &LIMITS).unwrap();
        assert_eq!(body.length(), wire::INLINE_BODY);
        assert!(!body.is_withheld());
        // Nothing is left on the socket: the whole body came with the head.
        worker.set_nonblocking(true).unwrap();
        let mut probe = [0u8; 1];
        assert!((&worker).read(&mut probe).is_err(), "the inline body was read whole");
    }

    #[test]
    fn a_large_body_is_left_on_the_socket() {
        let (mut edge, worker) = UnixStream::pair().unwrap();
        let length = wire::INLINE_BODY + 1;
        edge.write_all(format!("POST /x HTTP/1.1\r\nContent-Length: {length}\r\n\r\nfirst").as_bytes())
            .unwrap();
        let (_, mut body) = Request::read_head(&worker, &LIMITS).unwrap();
        assert!(!body.is_withheld(), "no Expect: the body follows the head");
        assert_eq!(body.left(), length);
        let mut first = [0u8; 5];
        body.read_exact(&mut first).unwrap();
        assert_eq!(&first, b"first");
        assert_eq!(body.left(), length - 5, "the rest is read only when asked for");
    }

    #[test]
    fn an_announced_body_waits_for_100_continue() {
        let raw = b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\n";
        let (_, body) = Request::read_head(&raw[..], &LIMITS).unwrap();
        assert!(body.is_withheld());
        assert_eq!(body.length(), 70_000);
        assert!(!body.has_buffered());

        let early = b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 70000\r\n\r\nxyz";
        assert!(
            matches!(Request::read_head(&early[..], &LIMITS), Err(ReadError::Malformed(_))),
            "a body sent before 100 Continue breaks the contract"
        );
    }

    #[test]
    fn a_head_as_large_as_the_edge_admits_is_read_and_no_larger() {
        // 100 field lines of 8190 bytes, and the fields the edge adds: over 800 KB.
        let client: Vec<(String, String)> =
            (0..100).map(|i| (format!("x-f{i:03}"), "v".repeat(8190 - 8))).collect();
        let mut fields: Vec<(&str, &[u8])> = client.iter().map(|(n, v)| (n.as_str(), v.as_bytes())).collect();
        fields.push(("x-forwarded-for", b"10.0.0.1"));
        fields.push((wire::SSL_CLIENT_S_DN, b"CN=meter-7,O=Water"));
        let head = wire::request::write("GET", "/x", fields.iter().copied(), &LIMITS).unwrap();
        assert!(head.len() > 800_000);
        let (request, body) = Request::read_head(&head[..], &LIMITS).unwrap();
        assert_eq!(request.headers.len(), 102);
        assert_eq!(body.length(), 0);
        assert_eq!(request.tls, None, "no protocol, no TLS facts");

        let small = wire::limits::HeadLimits { request_line: 100, field_size: 100, fields: 2 };
        let too_many: String = (0..small.max_fields() + 1).map(|i| format!("x-{i}: 1\r\n")).collect();
        let raw = format!("GET / HTTP/1.1\r\n{too_many}\r\n");
        assert!(matches!(Request::read_head(raw.as_bytes(), &small), Err(ReadError::Malformed(_))));
        let unended = format!("GET / HTTP/1.1\r\nx-a: {}", "v".repeat(small.max_head()));
        assert!(matches!(Request::read_head(unended.as_bytes(), &small), Err(ReadError::Malformed(_))));
    }

    #[test]
    fn short_inline_body_is_truncated() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nhello";
        assert!(matches!(Request::read_head(&raw[..], &LIMITS), Err(ReadError::Truncated)));
    }

    #[test]
    fn more_body_than_announced_is_malformed() {
        let raw = b"POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhello";
        assert!(matches!(Request::read_head(&raw[..], &LIMITS), Err(ReadError::Malformed(_))));
    }
}
