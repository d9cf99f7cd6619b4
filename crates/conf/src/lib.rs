//! weir-conf: reads weir's configuration, written in Apache httpd's syntax, into a typed and
//! validated [`Config`].
//!
//! Runs in the supervisor (and in `weir configtest`), before anything is bound or forked. It starts
//! no threads, forks nothing and binds nothing: loading a config only reads files.
//!
//! Two stages, as in Apache: [`syntax`] turns text into a tree of directives with their file and
//! line; [`directives`] holds the one table of known directives, each applying its arguments to the
//! typed [`Config`]. Every bad line is collected, so one run reports them all.

pub mod alias;
pub mod auth;
pub mod ciphers;
mod config;
mod define;
mod directives;
pub mod directory;
pub mod edge;
mod error;
pub mod error_document;
pub mod location;
pub mod log_format;
mod pool_rules;
mod refused;
mod remote_ip;
mod syntax;
mod values;
pub mod vhost;

#[cfg(test)]
mod bad_configs;

pub use config::{
    Config, ListenScheme, Listener, LogFormat, LogLevel, Pool, RLimit, RLimitValue, RLimits, ScriptAlias,
    ServerTokens, Source, Tls, GRACE_PAST_TIMEOUT,
};
pub use error::{ConfigError, ConfigErrors, Problem};

/// The configuration `weir run` uses when no file is given: HTTPS on 127.0.0.1:8443 with a
/// self-signed certificate generated under `certs/`, a small document root under `htdocs/`, and
/// the bundled pool. Relative paths are taken from the current directory.
pub const BUILTIN_DEFAULT: &str = include_str!("builtin.conf");
