//! weir: a hardened edge gateway with a bundled prefork backend, in one binary.
//!
//! This crate composes the parts and runs the supervisor: the process that binds the listening
//! sockets, forks the pool master (before any private key is read) and the edge, and keeps them
//! alive. It is also the embedding API: [`Server`] runs a whole weir from a [`Config`].
//!
//! The supervisor is single-threaded and forks; it never starts a thread.
//!
//! # An application on weir
//!
//! Code that must not share a process — a C library that is not thread-safe, say — goes in a
//! [`Handler`]. Each worker gets its own copy, opens what it needs in [`Handler::init`], answers
//! one request at a time, and closes up in [`Handler::exit`]. The application's binary gets weir's
//! whole command line (`run -f FILE`, `configtest`) from [`cli::main_with`]:
//!
//! ```no_run
//! use weir::{Handler, Request, Response};
//!
//! /// Counts the readings one worker has taken, in state no other process can touch.
//! struct Meter {
//!     readings: u64,
//! }
//!
//! impl Handler for Meter {
//!     fn init(&mut self) {
//!         // Once per worker, before its first request: open the C library here.
//!         self.readings = 0;
//!     }
//!
//!     fn handle(&mut self, request: &Request) -> Response {
//!         if request.method != "POST" {
//!             return Response::text(405, "POST a reading\n");
//!         }
//!         self.readings += 1;
//!         Response::text(201, format!("reading {} of {} bytes taken\n", self.readings, request.body.len()))
//!             .with_header("Cache-Control", "no-store")
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     // Requests for /meter and below go to the pool; everything else is weir's as usual.
//!     weir::cli::main_with(|server| server.handler("/meter", Meter { readings: 0 }))
//! }
//! ```
//!
//! `examples/ledger` is a complete telemetry-ingest application built this way.

mod certs;
mod checks;
pub mod cli;
mod default_site;
mod errorlog;
mod notify;
mod reload_rules;
mod reload_status;
mod roles;
mod runtime_files;
mod site_logs;
mod sockets;
mod supervisor;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use weir_apps::{Handler, Request, Response, TlsFacts};
pub use weir_conf::{Config, ConfigErrors};
use weir_prefork::privileges::Identities;
use weir_prefork::signals::SignalReader;
use weir_prefork::Scoreboard;

/// Exit status for a start-up failure (bind, certificates, permissions).
pub const EXIT_STARTUP: i32 = 1;
/// Exit status for a bad command line or configuration.
pub const EXIT_CONFIG: i32 = 64;

/// Loads the configuration in `file`, or the built-in default (its paths under a directory of
/// its own: see `default_site`).
pub fn load_config(file: Option<&Path>) -> Result<Config, ConfigErrors> {
    match file {
        Some(file) => Config::load(file),
        None => {
            let home = default_site::home().map_err(|problem| {
                ConfigErrors(vec![weir_conf::ConfigError {
                    file: PathBuf::from("(built-in default)"),
                    line: 0,
                    directive: None,
                    problem: weir_conf::Problem::Contradiction(problem),
                }])
            })?;
            Config::builtin(&home)
        }
    }
}

/// A whole weir: supervisor, edge, pool master and workers.
pub struct Server {
    config: Arc<Config>,
    /// Application handlers and their paths; they run only in workers.
    handlers: Vec<(String, Box<dyn Handler>)>,
}

impl Server {
    pub fn new(config: Config) -> Self {
        Server { config: Arc::new(config), handlers: Vec::new() }
    }

    /// Registers `handler` on `path`: requests for the path and below it go to the pool, where a
    /// worker calls the handler (see [`Handler`]).
    pub fn handler(mut self, path: &str, handler: impl Handler + 'static) -> Self {
        self.handlers.push((path.to_string(), Box::new(handler)));
        self
    }

    /// Runs until SIGTERM or SIGINT. Returns the process exit status.
    pub fn run(self) -> i32 {
        errorlog::init(match self.config.log_level {
            weir_conf::LogLevel::Error => tracing::Level::ERROR,
            weir_conf::LogLevel::Warn => tracing::Level::WARN,
            weir_conf::LogLevel::Notice => tracing::Level::INFO,
            weir_conf::LogLevel::Debug => tracing::Level::DEBUG,
        });
        let config = self.config;
        let identities = match resolve_identities(&config) {
            Ok(identities) => identities,
            Err(message) => {
                tracing::error!("{message}");
                return EXIT_STARTUP;
            }
        };
        // Before root opens any log: a directory the roles could write to is refused.
        if let Err(message) = check_log_dirs(&config, identities.as_ref()) {
            tracing::error!("{message}");
            return EXIT_STARTUP;
        }
        // The edge checks again after it drops privileges; this says it before anything starts.
        if let Err(message) = checks::spill_dir(&config, identities.as_ref())
            .and_then(|()| checks::document_root_for_edge(&config, identities.as_ref()))
        {
            tracing::error!("{message}");
            return EXIT_STARTUP;
        }
        for warning in checks::script_dirs_for_edge(&config, identities.as_ref()) {
            tracing::warn!("{warning}");
        }
        if let Some(path) = &config.error_log {
            if let Err(error) = errorlog::redirect_stderr(path) {
                tracing::error!("ErrorLog {}: {error}", path.display());
                return EXIT_STARTUP;
            }
        }
        if let Err(message) = site_logs::open(&config) {
            tracing::error!("{message}");
            return EXIT_STARTUP;
        }
        match prepare_and_run(config, self.handlers, identities) {
            Ok(code) => code,
            Err(message) => {
                tracing::error!("{message}");
                EXIT_STARTUP
            }
        }
    }
}

fn prepare_and_run(
    config: Arc<Config>,
    handlers: Vec<(String, Box<dyn Handler>)>,
    identities: Option<Identities>,
) -> Result<i32, String> {
    raise_nofile_limit();
    weir_prefork::privileges::harden_supervisor();
    report_protections(identities.as_ref());
    let untrusted = runtime_files::Untrusted::of(identities.as_ref());
    if config.source == weir_conf::Source::BuiltIn {
        let home = &config.server_root;
        default_site::materialize(&config, home).map_err(|e| {
            format!("could not create the built-in default's site in {}: {e}", home.display())
        })?;
        tracing::info!("built-in default: its site, certificate and runtime files are in {}", home.display());
    }
    runtime_files::prepare_runtime_dir(&config.runtime_dir, untrusted).map_err(|e| e.to_string())?;
    let pid_file = runtime_files::write_pid_file(&config.pid_file, untrusted).map_err(|e| e.to_string())?;
    let listeners = sockets::bind_all(&config.listeners).map_err(|e| e.to_string())?;
    let edge_account = identities.as_ref().map(|ids| &ids.edge);
    let (pool_listener, pool_socket) =
        sockets::pool_listener(&config.runtime_dir, "pool-1.sock", edge_account)
            .map_err(|e| e.to_string())?;
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    // Before any fork, so every process shares the one mapping.
    let scoreboard = Scoreboard::create(config.pool.server_limit)
        .map_err(|e| format!("could not create the scoreboard: {e}"))?;
    let mut signals = SignalReader::new().map_err(|e| format!("could not set up signal handling: {e}"))?;
    let config_path = match &config.source {
        weir_conf::Source::File(path) => Some(path.clone()),
        weir_conf::Source::BuiltIn => None,
    };
    let supervisor = supervisor::Supervisor {
        config_path,
        config,
        handler_paths: handlers.iter().map(|(path, _)| path.clone()).collect(),
        handlers,
        identities,
        listeners,
        pool_listener,
        pool_socket,
        scoreboard,
        pid_file,
    };
    Ok(supervisor.run(&mut signals))
}

/// The roles' accounts from `User`, `Group`, `EdgeUser` and `EdgeGroup`; `None` when weir does
/// not run as root.
pub(crate) fn resolve_identities(config: &Config) -> Result<Option<Identities>, String> {
    Identities::resolve(
        config.user.as_deref(),
        config.group.as_deref(),
        config.edge_user.as_deref(),
        config.edge_group.as_deref(),
        config.unsafe_allow_user_root,
    )
    .map_err(|e| e.to_string())
}

/// Started as root: the directories of ErrorLog and CustomLog are closed to the roles'
/// identities (see `runtime_files::check_log_dir`).
pub(crate) fn check_log_dirs(config: &Config, identities: Option<&Identities>) -> Result<(), String> {
    let Some(untrusted) = runtime_files::Untrusted::of(identities) else {
        return Ok(());
    };
    for (what, path) in [("ErrorLog", &config.error_log), ("CustomLog", &config.custom_log)] {
        if let Some(path) = path {
            runtime_files::check_log_dir(what, path, untrusted).map_err(|e| e.to_string())?;
        }
    }
    // Each <VirtualHost>'s access log is opened by root in the edge, as the main one is.
    for path in config.vhosts.iter().filter_map(|vhost| vhost.custom_log.as_ref()) {
        runtime_files::check_log_dir("CustomLog", path, untrusted).map_err(|e| e.to_string())?;
    }
    // And its ErrorLog by the supervisor, as the main one is.
    for path in config.vhosts.iter().filter_map(|vhost| vhost.error_log.as_ref()) {
        runtime_files::check_log_dir("ErrorLog", path, untrusted).map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// Says at start which identity each role takes, and which protections are off.
fn report_protections(identities: Option<&Identities>) {
    for line in checks::privilege_report(identities) {
        match line {
            checks::Report::Notice(text) => tracing::info!("{text}"),
            checks::Report::Warning(text) => tracing::warn!("{text}"),
        }
    }
}

/// Raises the soft RLIMIT_NOFILE to the hard limit: every held connection is a descriptor.
fn raise_nofile_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}
