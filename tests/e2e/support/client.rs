//! A small HTTPS client over hyper and rustls that trusts the test's certificate and can insist on
//! HTTP/1.1 or h2 by ALPN. Blocking, with a deadline on every exchange, so a failure cannot hang.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

/// Whole-exchange deadline.
const DEADLINE: Duration = Duration::from_secs(60);

/// Which protocol to offer by ALPN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    H1,
    H2,
}

/// A response, read whole.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// A client for one server.
#[derive(Clone)]
pub struct Client {
    addr: SocketAddr,
    tls: Arc<rustls::ClientConfig>,
    tls_h2: Arc<rustls::ClientConfig>,
}

impl Client {
    pub fn new(addr: SocketAddr, cert_pem: &str) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("certificate PEM");
        roots.add(cert).expect("trust anchor");
        let build = |alpn: &[u8]| {
            let mut config =
                rustls::ClientConfig::builder().with_root_certificates(roots.clone()).with_no_client_auth();
            config.alpn_protocols = vec![alpn.to_vec()];
            Arc::new(config)
        };
        Client { addr, tls: build(b"http/1.1"), tls_h2: build(b"h2") }
    }

    pub fn get(&self, path: &str) -> Result<Reply, String> {
        self.request(Proto::H1, "GET", path, Vec::new())
    }

    /// Sends raw bytes over a new TLS connection (HTTP/1.1 by ALPN) and returns everything the
    /// server sends until it closes. For requests a well-behaved client library would refuse.
    pub fn raw(&self, bytes: &[u8]) -> Result<Vec<u8>, String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            tokio::time::timeout(DEADLINE, async {
                let tcp =
                    tokio::net::TcpStream::connect(self.addr).await.map_err(|e| format!("connect: {e}"))?;
                let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
                let mut stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS: {e}"))?;
                stream.write_all(bytes).await.map_err(|e| format!("write: {e}"))?;
                let mut out = Vec::new();
                // A reset after the answer still leaves the answer.
                let _ = stream.read_to_end(&mut out).await;
                Ok(out)
            })
            .await
            .map_err(|_| "raw exchange timed out".to_string())?
        })
    }

    /// One request on a new connection.
    pub fn request(&self, proto: Proto, method: &str, path: &str, body: Vec<u8>) -> Result<Reply, String> {
        self.request_with(proto, method, path, &[], body)
    }

    /// One request with extra header fields, on a new connection.
    pub fn request_with(
        &self,
        proto: Proto,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let runtime =
            tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
        runtime.block_on(async {
            tokio::time::timeout(DEADLINE, self.exchange(proto, method, path, headers, body))
                .await
                .map_err(|_| "request timed out".to_string())?
        })
    }

    async fn exchange(
        &self,
        proto: Proto,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Result<Reply, String> {
        let tcp = tokio::net::TcpStream::connect(self.addr).await.map_err(|e| format!("connect: {e}"))?;
        let config = match proto {
            Proto::H1 => self.tls.clone(),
            Proto::H2 => self.tls_h2.clone(),
        };
        let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
        let stream = tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let negotiated = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        let io = TokioIo::new(stream);
        let request = http::Request::builder()
            .method(method)
            .uri(match proto {
                Proto::H1 => path.to_string(),
                Proto::H2 => format!("https://localhost{path}"),
            })
            .header("host", "localhost");
        let request = headers
            .iter()
            .fold(request, |request, (name, value)| request.header(*name, *value))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| e.to_string())?;
        let response = match proto {
            Proto::H1 => {
                let (mut sender, conn) =
                    hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                sender.send_request(request).await.map_err(|e| format!("send: {e}"))?
            }
            Proto::H2 => {
                if negotiated.as_deref() != Some(b"h2") {
                    return Err(format!("server did not pick h2 by ALPN: {negotiated:?}"));
                }
                let (mut sender, conn) =
                    hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                        .await
                        .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                let mut request = request;
                request.headers_mut().remove("host");
                sender.send_request(request).await.map_err(|e| format!("send: {e}"))?
            }
        };
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| format!("body: {e}"))?.to_bytes().to_vec();
        Ok(Reply { status: parts.status.as_u16(), version: parts.version, headers: parts.headers, body })
    }
}
