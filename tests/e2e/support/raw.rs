//! Raw exchanges for requests no client library would send: optional plain bytes before TLS (a
//! PROXY protocol header), a TLS handshake with any client configuration (ALPN, client
//! certificate), raw request bytes, then everything the server sends until it closes. Every step
//! is bounded by one deadline, so a server that keeps the connection open shows up as
//! [`End::Timeout`] instead of a hang. Also a reader that splits the bytes into the HTTP/1.1
//! responses they hold, to tell one response from two.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A rustls client configuration that trusts `server_cert_pem`, offers `alpn`, and presents
/// `client_auth` (certificate chain, key) when given one.
pub fn tls_config(
    server_cert_pem: &str,
    alpn: &[&[u8]],
    client_auth: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let cert = CertificateDer::from_pem_slice(server_cert_pem.as_bytes()).expect("certificate PEM");
    roots.add(cert).expect("trust anchor");
    let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
    let mut config = match client_auth {
        Some((chain, key)) => builder.with_client_auth_cert(chain, key).expect("client certificate and key"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// How the server ended the exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// A clean end of stream (FIN, with or without a TLS close_notify).
    Eof,
    /// A read error after the handshake: a reset, a TLS alert, a truncated record.
    Error(String),
    /// The deadline passed with the connection still open.
    Timeout,
}

impl End {
    /// The server ended the connection (by any means) before the deadline.
    pub fn closed(&self) -> bool {
        !matches!(self, End::Timeout)
    }
}

/// What one raw exchange produced.
#[derive(Debug)]
pub struct Exchange {
    /// `Err` when the TCP connection or the TLS handshake failed (nothing was sent then).
    pub handshake: Result<(), String>,
    /// Everything read from the server after the handshake.
    pub bytes: Vec<u8>,
    pub end: End,
    /// From connect to the end.
    pub elapsed: Duration,
}

impl Exchange {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

/// Connects to `addr`, writes `preface` in plain TCP (empty: nothing), does the TLS handshake
/// with `config`, writes `request`, and reads until the server closes or `deadline` passes.
pub fn exchange(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    preface: &[u8],
    request: &[u8],
    deadline: Duration,
) -> Exchange {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let started = Instant::now();
        let end_at = tokio::time::Instant::now() + deadline;
        let failed = |reason: String| Exchange {
            handshake: Err(reason),
            bytes: Vec::new(),
            end: End::Eof,
            elapsed: started.elapsed(),
        };
        let mut tcp = match tokio::time::timeout_at(end_at, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(tcp)) => tcp,
            Ok(Err(e)) => return failed(format!("connect: {e}")),
            Err(_) => return failed("connect timed out".to_string()),
        };
        if !preface.is_empty() {
            match tokio::time::timeout_at(end_at, tcp.write_all(preface)).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return failed(format!("writing the preface: {e}")),
                Err(_) => return failed("writing the preface timed out".to_string()),
            }
        }
        let name = ServerName::try_from("localhost").expect("server name");
        let connect = tokio_rustls::TlsConnector::from(config).connect(name, tcp);
        let mut stream = match tokio::time::timeout_at(end_at, connect).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return failed(format!("TLS: {e}")),
            Err(_) => return failed("TLS handshake timed out".to_string()),
        };
        let mut bytes = Vec::new();
        // A server that refuses at once may close before the request is written whole: what it
        // answered is still worth reading, so a failed write only ends the writing.
        let _ = tokio::time::timeout_at(end_at, stream.write_all(request)).await;
        let end = loop {
            let mut chunk = [0u8; 16 * 1024];
            match tokio::time::timeout_at(end_at, stream.read(&mut chunk)).await {
                Ok(Ok(0)) => break End::Eof,
                Ok(Ok(n)) => bytes.extend_from_slice(&chunk[..n]),
                // rustls reports a FIN without close_notify as UnexpectedEof: the peer closed.
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => break End::Eof,
                Ok(Err(e)) => break End::Error(e.to_string()),
                Err(_) => break End::Timeout,
            }
        };
        Exchange { handshake: Ok(()), bytes, end, elapsed: started.elapsed() }
    })
}

/// One HTTP/1.x response read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Names lowercased, values trimmed, in order, duplicates kept.
    pub headers: Vec<(String, String)>,
    /// The payload (de-chunked when the response was chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every value of `name` (lowercase).
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Splits `bytes` into the responses it holds, in order. A response framed by neither
/// Content-Length nor chunked takes the rest of the bytes. Interim (1xx) responses are kept.
/// `Err` when the bytes end inside a response or do not look like one.
pub fn responses(mut bytes: &[u8]) -> Result<Vec<Response>, String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let head_end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or_else(|| format!("no end of head in {:?}", String::from_utf8_lossy(bytes)))?;
        let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default().to_string();
        if !status_line.starts_with("HTTP/1.") {
            return Err(format!("not a status line: {status_line:?}"));
        }
        let status: u16 = status_line
            .split(' ')
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|line| line.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let rest = &bytes[head_end + 4..];
        let mut response = Response { status, headers, body: Vec::new() };
        let chunked =
            response.header("transfer-encoding").is_some_and(|te| te.eq_ignore_ascii_case("chunked"));
        let length = response.header("content-length").and_then(|v| v.parse::<usize>().ok());
        let used = if (100..200).contains(&status) || status == 204 || status == 304 {
            0
        } else if chunked {
            let (body, used) = dechunk(rest)?;
            response.body = body;
            used
        } else if let Some(length) = length {
            if rest.len() < length {
                return Err(format!("body cut short: {} of {length} bytes", rest.len()));
            }
            response.body = rest[..length].to_vec();
            length
        } else {
            response.body = rest.to_vec();
            rest.len()
        };
        bytes = &rest[used..];
        out.push(response);
    }
    Ok(out)
}

/// The payload of a chunked body and the bytes it took (trailers skipped).
fn dechunk(bytes: &[u8]) -> Result<(Vec<u8>, usize), String> {
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        let line_end =
            bytes[pos..].windows(2).position(|w| w == b"\r\n").ok_or("chunk size line cut short")?;
        let size_text = String::from_utf8_lossy(&bytes[pos..pos + line_end]).into_owned();
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size =
            usize::from_str_radix(size_text, 16).map_err(|_| format!("bad chunk size {size_text:?}"))?;
        pos += line_end + 2;
        if size == 0 {
            // Trailer lines, then the empty line.
            loop {
                let end =
                    bytes[pos..].windows(2).position(|w| w == b"\r\n").ok_or("trailer section cut short")?;
                pos += end + 2;
                if end == 0 {
                    return Ok((out, pos));
                }
            }
        }
        if bytes.len() < pos + size + 2 {
            return Err("chunk cut short".to_string());
        }
        out.extend_from_slice(&bytes[pos..pos + size]);
        pos += size + 2;
    }
}

/// A PROXY protocol v2 header: PROXY command, TCP over IPv4.
pub fn proxy_v2(client: [u8; 4], client_port: u16, server: [u8; 4], server_port: u16) -> Vec<u8> {
    let mut header = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    header.push(0x21); // version 2, PROXY
    header.push(0x11); // AF_INET, STREAM
    header.extend_from_slice(&12u16.to_be_bytes());
    header.extend_from_slice(&client);
    header.extend_from_slice(&server);
    header.extend_from_slice(&client_port.to_be_bytes());
    header.extend_from_slice(&server_port.to_be_bytes());
    header
}
