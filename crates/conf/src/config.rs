//! Stage two: the typed, validated configuration every process reads.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crate::directives;
use crate::edge::{EdgeLimits, TlsOptions, VerifyClient};
use crate::error::{ConfigError, ConfigErrors, Problem};
use crate::location::{IpNet, Location};
use crate::pool_rules::{self, PoolInput};
use crate::syntax::{self, Span};

/// Where a configuration came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Read from this file (as given on the command line).
    File(PathBuf),
    /// weir's built-in default ([`crate::BUILTIN_DEFAULT`]).
    BuiltIn,
}

/// What a listening socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenScheme {
    /// TLS, then HTTP/1.1 or h2 by ALPN.
    Https,
    /// Plain HTTP/1.1.
    Http,
}

/// One `Listen` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// Address to bind; port 0 asks the kernel for a free one (tests use this).
    pub addr: SocketAddr,
    /// What the socket speaks.
    pub scheme: ListenScheme,
    /// A PROXY protocol (v1 or v2) header comes first, from a load balancer in front (one that
    /// `RemoteIPTrustedProxy` names).
    pub proxy_protocol: bool,
    /// Where the `Listen` line is, for the errors that concern this listener.
    pub(crate) span: Option<Span>,
}

/// The server certificate.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// PEM certificate chain, leaf first.
    pub cert_file: Option<PathBuf>,
    /// PEM private key. Read only by the edge, never by the supervisor or the pool.
    pub key_file: Option<PathBuf>,
    /// `SSLCertificateChainFile`: intermediate certificates sent after the leaf (Apache's
    /// older form; a chain inside SSLCertificateFile works too).
    pub chain_file: Option<PathBuf>,
    /// Generate a self-signed pair at these paths when both files are missing. Only the built-in
    /// default asks for this, so a typo in an operator's path is an error, not a new certificate.
    pub generate_self_signed: bool,
}

/// The prefork pool's sizing, in Apache's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pool {
    /// Workers forked at start.
    pub start_servers: usize,
    /// Fewer idle workers than this and the master forks more.
    pub min_spare_servers: usize,
    /// More idle workers than this and the master retires some.
    pub max_spare_servers: usize,
    /// Most requests in the pool at once, and so most workers.
    pub max_request_workers: usize,
    /// Upper bound for MaxRequestWorkers: the number of scoreboard slots.
    pub server_limit: usize,
    /// Requests a worker serves before it is replaced; 0 means never.
    pub max_connections_per_child: u64,
    /// `MaxMemoryPerChild` (weir): PSS in bytes above which a worker is retired; 0: no limit.
    pub max_memory_per_child: u64,
}

impl Default for Pool {
    fn default() -> Self {
        // Apache 2.4's compiled-in prefork defaults.
        Pool {
            start_servers: 5,
            min_spare_servers: 5,
            max_spare_servers: 10,
            max_request_workers: 256,
            server_limit: 256,
            max_connections_per_child: 0,
            max_memory_per_child: 0,
        }
    }
}

/// `ServerTokens`: how much the `Server` header and SERVER_SOFTWARE say about the software.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerTokens {
    /// `weir` (the default: a public appliance names no version).
    #[default]
    Prod,
    /// `weir/0`.
    Major,
    /// `weir/0.1`.
    Minor,
    /// `weir/0.1.0`.
    Min,
    /// `weir/0.1.0 (Unix)`.
    Os,
    /// `weir/0.1.0 (Unix)`; weir has no modules to list.
    Full,
}

impl ServerTokens {
    /// The product string for this setting.
    pub fn product(self) -> String {
        let version = env!("CARGO_PKG_VERSION");
        let mut parts = version.split('.');
        let major = parts.next().unwrap_or("0");
        let minor = parts.next().unwrap_or("0");
        match self {
            ServerTokens::Prod => "weir".to_string(),
            ServerTokens::Major => format!("weir/{major}"),
            ServerTokens::Minor => format!("weir/{major}.{minor}"),
            ServerTokens::Min => format!("weir/{version}"),
            ServerTokens::Os | ServerTokens::Full => format!("weir/{version} (Unix)"),
        }
    }
}

/// One bound of an `RLimit*` directive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RLimitValue {
    /// `max`: as high as the system allows (the hard limit weir was started with).
    Max,
    /// A number: seconds for CPU, bytes for memory, processes for NPROC.
    Value(u64),
}

/// `RLimitCPU|RLimitMEM|RLimitNPROC soft [hard]`, as Apache reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RLimit {
    pub soft: RLimitValue,
    /// When not given, the hard limit is left as it is.
    pub hard: Option<RLimitValue>,
}

/// The resource limits applied to workers and the scripts they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RLimits {
    /// RLIMIT_CPU, seconds.
    pub cpu: Option<RLimit>,
    /// RLIMIT_AS, bytes.
    pub mem: Option<RLimit>,
    /// RLIMIT_NPROC, processes of the run-as user.
    pub nproc: Option<RLimit>,
}

/// `LogLevel`, in Apache's words; weir's lines are error, warn, notice (lifecycle) and debug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub enum LogLevel {
    Error,
    Warn,
    #[default]
    Notice,
    Debug,
}

/// The access log's line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Combined Log Format (Apache's "combined").
    #[default]
    Combined,
    /// Common Log Format.
    Common,
    /// One JSON object per line, with weir's extra figures.
    Json,
}

/// `ScriptAlias URL-path directory`: requests under the URL path run scripts from the directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptAlias {
    /// URL prefix, as written (Apache matches it literally).
    pub url_prefix: String,
    /// Directory holding the scripts.
    pub dir: PathBuf,
}

/// Default `LimitRequestBody`: 64 MiB. Apache's 1 GiB lets a few clients fill the spill space;
/// nginx's 1 MiB refuses the firmware images and log bundles devices upload. A body costs the
/// edge at most 256 KiB of memory (the rest goes to SpillDir), so this bounds disk and worker
/// time per request, and sixteen bodies of this size fit in the default SpillLimit.
pub const DEFAULT_LIMIT_REQUEST_BODY: u64 = 64 << 20;

/// Default `SpillLimit`: 1 GiB, room for sixteen largest default bodies or slow-read responses
/// at once, a bounded share of an appliance's disk. When SpillDir is on tmpfs the spilled bytes
/// are memory: then lower it or point SpillDir at a disk.
pub const DEFAULT_SPILL_LIMIT: u64 = 1 << 30;

/// The share of SpillLimit one source (an IPv4 address, an IPv6 /64) may hold when
/// `SpillLimitPerSource` is not set: a quarter. One source then never holds more than 256 MiB of
/// the default 1 GiB, so three quarters stay for everyone else however many connections it
/// opens, while one client still fits a body four times the default LimitRequestBody.
pub const SPILL_SHARE_DIVISOR: u64 = 4;

/// The default GracefulShutdownTimeout is Timeout plus this: a worker's request is killed as
/// hung one second past Timeout (and SIGKILLed a second later), and the edge still has to pass
/// the answer on; so a reload or stop with the defaults lets every request the pool would let
/// finish, finish.
pub const GRACE_PAST_TIMEOUT: Duration = Duration::from_secs(5);

/// A whole, validated configuration. Immutable once loaded; processes share it by `Arc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where it came from.
    pub source: Source,
    /// Relative paths are taken from here: the config file's directory, or the current
    /// directory for the built-in default.
    pub server_root: PathBuf,
    /// Sockets to listen on.
    pub listeners: Vec<Listener>,
    /// Name used in redirects and CGI's SERVER_NAME.
    pub server_name: Option<String>,
    /// `ServerAlias` names; only a `<VirtualHost>` has them.
    pub server_aliases: Vec<String>,
    /// `<VirtualHost>` sections, merged with the main server, in order of appearance.
    pub vhosts: Vec<crate::vhost::VirtualHost>,
    /// The sections as read, merged into `vhosts` once the whole file is read.
    pub(crate) vhost_inputs: Vec<crate::vhost::VhostInput>,
    /// True while this configuration holds one `<VirtualHost>`'s own directives.
    pub(crate) in_vhost: bool,
    /// Inside a `<VirtualHost>`: the directives it set, which it does not inherit.
    pub(crate) applied: Vec<&'static str>,
    /// Root of the static files the edge serves.
    pub document_root: PathBuf,
    /// Files tried, in order, for a request naming a directory.
    pub directory_index: Vec<String>,
    /// Server certificate and key.
    pub tls: Tls,
    /// Pool sizing.
    pub pool: Pool,
    /// `User`: the account workers (and so scripts and Handlers) run as when started as root.
    pub user: Option<String>,
    /// `Group`: the workers' group.
    pub group: Option<String>,
    /// `EdgeUser` (weir): the edge's own account when started as root, distinct from `User`, so
    /// code in workers can neither signal nor trace the process that holds the TLS key.
    pub edge_user: Option<String>,
    /// `EdgeGroup` (weir): the edge's group.
    pub edge_group: Option<String>,
    /// `UnsafeAllowUserRoot` (weir): lets `User` be root, which Apache refuses and weir refuses
    /// without it; for development only, and warned about on every start.
    pub unsafe_allow_user_root: bool,
    /// Where the supervisor writes its pid.
    pub pid_file: PathBuf,
    /// Directory for the pool's Unix socket and the bound-address file.
    pub runtime_dir: PathBuf,
    /// Error log file; `None` means standard error.
    pub error_log: Option<PathBuf>,
    /// `LogLevel`: the least severe error-log lines written.
    pub log_level: LogLevel,
    /// Access log file; `None` means no access log.
    pub custom_log: Option<PathBuf>,
    /// `CustomLog FILE combined|common|json`.
    pub custom_log_format: LogFormat,
    /// How long a worker may take over one request, and other I/O waits.
    pub timeout: Duration,
    /// How long a stop or reload waits for requests in flight before killing what is left.
    /// Unless set, [`GRACE_PAST_TIMEOUT`] more than `timeout`, so a reload never cuts a request
    /// the pool itself would have let finish.
    pub graceful_shutdown_timeout: Duration,
    /// `GracefulShutdownTimeout` as written, if it was.
    pub(crate) graceful_shutdown_input: Option<Duration>,
    /// Largest request body accepted, in bytes; 0 means no limit.
    pub limit_request_body: u64,
    /// `SpillDir` (weir): where request and response bodies too large for the edge's memory
    /// are kept, in unnamed files; `None`: the system's temporary directory.
    pub spill_dir: Option<PathBuf>,
    /// `SpillLimit` (weir): most bytes of spilled bodies at once, across the edge.
    pub spill_limit: u64,
    /// `SpillLimitPerSource` (weir): most of those bytes one source may hold; `None`: a quarter
    /// of SpillLimit (see [`Config::spill_share`]).
    pub spill_limit_per_source: Option<u64>,
    /// Script directories, longest URL prefix first.
    pub script_aliases: Vec<ScriptAlias>,
    /// `CGIInterpreter .ext /path/to/interpreter`: files with the extension, under DocumentRoot
    /// or a ScriptAlias directory, run through the interpreter in a worker (php-cgi for `.php`).
    pub cgi_interpreters: Vec<(String, PathBuf)>,
    /// `Alias`, `AliasMatch`, `ScriptAliasMatch`, in order of appearance (the first match wins).
    pub url_aliases: Vec<crate::alias::AliasRule>,
    /// The `Redirect` family, in order of appearance; tried before any alias.
    pub redirects: Vec<crate::alias::RedirectRule>,
    /// What the `Server` header and SERVER_SOFTWARE say.
    pub server_tokens: ServerTokens,
    /// `StatusQueryStrings` (weir): whether server-status shows the query strings of the
    /// request lines it lists. Off by default: they carry tokens and session ids, and a
    /// worker's last request line stays on the page after the request ended.
    pub status_query_strings: bool,
    /// Resource limits for workers and scripts.
    pub rlimits: RLimits,
    /// `<Location>` sections (server-status and its access rules).
    pub locations: Vec<Location>,
    /// `<Directory>`, `<Files>` and their Match forms, in order of appearance.
    pub sections: crate::directory::Sections,
    /// `AuthFailureBlock` (weir): failed password checks that block a source; `None`: off.
    pub auth_failure_block: Option<crate::auth::FailureBlock>,
    /// What the edge enforces on clients.
    pub edge: EdgeLimits,
    /// `RemoteIPTrustedProxy`: the peers whose PROXY protocol header is believed on listeners with
    /// `proxy-protocol`; such a listener closes a connection from any other peer.
    pub trusted_proxies: Vec<IpNet>,
    /// `SizingReserve` (weir): memory the sizing advice keeps back for everything but workers.
    pub sizing_reserve: u64,
    /// TLS versions, client certificates, tickets, ALPN.
    pub tls_options: TlsOptions,
    /// Settings that were corrected or look risky: printed by configtest, logged at start.
    pub warnings: Vec<String>,
    /// `ServerAdmin`: the address CGI's SERVER_ADMIN and `ServerSignature EMail` give.
    pub server_admin: Option<String>,
    /// `SSLEngine` as written; the `Listen` line's scheme decides TLS. In a `<VirtualHost>`,
    /// `on` serves the site only over TLS and `off` only over plain HTTP.
    pub ssl_engine: Option<bool>,
    /// `AddType`: extension (lower case, no dot) to media type, before the built-in table.
    pub add_types: Vec<(String, String)>,
    /// `AddHandler cgi-script .ext…`: files with these extensions (with their dot), under
    /// DocumentRoot or a ScriptAlias directory, run as CGI programs themselves.
    pub cgi_script_extensions: Vec<String>,
    /// `ErrorDocument`s of the main server (each `<VirtualHost>` merges its own over them).
    pub error_documents: crate::error_document::ErrorDocuments,
    /// `LogFormat "format" nickname`, in the order given.
    pub log_formats: Vec<(String, Vec<crate::log_format::LogItem>)>,
    /// `CustomLog file nickname|"format"` with a format of its own (not combined, common or json).
    pub custom_log_items: Option<Vec<crate::log_format::LogItem>>,
    /// `Define`d variables, while the configuration is read (for `${NAME}` and `<IfDefine>`).
    pub(crate) defines: crate::define::Defines,
    /// The prefork directives as written, corrected into `pool` at the end of loading.
    pub(crate) pool_input: PoolInput,
}

impl Config {
    /// `text` as if read from /etc/weir/weir.conf, for the crate's unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(text: &str) -> Result<Config, ConfigErrors> {
        Config::from_text(
            text,
            Path::new("/etc/weir/weir.conf"),
            Source::File("/etc/weir/weir.conf".into()),
            PathBuf::from("/etc/weir"),
        )
    }

    /// The defaults before any directive is applied; relative paths resolve against `server_root`.
    pub(crate) fn defaults(source: Source, server_root: PathBuf) -> Self {
        Config {
            source,
            listeners: Vec::new(),
            server_name: None,
            server_aliases: Vec::new(),
            vhosts: Vec::new(),
            vhost_inputs: Vec::new(),
            in_vhost: false,
            applied: Vec::new(),
            error_documents: Default::default(),
            document_root: server_root.join("htdocs"),
            directory_index: vec!["index.html".to_string()],
            tls: Tls::default(),
            pool: Pool::default(),
            user: None,
            group: None,
            edge_user: None,
            unsafe_allow_user_root: false,
            edge_group: None,
            pid_file: server_root.join("run/weir.pid"),
            runtime_dir: server_root.join("run"),
            error_log: None,
            log_level: LogLevel::Notice,
            custom_log: None,
            custom_log_format: LogFormat::Combined,
            timeout: Duration::from_secs(60),
            graceful_shutdown_timeout: Duration::from_secs(60) + GRACE_PAST_TIMEOUT,
            graceful_shutdown_input: None,
            limit_request_body: DEFAULT_LIMIT_REQUEST_BODY,
            spill_dir: None,
            spill_limit: DEFAULT_SPILL_LIMIT,
            spill_limit_per_source: None,
            script_aliases: Vec::new(),
            cgi_interpreters: Vec::new(),
            url_aliases: Vec::new(),
            redirects: Vec::new(),
            server_tokens: ServerTokens::default(),
            status_query_strings: false,
            rlimits: RLimits::default(),
            locations: Vec::new(),
            sections: crate::directory::Sections::default(),
            auth_failure_block: Some(crate::auth::FailureBlock::default()),
            edge: EdgeLimits::default(),
            trusted_proxies: Vec::new(),
            sizing_reserve: 512 << 20,
            tls_options: TlsOptions::default(),
            warnings: Vec::new(),
            server_admin: None,
            ssl_engine: None,
            add_types: Vec::new(),
            cgi_script_extensions: Vec::new(),
            log_formats: Vec::new(),
            custom_log_items: None,
            defines: crate::define::Defines::default(),
            pool_input: PoolInput::default(),
            server_root,
        }
    }

    /// Reads and validates the configuration in `path`. Binds nothing, forks nothing.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|error| {
            ConfigErrors(vec![ConfigError::whole_file(
                path,
                Problem::Unreadable { reason: error.to_string() },
            )])
        })?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let server_root = absolute.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
        Self::from_text(&text, path, Source::File(path.to_path_buf()), server_root)
    }

    /// The built-in default, with relative paths taken from `cwd`.
    pub fn builtin(cwd: &Path) -> Result<Config, ConfigErrors> {
        let mut config = Self::from_text(
            crate::BUILTIN_DEFAULT,
            Path::new("(built-in default)"),
            Source::BuiltIn,
            cwd.to_path_buf(),
        )?;
        config.tls.generate_self_signed = true;
        Ok(config)
    }

    /// Parses and validates configuration text as if read from `file`.
    pub fn from_text(
        text: &str,
        file: &Path,
        source: Source,
        server_root: PathBuf,
    ) -> Result<Config, ConfigErrors> {
        let file: Arc<Path> = Arc::from(file);
        let mut errors = Vec::new();
        let nodes = syntax::parse(text, &file, &mut errors);
        let mut config = Config::defaults(source, server_root);
        directives::apply_all(&mut config, &nodes, &mut errors);
        if errors.is_empty() {
            config.validate(&file, &mut errors);
        }
        if errors.is_empty() {
            Ok(config)
        } else {
            Err(ConfigErrors(errors))
        }
    }

    /// The configuration in `path` as far as it can be read, errors or not: enough to find the
    /// PidFile of a running server whose file has since been broken (`weir stop` must still
    /// work then). `None` when the file cannot be read at all.
    pub fn load_lenient(path: &Path) -> Option<Config> {
        let text = std::fs::read_to_string(path).ok()?;
        let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let server_root = absolute.parent().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("/"));
        let file: Arc<Path> = Arc::from(path);
        let mut errors = Vec::new();
        let nodes = syntax::parse(&text, &file, &mut errors);
        let mut config = Config::defaults(Source::File(path.to_path_buf()), server_root);
        directives::apply_all(&mut config, &nodes, &mut errors);
        Some(config)
    }

    /// Resolves a path as Apache does: absolute as written, relative from the server root.
    pub(crate) fn resolve(&self, path: &str) -> PathBuf {
        self.server_root.join(path)
    }

    /// Checks what no single directive can: settings that contradict each other, and settings
    /// weir cannot run without.
    fn validate(&mut self, file: &Path, errors: &mut Vec<ConfigError>) {
        let mut problem = |problem| errors.push(ConfigError::whole_file(file, problem));
        if self.listeners.is_empty() {
            problem(Problem::Missing { directive: "Listen" });
        }
        let https = self.listeners.iter().any(|l| l.scheme == ListenScheme::Https);
        // A certificate in a <VirtualHost> is enough (Debian's default-ssl.conf sets it only
        // there); a TLS connection no host with a certificate claims then fails its handshake.
        let vhost_cert = self.vhost_inputs.iter().any(|v| v.scratch.tls.cert_file.is_some());
        if https && self.tls.cert_file.is_none() && !vhost_cert {
            problem(Problem::Missing { directive: "SSLCertificateFile" });
        }
        if https && self.tls.key_file.is_none() && !vhost_cert {
            problem(Problem::Missing { directive: "SSLCertificateKeyFile" });
        }
        self.pool = pool_rules::correct(&self.pool_input, &self.pool, &mut self.warnings);
        self.graceful_shutdown_timeout =
            self.graceful_shutdown_input.unwrap_or(self.timeout + GRACE_PAST_TIMEOUT);
        for (index, listener) in self.listeners.iter().enumerate() {
            let clash = self.listeners[..index]
                .iter()
                .any(|other| other.addr == listener.addr && listener.addr.port() != 0);
            if clash {
                problem(Problem::Contradiction(format!("Listen {} is given more than once", listener.addr)));
            }
        }
        if self.tls_options.verify_client != VerifyClient::None && self.tls_options.client_ca_file.is_none() {
            problem(Problem::Missing { directive: "SSLCACertificateFile" });
        }
        crate::remote_ip::check(self, errors, file);
        crate::location::check(&self.locations, errors);
        // Longest prefix first, so /cgi-bin/admin/ wins over /cgi-bin/.
        self.script_aliases.sort_by_key(|alias| std::cmp::Reverse(alias.url_prefix.len()));
        let overlaps = crate::alias::overlap_warnings(&self.url_aliases, &self.script_aliases, None);
        self.warnings.extend(overlaps);
        crate::vhost::resolve(self, errors);
    }

    /// The main server as a site: the settings outside any `<VirtualHost>`, which answer
    /// requests to addresses no `<VirtualHost>` claims.
    pub fn main_site(&self) -> crate::vhost::VirtualHost {
        crate::vhost::VirtualHost {
            addrs: Vec::new(),
            server_name: self.server_name.clone(),
            aliases: Vec::new(),
            server_admin: self.server_admin.clone(),
            document_root: self.document_root.clone(),
            directory_index: self.directory_index.clone(),
            error_log: self.error_log.clone(),
            error_documents: self.error_documents.clone(),
            custom_log: self.custom_log.clone(),
            custom_log_format: self.custom_log_format,
            custom_log_items: self.custom_log_items.clone(),
            script_aliases: self.script_aliases.clone(),
            cgi_interpreters: self.cgi_interpreters.clone(),
            url_aliases: self.url_aliases.clone(),
            redirects: self.redirects.clone(),
            locations: self.locations.clone(),
            sections: self.sections.clone(),
            ssl_engine: None,
            tls: self.tls.clone(),
            export_cert_data: self.tls_options.ssl_options.export_cert_data,
            file: match &self.source {
                Source::File(path) => path.clone(),
                Source::BuiltIn => PathBuf::from("(built-in default)"),
            },
            line: 0,
        }
    }

    /// Every site by its number on the edge–worker contract: 0 the main server, then each
    /// `<VirtualHost>` in order of appearance.
    pub fn sites(&self) -> Vec<crate::vhost::VirtualHost> {
        let mut sites = vec![self.main_site()];
        sites.extend(self.vhosts.iter().cloned());
        sites
    }

    /// The script alias a URL path falls under, if any.
    pub fn script_alias_for(&self, path: &str) -> Option<&ScriptAlias> {
        self.script_aliases.iter().find(|alias| path.starts_with(&alias.url_prefix))
    }

    /// The interpreter for a file name, by its extension (case-insensitive), if any.
    pub fn interpreter_for(&self, name: &str) -> Option<&Path> {
        self.cgi_interpreters
            .iter()
            .find(|(ext, _)| weir_wire::script_path::has_extension(name, std::iter::once(ext.as_str())))
            .map(|(_, path)| path.as_path())
    }

    /// The file whose changes name the configuration in messages.
    pub fn source_name(&self) -> String {
        match &self.source {
            Source::File(path) => path.display().to_string(),
            Source::BuiltIn => "(built-in default)".to_string(),
        }
    }

    /// Most bytes of spill space one source may hold: `SpillLimitPerSource`, never above
    /// SpillLimit, or a quarter of SpillLimit.
    pub fn spill_share(&self) -> u64 {
        match self.spill_limit_per_source {
            Some(share) => share.min(self.spill_limit),
            None => self.spill_limit / SPILL_SHARE_DIVISOR,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, ConfigErrors> {
        Config::for_tests(text)
    }

    #[test]
    fn builtin_default_loads() {
        let config = Config::builtin(Path::new("/srv/w")).expect("built-in default must load");
        assert_eq!(config.listeners[0].addr, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(config.listeners[0].scheme, ListenScheme::Https);
        assert_eq!(config.document_root, PathBuf::from("/srv/w/htdocs"));
        assert!(config.tls.generate_self_signed);
    }

    #[test]
    fn graceful_shutdown_outlasts_timeout_unless_set() {
        let listen = "Listen 127.0.0.1:0 http\n";
        let config = load(listen).unwrap();
        assert_eq!(config.graceful_shutdown_timeout, Duration::from_secs(65));
        let config = load(&format!("{listen}Timeout 300\n")).unwrap();
        assert_eq!(config.graceful_shutdown_timeout, Duration::from_secs(305));
        let config = load(&format!("{listen}Timeout 300\nGracefulShutdownTimeout 10\n")).unwrap();
        assert_eq!(config.graceful_shutdown_timeout, Duration::from_secs(10));
    }

    #[test]
    fn a_small_site() {
        let config = load(
            "Listen 127.0.0.1:0 https\nListen 8080\nDocumentRoot /srv/www\nSSLCertificateFile c.pem\nSSLCertificateKeyFile /k.pem\n\
             StartServers 3\nMinSpareServers 2\nMaxSpareServers 4\nMaxRequestWorkers 20\nUser nobody\nGroup nogroup\n\
             PidFile /run/weir.pid\nErrorLog logs/error.log\nCustomLog logs/access.log combined\nRuntimeDir /run/weir\n\
             ScriptAlias /cgi-bin/ /srv/cgi/\nTimeout 5\n",
        )
        .unwrap();
        assert_eq!(config.listeners.len(), 2);
        assert_eq!(config.listeners[1].addr, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(config.listeners[1].scheme, ListenScheme::Http);
        assert_eq!(config.tls.cert_file, Some(PathBuf::from("/etc/weir/c.pem")));
        assert_eq!(config.pool.start_servers, 3);
        assert_eq!(config.pool.max_request_workers, 20);
        assert_eq!(config.user.as_deref(), Some("nobody"));
        assert_eq!(config.error_log, Some(PathBuf::from("/etc/weir/logs/error.log")));
        assert_eq!(config.script_alias_for("/cgi-bin/x").unwrap().dir, PathBuf::from("/srv/cgi/"));
        assert_eq!(config.timeout, Duration::from_secs(5));
    }

    #[test]
    fn errors_name_line_and_directive_and_are_all_reported() {
        let errors = load("Listen 8443\nMaxRequestWorker 5\nStartServers x\nStartServers\n").unwrap_err().0;
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 3, "{text:?}");
        assert!(text[0].starts_with(
            "Syntax error on line 2 of /etc/weir/weir.conf: Invalid command 'MaxRequestWorker'"
        ));
        assert!(text[0].contains("did you mean 'MaxRequestWorkers'"), "{}", text[0]);
        assert!(text[1].contains("line 3") && text[1].contains("StartServers"), "{}", text[1]);
        assert!(text[2].contains("line 4") && text[2].contains("takes one argument"), "{}", text[2]);
    }

    #[test]
    fn pool_contradictions_are_corrected_as_apache_does() {
        let config = load("Listen 80\nMaxRequestWorkers 300\nMinSpareServers 20\n").unwrap();
        assert_eq!(config.pool.max_request_workers, 256);
        assert_eq!(config.pool.max_spare_servers, 21);
        let text = config.warnings.join("\n");
        assert!(text.contains("exceeds ServerLimit"), "{text}");
        assert!(text.contains("MaxSpareServers of 10 is below MinSpareServers + 1"), "{text}");
    }

    #[test]
    fn https_needs_a_certificate() {
        let text = load("Listen 443\n").unwrap_err().to_string();
        assert!(text.contains("SSLCertificateFile"), "{text}");
    }
}
