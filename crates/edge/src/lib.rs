//! weir-edge: the async front door. TLS (rustls), HTTP/1.1 and h2 (hyper), static files under
//! DocumentRoot, and the proxy that hands complete requests to the prefork pool.
//!
//! Runs only in the edge process. It is the one role that starts threads (a tokio multi-thread
//! runtime), and it never forks. It reads the TLS private key; no other role does.

pub mod access_log;
pub mod body;
pub mod conditional;
pub mod pool_client;
pub mod routes;
pub mod server;
pub mod site;
pub mod static_files;
pub mod tls;

use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::signal::unix::{signal, SignalKind};
use tokio_rustls::TlsAcceptor;
use weir_conf::{Config, ListenScheme};

use crate::site::Site;

/// A listening socket handed over by the supervisor, with its scheme.
pub struct InheritedListener {
    pub socket: std::net::TcpListener,
    pub scheme: ListenScheme,
}

/// What the edge holds once the private key has been read and before privileges are dropped.
pub struct Prepared {
    tls: Option<Arc<rustls::ServerConfig>>,
    access_log: Option<access_log::AccessLog>,
}

/// Why the edge cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("CustomLog {path}: {source}")]
    AccessLog {
        path: String,
        source: std::io::Error,
    },
    #[error("DocumentRoot {path}: {source}")]
    DocumentRoot {
        path: String,
        source: std::io::Error,
    },
    #[error("could not start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Reads what needs privileges: the certificate and key, and the access log file.
pub fn prepare(config: &Config) -> Result<Prepared, EdgeError> {
    let https = config
        .listeners
        .iter()
        .any(|l| l.scheme == ListenScheme::Https);
    let tls = if https {
        Some(tls::server_config(&config.tls)?)
    } else {
        None
    };
    let access_log = match &config.custom_log {
        Some(path) => {
            Some(
                access_log::AccessLog::open(path).map_err(|source| EdgeError::AccessLog {
                    path: path.display().to_string(),
                    source,
                })?,
            )
        }
        None => None,
    };
    Ok(Prepared { tls, access_log })
}

/// The edge's entry point, after [`prepare`] and the privilege drop: serves until SIGTERM or
/// SIGINT, drains, and returns. `ready` gets one byte once every listener is accepting.
pub fn run(
    config: Arc<Config>,
    prepared: Prepared,
    listeners: Vec<InheritedListener>,
    pool_socket: std::path::PathBuf,
    handler_paths: Vec<String>,
    ready: Option<OwnedFd>,
) -> Result<(), EdgeError> {
    let root = static_files::canonical_root(&config.document_root).map_err(|source| {
        EdgeError::DocumentRoot {
            path: config.document_root.display().to_string(),
            source,
        }
    })?;
    let routes = routes::PoolRoutes::new(&config, handler_paths);
    let site = Arc::new(Site {
        static_files: static_files::StaticFiles {
            root,
            index: config.directory_index.clone(),
            routes: routes.clone(),
        },
        pool: pool_client::PoolClient {
            socket: pool_socket,
            timeout: config.timeout,
        },
        routes,
        server_header: http::HeaderValue::from_str(&config.server_tokens.product())
            .unwrap_or_else(|_| http::HeaderValue::from_static("weir")),
        limit_request_body: config.limit_request_body,
        access_log: prepared.access_log,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir-edge")
        .build()
        .map_err(EdgeError::Runtime)?;
    let acceptor = prepared.tls.map(TlsAcceptor::from);
    runtime.block_on(async move {
        let mut sockets = Vec::new();
        for listener in listeners {
            let _ = listener.socket.set_nonblocking(true);
            match tokio::net::TcpListener::from_std(listener.socket) {
                Ok(socket) => sockets.push(server::Listener {
                    socket,
                    tls: (listener.scheme == ListenScheme::Https)
                        .then(|| acceptor.clone())
                        .flatten(),
                }),
                Err(error) => tracing::error!(%error, "edge could not use a listening socket"),
            }
        }
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            tracing::error!("edge could not install its signal handlers");
            return;
        };
        // The supervisor forked us with its signals blocked; handlers are in place now.
        unblock_signals();
        if let Some(ready) = ready {
            let _ = std::fs::File::from(ready).write_all(b"1");
        }
        let shutdown = async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            tracing::info!("edge stopping: no new connections, draining open ones");
        };
        server::serve(sockets, site, shutdown, config.graceful_shutdown_timeout).await;
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}

fn unblock_signals() {
    use nix::sys::signal::{SigSet, SigmaskHow};
    // Only this (the main) thread unblocks: runtime threads keep the inherited mask, so the
    // process's signals are delivered here, where tokio's handlers record them.
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
