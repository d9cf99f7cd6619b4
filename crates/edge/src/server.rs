//! Accept loops and connections: TLS within its budget, then HTTP/1.1 or h2 through hyper.

use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::pool_client::{ClientFacts, TlsInfo};
use crate::site::Site;

/// A TLS handshake that takes longer than this is abandoned (RequestReadTimeout handshake=10).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request head that takes longer than this is abandoned.
const HEADER_TIMEOUT: Duration = Duration::from_secs(20);
/// After an accept error (EMFILE and the like), wait this long instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One listening socket and what it speaks.
pub struct Listener {
    pub socket: TcpListener,
    /// `Some` for https listeners.
    pub tls: Option<TlsAcceptor>,
}

/// Serves every listener until `shutdown` resolves, then lets open connections finish for at most
/// `drain` before returning.
pub async fn serve(
    listeners: Vec<Listener>,
    site: Arc<Site>,
    shutdown: impl std::future::Future<Output = ()>,
    drain: Duration,
) {
    let graceful = Arc::new(GracefulShutdown::new());
    let mut accept_tasks = Vec::new();
    for listener in listeners {
        let site = site.clone();
        let graceful = graceful.clone();
        accept_tasks.push(tokio::spawn(accept_loop(listener, site, graceful)));
    }
    shutdown.await;
    for task in &accept_tasks {
        task.abort();
    }
    for task in accept_tasks {
        let _ = task.await;
    }
    let Ok(graceful) = Arc::try_unwrap(graceful) else {
        return;
    };
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after GracefulShutdownTimeout; closing them");
    }
}

async fn accept_loop(listener: Listener, site: Arc<Site>, graceful: Arc<GracefulShutdown>) {
    loop {
        let (stream, peer) = match listener.socket.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "accept failed; backing off");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Ok(local) = stream.local_addr() else {
            continue;
        };
        let site = site.clone();
        let tls = listener.tls.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let result = match tls {
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    let tls_stream = match handshake {
                        Ok(Ok(tls_stream)) => tls_stream,
                        Ok(Err(error)) => {
                            tracing::debug!(%peer, %error, "TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "TLS handshake timed out");
                            return;
                        }
                    };
                    let tls = TlsInfo::of(tls_stream.get_ref().1);
                    let facts = ClientFacts {
                        peer,
                        local,
                        tls: Some(tls),
                    };
                    let builder = http_builder();
                    let connection =
                        builder.serve_connection(TokioIo::new(tls_stream), service(site, facts));
                    watcher.watch(connection.into_owned()).await
                }
                None => {
                    let facts = ClientFacts {
                        peer,
                        local,
                        tls: None,
                    };
                    let builder = http_builder();
                    let connection =
                        builder.serve_connection(TokioIo::new(stream), service(site, facts));
                    watcher.watch(connection.into_owned()).await
                }
            };
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        });
    }
}

/// hyper's server for one connection: HTTP/1.1, or h2 when the client starts with its preface.
fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(100);
    builder
}

/// The per-request service of one connection.
fn service(
    site: Arc<Site>,
    facts: ClientFacts,
) -> impl hyper::service::Service<
    http::Request<hyper::body::Incoming>,
    Response = http::Response<crate::body::Body>,
    Error = std::convert::Infallible,
    Future = impl std::future::Future<
        Output = Result<http::Response<crate::body::Body>, std::convert::Infallible>,
    > + Send,
> + Clone {
    service_fn(move |request| {
        let site = site.clone();
        let facts = facts.clone();
        async move { Ok::<_, std::convert::Infallible>(site.handle(facts, request).await) }
    })
}
