//! The two roles the supervisor forks: the pool master and the edge. Each is a function that
//! never returns.

use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;

use weir_apps::cgi::CgiSettings;
use weir_apps::{Handler, HttpWorker};
use weir_conf::Config;
use weir_edge::InheritedListener;
use weir_prefork::master::{self, PoolSettings};
use weir_prefork::privileges::{self, Account, Identities};
use weir_prefork::Scoreboard;

use crate::sockets::BoundListener;

/// The pool master's life: forks workers that accept on `listener`. Never reads a key.
pub fn pool_master(
    config: &Config,
    scoreboard: Scoreboard,
    (generation, slot_owner): (u32, u32),
    listener: &UnixListener,
    account: Option<Account>,
    ready: OwnedFd,
    handlers: Vec<(String, Box<dyn Handler>)>,
) -> ! {
    let pool = &config.pool;
    let settings = PoolSettings {
        start_servers: pool.start_servers,
        min_spare_servers: pool.min_spare_servers,
        max_spare_servers: pool.max_spare_servers,
        max_request_workers: pool.max_request_workers,
        max_connections_per_child: pool.max_connections_per_child,
        max_memory_per_child: pool.max_memory_per_child,
        timeout: config.timeout,
        graceful_shutdown_timeout: config.graceful_shutdown_timeout,
        account,
        rlimits: config.rlimits,
        log_fds: crate::site_logs::descriptors(),
        generation,
        slot_owner,
    };
    let mut handler = HttpWorker::new(CgiSettings::from_config(config), config.edge.head_limits(), handlers)
        .with_sites(CgiSettings::for_every_site(config))
        .showing_query_strings(config.status_query_strings);
    let listener = match listener.try_clone() {
        Ok(listener) => OwnedFd::from(listener),
        Err(error) => {
            tracing::error!(%error, "pool master could not take the pool socket");
            std::process::exit(1);
        }
    };
    master::run(settings, scoreboard, listener, Some(ready), &mut handler)
}

/// The edge's life: reads the certificate and key, drops privileges, then serves.
pub fn edge(
    config: Arc<Config>,
    listeners: &[BoundListener],
    pool_socket: PathBuf,
    handler_paths: Vec<String>,
    scoreboard: Scoreboard,
    identities: Option<Identities>,
    ready: OwnedFd,
) -> ! {
    let account = identities.as_ref().map(|ids| ids.edge.clone());
    let prepared = match weir_edge::prepare(&config) {
        // The edge judges from a request's head whether the workers' account may run a script.
        Ok(prepared) => match &identities {
            Some(ids) => prepared.with_script_runner(ids.workers.uid.as_raw(), ids.workers.gid.as_raw()),
            None => prepared,
        },
        Err(error) => {
            tracing::error!("edge cannot start: {error}");
            std::process::exit(1);
        }
    };
    if let Err(error) = privileges::drop_to(account.as_ref()) {
        tracing::error!(%error, "edge could not drop privileges");
        std::process::exit(1);
    }
    let mut inherited = Vec::new();
    for listener in listeners {
        match listener.socket.try_clone() {
            Ok(socket) => inherited.push(InheritedListener {
                socket,
                scheme: listener.scheme,
                proxy_protocol: listener.proxy_protocol,
            }),
            Err(error) => tracing::error!(%error, "edge could not take a listening socket"),
        }
    }
    match weir_edge::run(config, prepared, inherited, pool_socket, handler_paths, scoreboard, Some(ready)) {
        Ok(()) => std::process::exit(0),
        Err(error) => {
            tracing::error!("edge stopped: {error}");
            std::process::exit(1);
        }
    }
}

/// Descriptors each role keeps across the fork.
pub fn edge_fds(listeners: &[BoundListener], ready: &OwnedFd) -> Vec<i32> {
    let mut keep: Vec<i32> = listeners.iter().map(|l| l.socket.as_raw_fd()).collect();
    keep.push(ready.as_raw_fd());
    keep
}
