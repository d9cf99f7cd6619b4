//! Accept loops and connections: connection limits before anything else, then the handshake
//! stage (the PROXY header where the listener expects one, the TLS handshake; a full stage evicts
//! rather than refuses), then HTTP/1.1 (the edge's own strict reader) or h2 (hyper) by ALPN.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use weir_conf::edge::StageTimeout;

use crate::client_facts::{ClientFacts, TlsInfo};
use crate::client_limits::{ConnectionLimits, ConnectionSlot, Over};
use crate::h1::conn::{self as h1, H1Settings};
use crate::h2_activity::{Activity, StreamInFlight};
use crate::h2_places::StreamPlaces;
use crate::handshake_stage::{HandshakeStage, Staged};
use crate::hosts::HostTls;
use crate::proxy_protocol::{self, ProxiedAddress};
use crate::proxy_trust::ProxyTrust;
use crate::reqtimeout::{Stage, StageClock};
use crate::request_body;
use crate::request_checks;
use crate::site::Site;
use crate::source::Source;
use crate::stall_guard::StallGuard;
use weir_scoreboard::Reject;

/// How long past Timeout an h2 connection's answered streams may stand still before it is
/// closed: a margin for the 500 ms tick and a busy machine.
const H2_STALL_GRACE: Duration = Duration::from_secs(5);
/// After an accept error (EMFILE and the like), wait this long instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// How often an accept error may be logged.
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(10);
/// How long an h2 client has, after GOAWAY with no stream in flight, to close the connection
/// itself before the edge closes it.
const GOAWAY_GRACE: Duration = Duration::from_secs(2);
/// h2 streams in flight per connection.
const H2_MAX_STREAMS: u32 = 100;
/// What one h2 stream may buffer for a client that reads nothing (hyper's default is 400 KiB;
/// 256 KiB measured 403 KiB held per such stream, 64 KiB 207 KiB with 64 KiB file reads). The
/// edge hands a stream 16 KiB pieces, so 64 KiB still keeps four in hand for the socket.
const H2_SEND_BUFFER: usize = 64 * 1024;

/// One listening socket and what it speaks.
pub struct Listener {
    pub socket: TcpListener,
    /// `Some` for https listeners where every site shows the same certificate.
    pub tls: Option<TlsAcceptor>,
    /// `Some` for https listeners where sites show certificates of their own: the ClientHello
    /// is read first, and the site its SNI names (on this address) answers.
    pub host_tls: Option<Arc<HostTls>>,
    /// `Some` for a proxy-protocol listener: a PROXY header precedes everything else, and only
    /// the peers listed there may connect.
    pub proxy: Option<Arc<ProxyTrust>>,
}

/// What every connection shares.
pub struct Edge {
    pub site: Arc<Site>,
    pub h1: H1Settings,
    pub handshake: StageTimeout,
    /// Apache's Timeout: a client that reads nothing of its response for this long is cut off.
    pub write_timeout: Duration,
    pub limits: Arc<ConnectionLimits>,
    /// Connections from accept until they have proved themselves (see `handshake_stage`).
    pub stage: Arc<HandshakeStage>,
    /// Cancelled when the edge starts draining.
    pub draining: CancellationToken,
    /// Every connection task, so a drain can wait for them.
    pub connections: TaskTracker,
    last_accept_error: Mutex<Option<Instant>>,
}

impl Edge {
    pub fn new(
        site: Arc<Site>,
        h1: H1Settings,
        handshake: StageTimeout,
        write_timeout: Duration,
        limits: Arc<ConnectionLimits>,
    ) -> Edge {
        Edge {
            site,
            h1,
            handshake,
            write_timeout,
            limits,
            stage: HandshakeStage::new(crate::handshake_stage::CAPACITY),
            draining: CancellationToken::new(),
            connections: TaskTracker::new(),
            last_accept_error: Mutex::new(None),
        }
    }
}

/// Serves every listener until `shutdown` resolves; then stops accepting and lets open
/// connections finish for at most `drain`.
pub async fn serve(
    listeners: Vec<Listener>,
    edge: Arc<Edge>,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) {
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        accept_tasks.push(tokio::spawn(accept_loop(listener, edge.clone())));
    }
    shutdown.await;
    for task in &accept_tasks {
        task.abort();
    }
    edge.draining.cancel();
    edge.connections.close();
    let deadline = Instant::now() + drain;
    loop {
        let tick = Instant::now() + Duration::from_secs(1);
        if tokio::time::timeout_at(tick.min(deadline), edge.connections.wait()).await.is_ok() {
            tracing::info!("edge drained: every connection has finished");
            break;
        }
        if Instant::now() >= deadline {
            tracing::warn!(
                open = edge.limits.total(),
                "connections still open after GracefulShutdownTimeout; closing them"
            );
            break;
        }
        tracing::info!(
            open = edge.limits.total(),
            "draining: {} connections still open",
            edge.limits.total()
        );
    }
}

async fn accept_loop(listener: Listener, edge: Arc<Edge>) {
    let listener = Arc::new(listener);
    loop {
        let (stream, peer) = match listener.socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                edge.log_accept_error(&error);
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        if let Some(trust) = &listener.proxy {
            // Closed before a byte is read: neither the header nor anything keyed on the address
            // it would claim is reached.
            if !trust.trusts(peer.ip()) {
                let at = listener.socket.local_addr().unwrap_or(peer);
                trust.log_refused(peer, at);
                edge.site.scoreboard.counters().reject(Reject::ProxyHeader);
                continue;
            }
        }
        // Keyed on the socket's peer until a PROXY header names the client (then rekeyed).
        let source = Source::of(peer.ip());
        let Some(slot) = edge.admit(source, peer) else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let (ticket, made_room) = edge.stage.enter(source);
        if made_room.is_some() {
            edge.count_eviction();
        }
        let evicted = ticket.evicted();
        // Plain HTTP has no handshake: the first byte of a request is its proof (after the PROXY
        // header, on a proxy-protocol listener).
        let first_byte_ends = !listener.is_tls() && listener.proxy.is_none();
        let stream = Staged::new(stream, ticket, first_byte_ends);
        let edge_for_task = edge.clone();
        let listener = listener.clone();
        edge.connections.spawn(async move {
            let _slot = connection(stream, evicted, peer, local, &listener, &edge_for_task, slot).await;
        });
    }
}

impl Listener {
    fn is_tls(&self) -> bool {
        self.tls.is_some() || self.host_tls.is_some()
    }
}

impl Edge {
    /// MaxConnections and MaxConnectionsPerIP. At MaxConnections, a connection still in the
    /// handshake stage gives way (the one a full stage would evict), so established clients and
    /// newcomers from other sources are not refused because one source fills the edge with
    /// connections that never handshake.
    fn admit(&self, source: Source, peer: SocketAddr) -> Option<ConnectionSlot> {
        let refused = match self.limits.admit(source) {
            Ok(slot) => return Some(slot),
            Err(Over::Total) => match self.stage.evict_one() {
                Some(_) => {
                    self.count_eviction();
                    match self.limits.admit_in_place_of_evicted(source) {
                        Ok(slot) => return Some(slot),
                        Err(over) => over,
                    }
                }
                None => Over::Total,
            },
            Err(over) => over,
        };
        tracing::debug!(%peer, ?refused, "connection refused by MaxConnections/MaxConnectionsPerIP");
        self.site.scoreboard.counters().reject(Reject::ConnectionLimit);
        None
    }

    fn count_eviction(&self) {
        self.site.scoreboard.counters().reject(Reject::HandshakeEvicted);
    }
}

/// Runs `work` unless the connection is evicted from the handshake stage first.
async fn unless_evicted<F: Future>(evicted: &CancellationToken, work: F) -> Option<F::Output> {
    tokio::select! {
        biased;
        _ = evicted.cancelled() => None,
        output = work => Some(output),
    }
}

impl Edge {
    fn log_accept_error(&self, error: &std::io::Error) {
        let Ok(mut last) = self.last_accept_error.lock() else {
            return;
        };
        if last.is_none_or(|at| at.elapsed() >= ACCEPT_LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::error!(%error, "AH00050: accept failed; backing off and retrying (descriptors exhausted?)");
        }
    }
}

/// Runs one connection; returns its connection-limit slot, dropped (released) by the caller.
async fn connection(
    mut stream: Staged<TcpStream>,
    evicted: CancellationToken,
    peer: SocketAddr,
    local: SocketAddr,
    listener: &Listener,
    edge: &Edge,
    mut slot: ConnectionSlot,
) -> Option<ConnectionSlot> {
    let clock = StageClock::start(Stage::Handshake, &edge.handshake);
    let deadline = clock.as_ref().map(|c| c.deadline());
    let mut peer = peer;
    if listener.proxy.is_some() {
        let budget =
            deadline.map_or(Duration::from_secs(10), |d| d.saturating_duration_since(Instant::now()));
        let header = unless_evicted(&evicted, Box::pin(proxy_protocol::read_header(&mut stream, budget)));
        let Some(header) = header.await else {
            return Some(slot);
        };
        match header {
            Ok(ProxiedAddress::Proxied { client, .. }) => {
                peer = client;
                let source = Source::of(client.ip());
                stream.rekey(source);
                slot = match slot.rekey(source) {
                    Ok(slot) => slot,
                    Err(over) => {
                        tracing::debug!(%peer, ?over, "connection refused by MaxConnectionsPerIP");
                        return None;
                    }
                };
            }
            Ok(ProxiedAddress::Local) => {}
            Err(error) => {
                tracing::debug!(%peer, %error, "no valid PROXY protocol header; closing");
                edge.site.scoreboard.counters().reject(Reject::ProxyHeader);
                return Some(slot);
            }
        }
        if !listener.is_tls() {
            stream.end_at_first_byte();
        }
    }
    if !listener.is_tls() {
        let facts = ClientFacts { peer, local, tls: None };
        let io = StallGuard::new(stream, edge.write_timeout);
        // The stage ends inside the reader, at the first byte; once out, nothing cancels this.
        unless_evicted(&evicted, Box::pin(h1::serve(io, &edge.site, &facts, &edge.h1, &edge.draining))).await;
        return Some(slot);
    }
    // A task is as large as its largest phase for as long as it lives, and thousands of idle
    // connections should each pay only for the phase they are in: so the PROXY header, the
    // handshake and h2 are boxed, the TLS stream lives in a box of its own, and HTTP/1.1 (the
    // idle phase) runs inline. Measured with 5,000 idle TLS connections: the task went from
    // 9.3 KiB to 1.5 KiB, and the edge's PSS per connection from 16.1 KiB to 9.8 KiB.
    let handshake = Box::pin(handshake(listener, stream, clock.as_ref(), peer, local, edge));
    let Some(Some((mut tls_stream, chosen))) = unless_evicted(&evicted, handshake).await else {
        return Some(slot);
    };
    tls_stream.get_mut().0.leave();
    drop(evicted);
    let connection = tls_stream.get_ref().1;
    let h2 = connection.alpn_protocol() == Some(b"h2");
    let mut info = TlsInfo::of(connection);
    if edge.site.hosts.exports_cert_data() {
        info.client_chain = connection
            .peer_certificates()
            .map(|certs| certs.iter().map(|c| c.clone().into_owned()).collect());
    }
    if let Some((site, sni)) = chosen {
        info.handshake_site = Some(site);
        info.sni = sni;
    }
    let facts = ClientFacts { peer, local, tls: Some(info) };
    let io = StallGuard::new(tls_stream, edge.write_timeout);
    if h2 {
        Box::pin(serve_h2(io, edge, facts)).await;
    } else {
        h1::serve(io, &edge.site, &facts, &edge.h1, &edge.draining).await;
    }
    Some(slot)
}

/// The site a handshake chose by SNI, and the SNI name.
type Chosen = Option<(usize, Option<String>)>;

/// The TLS handshake within the `handshake=` budget. The stream comes back boxed: rustls's state
/// (1.2 KiB) then never sits inline in a connection's task. Where sites show certificates of
/// their own, the ClientHello is read first and the site it names by SNI (among those on the
/// connection's local address) answers with its configuration.
async fn handshake(
    listener: &Listener,
    stream: Staged<TcpStream>,
    clock: Option<&StageClock>,
    peer: SocketAddr,
    local: SocketAddr,
    edge: &Edge,
) -> Option<(Box<TlsStream<Staged<TcpStream>>>, Chosen)> {
    let handshake = async {
        match (&listener.host_tls, &listener.tls) {
            (Some(host_tls), _) => {
                let acceptor = rustls::server::Acceptor::default();
                let start = tokio_rustls::LazyConfigAcceptor::new(acceptor, stream).await?;
                let sni = start.client_hello().server_name().map(str::to_string);
                let (site, config) = host_tls.choose(local, sni.as_deref());
                let Some(config) = config else {
                    return Err(std::io::Error::other(format!("no certificate for site {site} on {local}")));
                };
                let tls_stream = start.into_stream(config).await?;
                Ok((tls_stream, Some((site, sni))))
            }
            (None, Some(acceptor)) => acceptor.accept(stream).await.map(|tls_stream| (tls_stream, None)),
            (None, None) => Err(std::io::Error::other("not a TLS listener")),
        }
    };
    let result = match clock {
        Some(clock) => match tokio::time::timeout_at(clock.deadline(), handshake).await {
            Ok(result) => result,
            Err(_) => {
                crate::reqtimeout::log_expiry(clock, peer);
                return None;
            }
        },
        None => handshake.await,
    };
    match result {
        Ok((tls_stream, chosen)) => {
            edge.site.scoreboard.counters().handshakes.fetch_add(1, Ordering::Relaxed);
            Some((Box::new(tls_stream), chosen))
        }
        Err(error) => {
            tracing::debug!(%peer, %error, "TLS handshake failed");
            edge.site.scoreboard.counters().reject(Reject::Handshake);
            None
        }
    }
}

/// h2 through hyper, with weir's limits: streams, header list size, reset floods (hyper's
/// defaults), each stream's body under the body stage, and an idle connection closed by GOAWAY.
async fn serve_h2<IO>(io: IO, edge: &Edge, facts: ClientFacts)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let peer = facts.peer;
    let activity = Activity::new();
    let site = edge.site.clone();
    let settings = edge.h1.clone();
    // The client a PROXY header named, if trusted: the source whose share the streams take.
    let places = Arc::new(StreamPlaces { limits: edge.limits.clone(), source: Source::of(peer.ip()) });
    let service = {
        let activity = activity.clone();
        service_fn(move |request: http::Request<hyper::body::Incoming>| {
            let (site, facts, settings) = (site.clone(), facts.clone(), settings.clone());
            let (activity, places) = (activity.clone(), places.clone());
            async move {
                let mut stream = activity.stream();
                let response =
                    h2_request(&site, &facts, &settings, &activity, &places, &mut stream, request).await;
                let response = response.map(|body| crate::body::Body::new(stream.watch(body)));
                Ok::<_, std::convert::Infallible>(response)
            }
        })
    };
    let mut builder = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
    builder
        .timer(TokioTimer::new())
        .max_concurrent_streams(H2_MAX_STREAMS)
        .max_header_list_size(edge.h1.limits.h2_header_list_size())
        .max_send_buf_size(H2_SEND_BUFFER);
    let connection = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    // A connection with no stream in flight for the header stage's longest wait (or
    // KeepAliveTimeout, whichever is longer) gets GOAWAY: a client dribbling HEADERS or
    // CONTINUATION frames never reaches the service, so this is what stops it.
    let header = &edge.h1.read_timeout.header;
    let idle_limit =
        header.max.unwrap_or(header.initial).max(edge.h1.keep_alive_timeout).max(Duration::from_secs(1));
    // An answered stream that does not move for longer than Timeout (Apache's bound on each
    // write) belongs to a client that withholds its window, or reads less than a piece (16 KiB)
    // per Timeout.
    let stall_limit = edge.h1.body_read_timeout + H2_STALL_GRACE;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // When GOAWAY was sent. A client that neither finishes a request nor closes (a HEADERS
    // block left without its END_HEADERS, or no request at all) never ends the connection by
    // itself: once no stream is in flight, it is closed from this side after GOAWAY_GRACE.
    let mut closing: Option<Instant> = None;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(%peer, %error, "h2 connection ended with an error");
                }
                return;
            }
            _ = edge.draining.cancelled(), if closing.is_none() => {
                closing = Some(Instant::now());
                connection.as_mut().graceful_shutdown();
            }
            _ = tick.tick() => {
                let no_stream = activity.streams() == 0;
                let still = activity.still_for();
                if let Some(stall) = activity.longest_stall().filter(|stall| *stall >= stall_limit) {
                    tracing::info!(
                        %peer,
                        streams = activity.streams(),
                        still_secs = stall.as_secs(),
                        "h2 connection closed: a stream made no progress within Timeout (its client read nothing of it)"
                    );
                    edge.site.scoreboard.counters().reject(Reject::Timeout);
                    return;
                }
                match closing {
                    Some(since) if no_stream && since.elapsed() >= GOAWAY_GRACE => {
                        tracing::debug!(%peer, "h2 connection still open after GOAWAY with no stream; closing it");
                        return;
                    }
                    Some(_) => {}
                    None if no_stream && still >= idle_limit => {
                        closing = Some(Instant::now());
                        connection.as_mut().graceful_shutdown();
                    }
                    None => {}
                }
            }
        }
    }
}

/// One h2 request: the request checker (the HTTP/1.1 reader's limits and rules, so the two
/// protocols refuse alike), the rate limit, then the site, which reads the body under the body
/// stage only for the pool. A body left unread goes on being read and dropped for a bounded
/// while after the answer, so the client gets to read the answer.
async fn h2_request(
    site: &Site,
    facts: &ClientFacts,
    settings: &H1Settings,
    activity: &Arc<Activity>,
    places: &StreamPlaces,
    stream: &mut StreamInFlight,
    request: http::Request<hyper::body::Incoming>,
) -> http::Response<crate::body::Body> {
    let (mut parts, incoming) = request.into_parts();
    let mut incoming = activity.watch(incoming);
    let line = crate::site::request_line(&parts);
    let is_head = parts.method == http::Method::HEAD;
    // Every wait from here on is the edge's own (a place, the body stage, the queue), each bounded.
    let serving = stream.in_service();
    let response = if let Err(refusal) = request_checks::h2(&mut parts, &settings.limits) {
        tracing::debug!(client = %facts.peer, %refusal, "h2 request refused");
        site.refuse(facts, &line, parts.version, crate::body::error_page(refusal.status()))
    } else if let Some(refused) = site.rate_limited(facts) {
        site.refuse(facts, &line, parts.version, refused)
    } else if let Err(refused) = places.admit(stream).await {
        site.refuse(facts, &line, parts.version, refused)
    } else {
        let incoming = &mut incoming;
        // The body is read only if the site sends the request to the pool.
        let read_body = move || {
            // Moved out, not reborrowed: the future keeps the borrow, so the closure is FnOnce.
            let incoming = incoming;
            let clock = StageClock::start(Stage::Body, &settings.read_timeout.body);
            request_body::read_incoming(
                incoming,
                settings.limit_request_body,
                clock,
                settings.body_read_timeout,
                facts.peer,
                site.spill.clone(),
            )
        };
        site.handle(facts, parts, read_body).await
    };
    drop(serving);
    request_body::discard_incoming(incoming);
    crate::body::without_forbidden_content(response, is_head)
}
