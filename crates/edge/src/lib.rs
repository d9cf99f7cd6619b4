//! weir-edge: the async front door. TLS (rustls), HTTP/1.1 and h2 (hyper), static files under
//! DocumentRoot, and the proxy that hands complete requests to the prefork pool.
//!
//! Runs only in the edge process. It is the one role that starts threads (a tokio multi-thread
//! runtime), and it never forks. It reads the TLS private key; no other role does.

pub mod access_log;
pub mod admission;
pub mod auth_basic;
pub mod body;
pub mod cert_export;
pub mod client_facts;
pub mod client_limits;
pub mod conditional;
pub mod error_document;
pub mod forwarding;
pub mod h1;
pub mod h2_activity;
pub mod h2_places;
pub mod handshake_stage;
pub mod hosts;
pub mod listing;
pub mod log_gate;
pub mod logged_body;
pub mod moved;
pub mod pool_client;
pub mod proxy_protocol;
pub mod proxy_trust;
pub mod reqtimeout;
pub mod request_body;
pub mod request_checks;
pub mod request_id;
pub mod response_spool;
pub mod router;
pub mod routes;
pub mod server;
pub mod site;
pub mod source;
pub mod spill;
pub mod stall_guard;
pub mod static_files;
pub mod status;
pub mod tls;
pub mod utc;
pub mod worker_connections;

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
    /// A PROXY protocol header precedes each connection.
    pub proxy_protocol: bool,
}

/// What the edge holds once the private key has been read and before privileges are dropped.
pub struct Prepared {
    /// The one TLS configuration, when every site shows the same certificate.
    tls: Option<Arc<rustls::ServerConfig>>,
    /// One per site, when sites show certificates of their own (chosen by SNI).
    host_tls: Option<Arc<hosts::HostTls>>,
    /// Each site's access log, by site number; sites naming one file share it.
    access_logs: Vec<Option<Arc<access_log::AccessLog>>>,
    /// The `AuthUserFile`s, read as the key is: before the privilege drop.
    auth: auth_basic::BasicAuth,
    /// The workers' identity, when it is not the edge's own (started as root).
    script_runner: Option<weir_wire::script_path::Runner>,
    /// Each site's certificate for its scripts (`SSLOptions +ExportCertData`), by site number.
    server_certs: Vec<Option<Arc<str>>>,
}

impl Prepared {
    /// Tells the edge which account runs scripts, for the permission check it makes from a
    /// request's head; without it, the edge's own identity is taken (one user runs everything).
    pub fn with_script_runner(mut self, uid: u32, gid: u32) -> Prepared {
        self.script_runner = Some(weir_wire::script_path::Runner { uid, gid });
        self
    }
}

/// Why the edge cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("CustomLog {path}: {source}")]
    AccessLog { path: String, source: std::io::Error },
    #[error("DocumentRoot {path}: {source}")]
    DocumentRoot { path: String, source: std::io::Error },
    #[error("SpillDir {dir}: the edge (uid {uid}) cannot create a spill file there: {source}")]
    SpillDir { dir: String, uid: u32, source: std::io::Error },
    #[error(transparent)]
    UserFile(#[from] weir_conf::auth::UserFileError),
    #[error("could not start the async runtime: {0}")]
    Runtime(std::io::Error),
}

/// Reads what needs privileges: the certificates and keys, the access log files, and the
/// `AuthUserFile`s.
pub fn prepare(config: &Config) -> Result<Prepared, EdgeError> {
    let https = config.listeners.iter().any(|l| l.scheme == ListenScheme::Https);
    let sites = config.sites();
    let identities: Vec<Option<hosts::TlsIdentity>> = sites.iter().map(tls_identity).collect();
    let main_identity = &identities[0];
    // Sites that can answer over TLS and show another certificate than the main server's.
    let own_certificates = sites
        .iter()
        .zip(&identities)
        .skip(1)
        .any(|(site, id)| site.ssl_engine != Some(false) && id != main_identity);
    let (tls, host_tls) = match (https, own_certificates) {
        (false, _) => (None, None),
        (true, false) => (Some(tls::server_config(&config.tls, &config.tls_options)?), None),
        (true, true) => {
            // One configuration per certificate, shared by the sites that show it.
            let mut built: Vec<(hosts::TlsIdentity, Arc<rustls::ServerConfig>)> = Vec::new();
            let mut configs = Vec::new();
            for (site, identity) in sites.iter().zip(&identities) {
                let Some(identity) = identity.clone().filter(|_| site.ssl_engine != Some(false)) else {
                    configs.push(None);
                    continue;
                };
                let site_config = match built.iter().find(|(id, _)| *id == identity) {
                    Some((_, config)) => config.clone(),
                    None => {
                        let made = tls::server_config(&site.tls, &config.tls_options)?;
                        built.push((identity, made.clone()));
                        made
                    }
                };
                configs.push(Some(site_config));
            }
            let map = weir_conf::vhost::VhostMap::new(config);
            (None, Some(Arc::new(hosts::HostTls::new(map, configs))))
        }
    };
    let mut opened: Vec<(std::path::PathBuf, Arc<access_log::AccessLog>)> = Vec::new();
    let mut access_logs = Vec::new();
    for site in &sites {
        let Some(path) = &site.custom_log else {
            access_logs.push(None);
            continue;
        };
        let log = match opened.iter().find(|(p, _)| p == path) {
            Some((_, log)) => log.clone(),
            None => {
                let log = access_log::AccessLog::open(
                    path,
                    site.custom_log_format,
                    site.custom_log_items.as_deref(),
                    site.server_name.as_deref().unwrap_or("localhost"),
                )
                .map_err(|source| EdgeError::AccessLog { path: path.display().to_string(), source })?;
                let log = Arc::new(log);
                opened.push((path.clone(), log.clone()));
                log
            }
        };
        access_logs.push(Some(log));
    }
    // Every site's <Location>, <Directory> and <Files> sections: a <VirtualHost>'s may name
    // user files of their own.
    let locations: Vec<weir_conf::location::Location> =
        sites.iter().flat_map(|site| site.locations.iter().chain(site.sections.rules()).cloned()).collect();
    let auth = auth_basic::BasicAuth::load(&locations, config.auth_failure_block)?;
    for (path, users) in auth.summary() {
        tracing::info!(file = %path.display(), users, "AuthUserFile {}: {users} users", path.display());
    }
    let server_certs = sites
        .iter()
        .map(|site| {
            let path = site.tls.cert_file.as_ref().filter(|_| site.export_cert_data)?;
            let cert = cert_export::server_cert(path);
            if cert.is_none() {
                tracing::warn!(
                    "SSLOptions +ExportCertData: no certificate could be read from {}",
                    path.display()
                );
            }
            cert
        })
        .collect();
    Ok(Prepared { tls, host_tls, access_logs, auth, script_runner: None, server_certs })
}

/// The files of a site's certificate, when it has one.
fn tls_identity(site: &weir_conf::vhost::VirtualHost) -> Option<hosts::TlsIdentity> {
    Some((site.tls.cert_file.clone()?, site.tls.key_file.clone()?, site.tls.chain_file.clone()))
}

/// The edge's entry point, after [`prepare`] and the privilege drop: serves until SIGTERM or
/// SIGINT, drains, and returns. `ready` gets one byte once every listener is accepting.
pub fn run(
    config: Arc<Config>,
    prepared: Prepared,
    listeners: Vec<InheritedListener>,
    pool_socket: std::path::PathBuf,
    handler_paths: Vec<String>,
    scoreboard: weir_scoreboard::Scoreboard,
    ready: Option<OwnedFd>,
) -> Result<(), EdgeError> {
    let hosts = site_hosts(&config, &prepared, &handler_paths)?;
    let limits = &config.edge;
    let spill = spill::SpillSpace::new(config.spill_dir.clone(), config.spill_limit, config.spill_share());
    // Run after the privilege drop, as the identity that will spill: a SpillDir it cannot write
    // would otherwise show only at the first large body (a broken upload, a response stuck
    // waiting), so the edge refuses to start instead.
    if let Err(source) = spill.file(source::Source::of(std::net::Ipv4Addr::UNSPECIFIED.into())) {
        return Err(EdgeError::SpillDir {
            dir: spill.dir_name(),
            uid: nix::unistd::Uid::effective().as_raw(),
            source,
        });
    }
    let site = Arc::new(Site {
        hosts,
        pool: pool_client::PoolClient::new(
            pool_socket,
            config.timeout,
            config.pool.max_request_workers,
            Some(scoreboard),
            spill.clone(),
            limits.head_limits(),
        ),
        admission: admission::Admission::new(config.pool.max_request_workers, limits.queue_timeout),
        rate: limits.rate_limit.and_then(client_limits::RequestRate::new),
        server_header: http::HeaderValue::from_str(&config.server_tokens.product())
            .unwrap_or_else(|_| http::HeaderValue::from_static("weir")),
        header_rules: limits.headers.clone(),
        signature: limits.server_signature,
        server_admin: config.server_admin.clone(),
        trace_enable: limits.trace_enable,
        limit_request_body: config.limit_request_body,
        auth: prepared.auth,
        spill,
        scoreboard,
        status_host: config.server_name.clone().unwrap_or_else(|| "localhost".to_string()),
        sizing_reserve: config.sizing_reserve,
        max_request_workers: config.pool.max_request_workers,
    });
    let h1 = h1::conn::H1Settings {
        limits: h1::head::Limits {
            request_line: limits.limit_request_line,
            field_size: limits.limit_request_field_size,
            fields: limits.limit_request_fields,
        },
        read_timeout: limits.read_timeout,
        keep_alive: limits.keep_alive,
        keep_alive_timeout: limits.keep_alive_timeout,
        max_keep_alive_requests: limits.max_keep_alive_requests,
        limit_request_body: config.limit_request_body,
        body_read_timeout: config.timeout,
    };
    let edge = Arc::new(server::Edge::new(
        site.clone(),
        h1,
        limits.read_timeout.handshake,
        config.timeout,
        connection_limits(&config),
    ));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("weir-edge")
        .build()
        .map_err(EdgeError::Runtime)?;
    let acceptor = prepared.tls.map(TlsAcceptor::from);
    let host_tls = prepared.host_tls;
    let trust = Arc::new(proxy_trust::ProxyTrust::new(config.trusted_proxies.clone()));
    runtime.block_on(async move {
        let mut sockets = Vec::new();
        for listener in listeners {
            let _ = listener.socket.set_nonblocking(true);
            let proxy = listener.proxy_protocol.then(|| trust.clone());
            if proxy.is_some() {
                let at = listener.socket.local_addr().map_or_else(|_| "?".to_string(), |a| a.to_string());
                tracing::info!(
                    listener = %at,
                    "PROXY protocol on {at}: the header is required, and believed only from RemoteIPTrustedProxy {trust}"
                );
            }
            match tokio::net::TcpListener::from_std(listener.socket) {
                Ok(socket) => {
                    let https = listener.scheme == ListenScheme::Https;
                    sockets.push(server::Listener {
                        socket,
                        tls: https.then(|| acceptor.clone()).flatten(),
                        host_tls: https.then(|| host_tls.clone()).flatten(),
                        proxy,
                    })
                }
                Err(error) => tracing::error!(%error, "edge could not use a listening socket"),
            }
        }
        let (Ok(mut term), Ok(mut int)) = (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
        else {
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
        if site.rate.is_some() {
            // Addresses whose budget is whole again are forgotten, so memory stays bounded.
            let site = site.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    if let Some(rate) = &site.rate {
                        rate.forget_idle();
                    }
                }
            });
        }
        server::serve(sockets, edge, shutdown, config.graceful_shutdown_timeout).await;
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(())
}

/// Each site's router (its DocumentRoot, script directories, `<Location>`s) and access log, by
/// site number. No site sends a file from any site's script directory.
fn site_hosts(
    config: &Config,
    prepared: &Prepared,
    handler_paths: &[String],
) -> Result<hosts::Hosts, EdgeError> {
    let sites = config.sites();
    let every_script_dir: Vec<weir_conf::alias::Region> = sites
        .iter()
        .flat_map(|site| {
            let script_aliases = site
                .script_aliases
                .iter()
                .map(|alias| weir_conf::alias::Region::directory(alias.dir.clone()));
            let script_matches = site
                .url_aliases
                .iter()
                .filter(|alias| alias.kind == weir_conf::alias::AliasKind::Scripts)
                .map(|alias| alias.region());
            script_aliases.chain(script_matches)
        })
        .collect();
    let types: Arc<[(String, String)]> = config.add_types.clone().into();
    let mut built = Vec::new();
    for (number, site) in sites.iter().enumerate() {
        let root = static_files::canonical_root(&site.document_root).map_err(|source| {
            EdgeError::DocumentRoot { path: site.document_root.display().to_string(), source }
        })?;
        let mut routes = routes::PoolRoutes::for_site(config, site, handler_paths.to_vec());
        if let Some(runner) = prepared.script_runner {
            routes.runner = runner;
        }
        let static_files = static_files::StaticFiles {
            root,
            index: site.directory_index.clone(),
            routes: routes.clone(),
            types: types.clone(),
        };
        let router = router::Router::new(routes, static_files, with_default_status(&site.locations))
            .refusing_script_dirs(&every_script_dir)
            .with_sections(site.sections.clone(), &site.document_root)
            .with_redirects(site.redirects.clone());
        built.push(hosts::HostSite {
            router,
            access_log: prepared.access_logs.get(number).cloned().flatten(),
            error_documents: site.error_documents.clone(),
            location_documents: site.locations.iter().any(|l| !l.error_documents.is_empty()),
            export_cert_data: prepared
                .server_certs
                .get(number)
                .cloned()
                .flatten()
                .map(|server_cert| cert_export::ExportCertData { server_cert }),
            own_error_log: number > 0 && site.error_log.is_some() && site.error_log != config.error_log,
            label: site.label(),
            tls_identity: tls_identity(site),
        });
    }
    Ok(hosts::Hosts::new(weir_conf::vhost::VhostMap::new(config), built))
}

/// MaxConnections and MaxConnectionsPerIP, `auto` measured in this process, and logged.
fn connection_limits(config: &Config) -> Arc<client_limits::ConnectionLimits> {
    let capacity = client_limits::Capacity::of_this_process(config.pool.max_request_workers);
    let (total, per_source) =
        client_limits::resolve(config.edge.max_connections, config.edge.max_connections_per_ip, &capacity);
    tracing::info!(
        max_connections = total,
        max_connections_per_ip = per_source,
        descriptors = capacity.descriptors,
        "connection limits: MaxConnections {total}, MaxConnectionsPerIP {per_source} (0: no limit)"
    );
    client_limits::ConnectionLimits::new(total, per_source)
}

/// The configured `<Location>`s, with `/server-status` for loopback clients added when none
/// names the status handler (as Debian's status.conf does for Apache).
fn with_default_status(locations: &[weir_conf::location::Location]) -> Vec<weir_conf::location::Location> {
    use weir_conf::location::{Location, Require};
    let mut all = locations.to_vec();
    if !all.iter().any(|l| l.handler.as_deref() == Some("server-status")) {
        all.push(Location {
            handler: Some("server-status".to_string()),
            require: vec![Require::Local],
            ..Location::at("/server-status")
        });
    }
    all
}

fn unblock_signals() {
    use nix::sys::signal::{SigSet, SigmaskHow};
    // Only this (the main) thread unblocks: runtime threads keep the inherited mask, so the
    // process's signals are delivered here, where tokio's handlers record them.
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}
