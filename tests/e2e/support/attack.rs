//! Misbehaving clients for the attack tests: raw TLS connections that trickle, stall or never
//! read, and that note when the server gave up on them. Every operation has a deadline, so a
//! server that never reacts fails a test instead of hanging it.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// A client's TLS connection.
pub type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// Longest wait for a TCP connect.
const CONNECT_DEADLINE: Duration = Duration::from_secs(10);
/// Longest wait for a TLS handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(20);
/// Longest wait for one request/response exchange.
const EXCHANGE_DEADLINE: Duration = Duration::from_secs(20);

/// Raises this process's soft RLIMIT_NOFILE to its hard limit: an attack holds thousands of
/// sockets.
pub fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// A rustls client configuration that trusts the test certificate and offers HTTP/1.1 by ALPN.
pub fn tls_config(cert_pem: &str) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    let cert = CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("certificate PEM");
    roots.add(cert).expect("trust anchor");
    let mut config = rustls::ClientConfig::builder().with_root_certificates(roots).with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// How to open an attack connection.
#[derive(Debug, Clone, Copy, Default)]
pub struct Dial {
    /// The source address to bind before connecting (a second loopback address, say).
    pub from: Option<IpAddr>,
    /// SO_RCVBUF for the client socket, set before connecting so the window stays small.
    pub recv_buffer: Option<u32>,
}

/// Connects to `addr` and completes a TLS handshake, within deadlines.
pub async fn tls_connect(addr: SocketAddr, config: &Arc<rustls::ClientConfig>) -> io::Result<Tls> {
    tls_connect_with(addr, config, Dial::default()).await
}

/// [`tls_connect`] with a source address or receive buffer of the caller's choosing.
pub async fn tls_connect_with(
    addr: SocketAddr,
    config: &Arc<rustls::ClientConfig>,
    dial: Dial,
) -> io::Result<Tls> {
    let tcp = tcp_connect_with(addr, dial).await?;
    let name = ServerName::try_from("localhost").expect("server name");
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    tokio::time::timeout(HANDSHAKE_DEADLINE, connector.connect(name, tcp))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

/// A plain TCP connection to `addr`, within a deadline.
pub async fn tcp_connect_with(addr: SocketAddr, dial: Dial) -> io::Result<TcpStream> {
    let socket = if addr.is_ipv4() { TcpSocket::new_v4()? } else { TcpSocket::new_v6()? };
    if let Some(ip) = dial.from {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    if let Some(size) = dial.recv_buffer {
        socket.set_recv_buffer_size(size)?;
    }
    tokio::time::timeout(CONNECT_DEADLINE, socket.connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

/// How a connection ended, from the client's side.
#[derive(Debug)]
pub struct Closed {
    /// When the client saw the end (EOF, reset or TLS error).
    pub at: Instant,
    /// Everything the server sent before it.
    pub received: Vec<u8>,
    /// Bytes the client managed to send (of the trickled data).
    pub sent: usize,
    /// `None` for a clean EOF.
    pub error: Option<io::ErrorKind>,
}

impl Closed {
    /// The status code of the first response received, if any.
    pub fn status(&self) -> Option<u16> {
        status_of(&self.received)
    }
}

/// The status code at the start of a raw HTTP/1.1 response.
pub fn status_of(bytes: &[u8]) -> Option<u16> {
    let text = std::str::from_utf8(bytes.get(..12)?).ok()?;
    text.strip_prefix("HTTP/1.1 ")?.parse().ok()
}

/// Sends `data` `step` bytes at a time, one step every `every` (the first after `every`), while
/// reading whatever the server sends, until the server closes the connection. Gives up (`None`)
/// after `limit`. Once `data` runs out the client just waits.
pub async fn trickle_until_closed<S>(
    stream: &mut S,
    data: &[u8],
    step: usize,
    every: Duration,
    limit: Duration,
) -> Option<Closed>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let give_up = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    let mut sent = 0usize;
    let mut writing = !data.is_empty() && step > 0;
    let mut received = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            read = stream.read(&mut buf) => match read {
                Ok(0) => return Some(Closed { at: Instant::now(), received, sent, error: None }),
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(error) => {
                    return Some(Closed {
                        at: Instant::now(),
                        received,
                        sent,
                        error: Some(error.kind()),
                    })
                }
            },
            _ = tick.tick(), if writing => {
                let end = (sent + step).min(data.len());
                let wrote = tokio::time::timeout_at(give_up, async {
                    stream.write_all(&data[sent..end]).await?;
                    stream.flush().await
                })
                .await;
                match wrote {
                    Ok(Ok(())) => sent = end,
                    // The server is gone (or not reading): keep reading for its close.
                    _ => writing = false,
                }
                if sent == data.len() {
                    writing = false;
                }
            },
            _ = tokio::time::sleep_until(give_up) => return None,
        }
    }
}

/// Reads (and discards) until the server closes; `None` if it has not after `limit`.
pub async fn wait_closed<S>(stream: &mut S, limit: Duration) -> Option<Closed>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    trickle_until_closed(stream, &[], 0, limit, limit).await
}

/// Writes all of `bytes` and flushes, within a deadline.
pub async fn send<S>(stream: &mut S, bytes: &[u8]) -> io::Result<()>
where
    S: tokio::io::AsyncWrite + Unpin,
{
    tokio::time::timeout(EXCHANGE_DEADLINE, async {
        stream.write_all(bytes).await?;
        stream.flush().await
    })
    .await
    .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "write timed out"))?
}

/// One HTTP/1.1 response, read raw.
#[derive(Debug)]
pub struct RawReply {
    pub status: u16,
    /// The head, as text (status line and fields).
    pub head: String,
    pub body: Vec<u8>,
}

impl RawReply {
    /// A field's value (the first, case-insensitive name).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().skip(1).find_map(|line| {
            let (field, value) = line.split_once(':')?;
            field.trim().eq_ignore_ascii_case(name).then_some(value.trim())
        })
    }
}

/// Sends `request` and reads one response framed by Content-Length (or by the close), on a
/// connection that may be reused afterwards. Fails if the server closes before a whole head.
pub async fn exchange<S>(stream: &mut S, request: &[u8]) -> io::Result<RawReply>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    send(stream, request).await?;
    tokio::time::timeout(EXCHANGE_DEADLINE, read_response(stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "response timed out"))?
}

async fn read_response<S>(stream: &mut S) -> io::Result<RawReply>
where
    S: tokio::io::AsyncRead + Unpin,
{
    let mut bytes = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let head_end = loop {
        if let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("closed before a whole response head: {:?}", String::from_utf8_lossy(&bytes)),
            ));
        }
        bytes.extend_from_slice(&buf[..n]);
    };
    let head = String::from_utf8_lossy(&bytes[..head_end]).into_owned();
    let status = status_of(&bytes)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("no status: {head:?}")))?;
    let mut reply = RawReply { status, head, body: bytes[head_end..].to_vec() };
    match reply.header("content-length").map(str::parse::<usize>) {
        Some(Ok(length)) => {
            while reply.body.len() < length {
                let n = stream.read(&mut buf).await?;
                if n == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "closed inside the body"));
                }
                reply.body.extend_from_slice(&buf[..n]);
            }
        }
        _ => loop {
            // No length: the close delimits the body (a reset or missing close_notify too).
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.body.extend_from_slice(&buf[..n]),
            }
        },
    }
    Ok(reply)
}

/// TCP state numbers as /proc/net/tcp shows them.
pub const TCP_ESTABLISHED: u8 = 0x01;

/// The state of the server's side of every IPv4 connection to local port `server_port`, by the
/// client's port, from /proc/net/tcp. A server that closed a connection while data it wrote is
/// still unsent (a client that stopped reading) leaves it in FIN_WAIT1; one that reset it leaves
/// no entry. Either way it is no longer ESTABLISHED, though the client cannot tell yet.
pub fn server_side_states(server_port: u16) -> HashMap<u16, u8> {
    let text = std::fs::read_to_string("/proc/net/tcp").unwrap_or_default();
    let port_of =
        |field: &str| field.rsplit_once(':').and_then(|(_, port)| u16::from_str_radix(port, 16).ok());
    let entries = text.lines().skip(1).filter_map(|line| {
        let mut fields = line.split_whitespace().skip(1);
        let local = port_of(fields.next()?)?;
        let remote = port_of(fields.next()?)?;
        let state = u8::from_str_radix(fields.next()?, 16).ok()?;
        (local == server_port && remote != 0).then_some((remote, state))
    });
    // A client port is reused across thousands of connections: an older one still in
    // TIME_WAIT or FIN_WAIT must not hide the live, ESTABLISHED one.
    let mut states = HashMap::new();
    for (remote, state) in entries {
        let entry = states.entry(remote).or_insert(state);
        if state == TCP_ESTABLISHED {
            *entry = state;
        }
    }
    states
}

/// Notes when the server's side of chosen connections stops being ESTABLISHED, by polling
/// /proc/net/tcp: how a client that never reads can tell that the server gave up on it.
#[derive(Default)]
pub struct CloseWatch {
    ports: std::sync::Mutex<HashMap<u16, Watch>>,
}

#[derive(Default)]
struct Watch {
    closed: Option<Instant>,
    /// Polls in a row that did not list the connection, and when that began.
    misses: u32,
    missing_since: Option<Instant>,
}

/// Polls in a row (and at least 2 s) a connection must be missing from /proc/net/tcp to count as
/// gone, since under load the file skips live entries. The file is
/// not a snapshot, and a read can skip entries while thousands of sockets come and go.
const MISSES_FOR_GONE: u32 = 40;

impl CloseWatch {
    /// Starts watching the connection from client port `port`.
    pub fn watch(&self, port: u16) {
        self.ports.lock().unwrap().insert(port, Watch::default());
    }

    /// When the server's side of `port` was first seen closed, if it has been.
    pub fn closed(&self, port: u16) -> Option<Instant> {
        self.ports.lock().unwrap().get(&port)?.closed
    }

    /// One look at /proc/net/tcp for connections to local port `server_port`. A listed
    /// connection in any state but ESTABLISHED (FIN_WAIT1: closed with data unsent) is closed
    /// now; one missing several polls in a row (reset) was closed when it first went missing.
    pub fn poll(&self, server_port: u16) {
        let states = server_side_states(server_port);
        let now = Instant::now();
        let mut ports = self.ports.lock().unwrap();
        for (port, watch) in ports.iter_mut().filter(|(_, w)| w.closed.is_none()) {
            match states.get(port) {
                Some(&TCP_ESTABLISHED) => {
                    watch.misses = 0;
                    watch.missing_since = None;
                }
                Some(_) => watch.closed = Some(now),
                None => {
                    watch.misses += 1;
                    let since = *watch.missing_since.get_or_insert(now);
                    if watch.misses >= MISSES_FOR_GONE && now.duration_since(since) >= Duration::from_secs(2)
                    {
                        watch.closed = Some(since);
                    }
                }
            }
        }
    }
}

/// Percentile of sorted durations (`p` in 0..=100).
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = (sorted.len() * p).div_ceil(100).saturating_sub(1);
    sorted[index.min(sorted.len() - 1)]
}
