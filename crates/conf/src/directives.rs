//! The one table of directives weir knows: name, arguments, help, and how each applies itself to
//! the typed [`Config`]. Adding a directive means adding one entry here, with its test below.

use crate::config::{Config, ScriptAlias};
use crate::edge;
use crate::error::{ConfigError, Problem};
use crate::syntax::{Node, Span};
use crate::values;

/// One directive's definition.
pub struct Directive {
    /// Canonical spelling, as Apache writes it.
    pub name: &'static str,
    /// Fewest and most arguments.
    pub args: (usize, usize),
    /// Apache's one-line help, shown when the arguments are wrong.
    pub help: &'static str,
    /// Applies validated arguments to the configuration.
    pub apply: fn(&mut Config, &[String]) -> Result<(), Problem>,
}

/// Modules weir emulates, so `<IfModule>` blocks written for Apache take the right branch.
const MODULES: &[&str] = &[
    "unixd",
    "mpm_prefork",
    "reqtimeout",
    "ssl",
    "status",
    "cgi",
    "headers",
    "alias",
    "mime",
    "dir",
    "log_config",
    "authz_core",
    "authz_host",
    "authz_user",
    "authn_core",
    "authn_file",
    "auth_basic",
];

/// A prefork count: any whole number, corrected later as Apache corrects it (pool_rules).
macro_rules! set_pool {
    ($sub:ident, $name:literal) => {
        |config: &mut Config, args: &[String]| {
            config.pool_input.$sub = Some(values::signed($name, &args[0])?);
            Ok(())
        }
    };
}

/// Every directive weir accepts.
pub const DIRECTIVES: &[Directive] = &[
    Directive {
        name: "Define",
        args: (1, 2),
        help: "Define a variable, optionally to a value.  Same as passing -D to the command line.",
        apply: crate::define::define,
    },
    Directive {
        name: "UnDefine",
        args: (1, 1),
        help: "Undefine the existence of a variable. Undo a Define.",
        apply: crate::define::undefine,
    },
    Directive {
        name: "LoadModule",
        args: (2, 2),
        help: "a module name and the name of a shared object file to load it from",
        apply: |_, args| crate::refused::load_module(MODULES, args),
    },
    Directive {
        name: "Listen",
        args: (1, 3),
        help: "a port number or address:port, then optionally http or https, and proxy-protocol",
        apply: |config, args| {
            let listener = values::listen(args)?;
            config.listeners.push(listener);
            Ok(())
        },
    },
    Directive {
        name: "RemoteIPTrustedProxy",
        args: (1, 64),
        help: "addresses or CIDR blocks of the proxies allowed to send a PROXY protocol header (Listen … proxy-protocol)",
        apply: |config, args| {
            let nets = crate::remote_ip::trusted_proxies(args)?;
            config.trusted_proxies.extend(nets);
            Ok(())
        },
    },
    Directive {
        name: "ServerName",
        args: (1, 1),
        help: "the hostname and port of the server",
        apply: |config, args| {
            config.server_name = Some(args[0].clone());
            Ok(())
        },
    },
    Directive {
        name: "ServerAlias",
        args: (1, 64),
        help: "A name or names alternately used to access the server",
        apply: |config, args| {
            if !config.in_vhost {
                return Err(Problem::AliasOutsideVirtualHost);
            }
            config.server_aliases.extend(args.iter().cloned());
            Ok(())
        },
    },
    Directive {
        name: "ServerAdmin",
        args: (1, 1),
        help: "The email address of the server administrator",
        apply: |config, args| {
            if args[0].bytes().any(|b| b.is_ascii_control() || b == b'<' || b == b'>' || b == b'"') {
                return Err(Problem::BadValue {
                    directive: "ServerAdmin",
                    value: args[0].clone(),
                    reason: "an email address or URL cannot hold control characters, <, > or \"".to_string(),
                });
            }
            config.server_admin = Some(args[0].clone());
            Ok(())
        },
    },
    Directive {
        name: "SSLEngine",
        args: (1, 1),
        help: "SSL switch for the protocol engine ('on', 'off'); weir: the Listen line's https decides",
        apply: |config, args| {
            config.ssl_engine = Some(values::on_off("SSLEngine", &args[0])?);
            Ok(())
        },
    },
    Directive {
        name: "SSLCertificateChainFile",
        args: (1, 1),
        help: "SSL Server CA Certificate Chain file ('/path/to/file' - PEM encoded)",
        apply: |config, args| {
            config.tls.chain_file = Some(config.resolve(&args[0]));
            Ok(())
        },
    },
    Directive {
        name: "AllowOverride",
        args: (1, 8),
        help: "None: weir reads no .htaccess files",
        apply: |_, args| match args {
            [none] if none.eq_ignore_ascii_case("None") => Ok(()),
            _ => Err(Problem::BadValue {
                directive: "AllowOverride",
                value: args.join(" "),
                reason: "weir reads no .htaccess files, so only AllowOverride None is accepted; put the directives in the configuration".to_string(),
            }),
        },
    },
    Directive {
        name: "Options",
        args: (1, 8),
        help: "Set a number of attributes for a given directory",
        apply: crate::directory::server_options,
    },
    Directive {
        name: "AddType",
        args: (2, 64),
        help: "a mime type followed by one or more file extensions",
        apply: |config, args| {
            let media = &args[0];
            let valid = media.split_once('/').is_some_and(|(kind, sub)| {
                let token = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b));
                token(kind) && token(sub.split(';').next().unwrap_or("").trim())
            }) && !media.bytes().any(|b| b.is_ascii_control());
            if !valid {
                return Err(Problem::BadValue {
                    directive: "AddType",
                    value: media.clone(),
                    reason: "expected a media type such as text/plain".to_string(),
                });
            }
            for ext in &args[1..] {
                let ext = ext.strip_prefix('.').unwrap_or(ext).to_ascii_lowercase();
                if ext.is_empty() || ext.contains(['/', '.']) {
                    return Err(Problem::BadValue {
                        directive: "AddType",
                        value: ext,
                        reason: "expected an extension such as .txt".to_string(),
                    });
                }
                config.add_types.retain(|(known, _)| *known != ext);
                config.add_types.push((ext, media.clone()));
            }
            Ok(())
        },
    },
    Directive {
        name: "DocumentRoot",
        args: (1, 1),
        help: "Root directory of the document tree",
        apply: |config, args| {
            config.document_root = config.resolve(&args[0]);
            Ok(())
        },
    },
    Directive {
        name: "DirectoryIndex",
        args: (1, 64),
        help: "a list of file names to try for a request naming a directory",
        apply: |config, args| {
            config.directory_index = crate::values::index_names(args)?;
            Ok(())
        },
    },
    Directive {
        name: "SSLCertificateFile",
        args: (1, 1),
        help: "SSL Server Certificate file ('/path/to/file' - PEM or DER encoded)",
        apply: |config, args| {
            config.tls.cert_file = Some(config.resolve(&args[0]));
            Ok(())
        },
    },
    Directive {
        name: "SSLCertificateKeyFile",
        args: (1, 1),
        help: "SSL Server Private Key file ('/path/to/file' - PEM or DER encoded)",
        apply: |config, args| {
            config.tls.key_file = Some(config.resolve(&args[0]));
            Ok(())
        },
    },
    Directive {
        name: "StartServers",
        args: (1, 1),
        help: "Number of child processes launched at server startup",
        apply: set_pool!(start_servers, "StartServers"),
    },
    Directive {
        name: "MinSpareServers",
        args: (1, 1),
        help: "Minimum number of idle children, to handle request spikes",
        apply: set_pool!(min_spare_servers, "MinSpareServers"),
    },
    Directive {
        name: "MaxSpareServers",
        args: (1, 1),
        help: "Maximum number of idle children",
        apply: set_pool!(max_spare_servers, "MaxSpareServers"),
    },
    Directive {
        name: "MaxRequestWorkers",
        args: (1, 1),
        help: "Maximum number of children alive at the same time",
        apply: set_pool!(max_request_workers, "MaxRequestWorkers"),
    },
    Directive {
        name: "MaxClients",
        args: (1, 1),
        help: "Deprecated name of MaxRequestWorkers",
        apply: set_pool!(max_request_workers, "MaxClients"),
    },
    Directive {
        name: "ServerLimit",
        args: (1, 1),
        help: "Maximum value of MaxRequestWorkers for this run of Apache",
        apply: set_pool!(server_limit, "ServerLimit"),
    },
    Directive {
        name: "MaxConnectionsPerChild",
        args: (1, 1),
        help: "Maximum number of connections a particular child serves before dying.",
        apply: |config, args| {
            config.pool.max_connections_per_child =
                values::number("MaxConnectionsPerChild", &args[0], 0, u64::from(u32::MAX))?;
            Ok(())
        },
    },
    Directive {
        name: "MaxRequestsPerChild",
        args: (1, 1),
        help: "Deprecated name of MaxConnectionsPerChild",
        apply: |config, args| {
            config.pool.max_connections_per_child =
                values::number("MaxRequestsPerChild", &args[0], 0, u64::from(u32::MAX))?;
            Ok(())
        },
    },
    Directive {
        name: "MaxMemoryPerChild",
        args: (1, 1),
        help: "proportional memory (PSS) above which a worker is replaced after its request, such as 64M; 0 for no limit",
        apply: |config, args| {
            config.pool.max_memory_per_child = values::size("MaxMemoryPerChild", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "SizingReserve",
        args: (1, 1),
        help: "memory kept for everything but workers in the suggested MaxRequestWorkers, such as 512M",
        apply: |config, args| {
            config.sizing_reserve = values::size("SizingReserve", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "User",
        args: (1, 1),
        help: "Effective user id for this server",
        apply: |config, args| {
            config.user = Some(args[0].clone());
            Ok(())
        },
    },
    Directive {
        name: "Group",
        args: (1, 1),
        help: "Effective group id for this server",
        apply: |config, args| {
            config.group = Some(args[0].clone());
            Ok(())
        },
    },
    Directive {
        name: "EdgeUser",
        args: (1, 1),
        help: "Account the edge runs as when started as root: a name or #uid, distinct from User",
        apply: |config, args| {
            config.edge_user = Some(args[0].clone());
            Ok(())
        },
    },
    Directive {
        name: "UnsafeAllowUserRoot",
        args: (1, 1),
        help: "weir: On lets User be root, so every script and Handler runs as root; for development only, warned about on every start",
        apply: |config, args| {
            config.unsafe_allow_user_root = values::on_off("UnsafeAllowUserRoot", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "EdgeGroup",
        args: (1, 1),
        help: "Group the edge runs as when started as root: a name or #gid",
        apply: |config, args| {
            config.edge_group = Some(args[0].clone());
            Ok(())
        },
    },
    Directive {
        name: "PidFile",
        args: (1, 1),
        help: "A file for logging the server process ID",
        apply: |config, args| {
            config.pid_file = config.resolve(&args[0]);
            Ok(())
        },
    },
    Directive {
        name: "RuntimeDir",
        args: (1, 1),
        help: "Directory for the pool's socket and the file of bound addresses",
        apply: |config, args| {
            config.runtime_dir = config.resolve(&args[0]);
            Ok(())
        },
    },
    Directive {
        name: "ErrorLog",
        args: (1, 1),
        help: "The filename of the error log, or stderr",
        apply: |config, args| {
            config.error_log = match args[0].as_str() {
                "stderr" | "/dev/stderr" => None,
                pipe if pipe.starts_with('|') || pipe.starts_with("syslog") => {
                    return Err(Problem::BadValue {
                        directive: "ErrorLog",
                        value: pipe.to_string(),
                        reason: "weir writes the error log to a file or to stderr".to_string(),
                    })
                }
                path => Some(config.resolve(path)),
            };
            Ok(())
        },
    },
    Directive {
        name: "ErrorDocument",
        args: (2, 2),
        help: "Change responses for HTTP errors",
        apply: |config, args| {
            match crate::error_document::parse(args)? {
                Ok((code, document)) => config.error_documents.set(code, document),
                Err(notice) => config.warnings.push(notice),
            }
            Ok(())
        },
    },
    Directive {
        name: "LogLevel",
        args: (1, 8),
        help: "Level of verbosity in error logging: emerg, alert, crit, error, warn, notice, info or debug",
        apply: |config, args| {
            use crate::config::LogLevel;
            // Per-module levels ("ssl:warn") are accepted and the overall level applies.
            let Some(level) = args.iter().find(|a| !a.contains(':')) else { return Ok(()) };
            config.log_level = match level.to_ascii_lowercase().as_str() {
                "emerg" | "alert" | "crit" | "error" => LogLevel::Error,
                "warn" => LogLevel::Warn,
                "notice" | "info" => LogLevel::Notice,
                "debug" => LogLevel::Debug,
                t if t.starts_with("trace") => LogLevel::Debug,
                _ => {
                    return Err(Problem::BadValue {
                        directive: "LogLevel",
                        value: level.clone(),
                        reason: "expected emerg, alert, crit, error, warn, notice, info, debug or trace1-8".to_string(),
                    })
                }
            };
            Ok(())
        },
    },
    Directive {
        name: "LogFormat",
        args: (2, 2),
        help: "a log format string (see docs) and a nickname for CustomLog",
        apply: |config, args| {
            let items = crate::log_format::parse("LogFormat", &args[0])?;
            config.log_formats.retain(|(nickname, _)| *nickname != args[1]);
            config.log_formats.push((args[1].clone(), items));
            Ok(())
        },
    },
    Directive {
        name: "CustomLog",
        args: (1, 2),
        help: "a file name and a format: a LogFormat nickname, a format string, or combined, common or json",
        apply: |config, args| {
            use crate::config::LogFormat;
            if args[0].starts_with('|') {
                return Err(Problem::BadValue {
                    directive: "CustomLog",
                    value: args[0].clone(),
                    reason: "piped logs are not supported; give a file".to_string(),
                });
            }
            let format = args.get(1).map(String::as_str);
            // A nickname LogFormat defined wins over weir's own names, as it does in Apache.
            let defined = format.and_then(|f| config.log_formats.iter().find(|(n, _)| n == f));
            let (builtin, items) = match (format, defined) {
                (_, Some((_, items))) => (LogFormat::Combined, Some(items.clone())),
                (None | Some("combined"), None) => (LogFormat::Combined, None),
                (Some("common"), None) => (LogFormat::Common, None),
                (Some("json"), None) => (LogFormat::Json, None),
                (Some(text), None) if text.contains('%') => {
                    (LogFormat::Combined, Some(crate::log_format::parse("CustomLog", text)?))
                }
                (Some(other), None) => {
                    return Err(Problem::BadValue {
                        directive: "CustomLog",
                        value: other.to_string(),
                        reason: "no LogFormat above defines this nickname, and it is not combined, common or json".to_string(),
                    })
                }
            };
            config.custom_log = Some(config.resolve(&args[0]));
            config.custom_log_format = builtin;
            config.custom_log_items = items;
            Ok(())
        },
    },
    Directive {
        name: "Timeout",
        args: (1, 1),
        help: "Timeout duration (sec)",
        apply: |config, args| {
            config.timeout = values::seconds("Timeout", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "GracefulShutdownTimeout",
        args: (1, 1),
        help: "Maximum time in seconds to wait for child processes to complete transactions during shutdown",
        apply: |config, args| {
            config.graceful_shutdown_input = Some(values::seconds("GracefulShutdownTimeout", &args[0])?);
            Ok(())
        },
    },
    Directive {
        name: "LimitRequestBody",
        args: (1, 1),
        help: "Limit (in bytes) on maximum size of request message body",
        apply: |config, args| {
            config.limit_request_body =
                values::number("LimitRequestBody", &args[0], 0, i64::MAX as u64)?;
            Ok(())
        },
    },
    Directive {
        name: "SpillDir",
        args: (1, 1),
        help: "directory for request and response bodies too large for memory (unnamed files); default: the system's temporary directory",
        apply: |config, args| {
            config.spill_dir = Some(config.resolve(&args[0]));
            Ok(())
        },
    },
    Directive {
        name: "SpillLimit",
        args: (1, 1),
        help: "most bytes of bodies kept in SpillDir at once, such as 1G; beyond it requests get 503 and responses wait for their clients",
        apply: |config, args| {
            config.spill_limit = values::size("SpillLimit", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "SpillLimitPerSource",
        args: (1, 1),
        help: "most bytes of SpillLimit one source (an IPv4 address or an IPv6 /64) may hold, such as 256M; default: a quarter of SpillLimit",
        apply: |config, args| {
            config.spill_limit_per_source = Some(values::size("SpillLimitPerSource", &args[0])?);
            Ok(())
        },
    },
    Directive {
        name: "ScriptAlias",
        args: (2, 2),
        help: "a fakename and a realname",
        apply: |config, args| {
            let dir = config.resolve(&args[1]);
            config.script_aliases.push(ScriptAlias {
                url_prefix: args[0].clone(),
                dir,
            });
            Ok(())
        },
    },
    Directive {
        name: "Alias",
        args: (2, 2),
        help: "a fakename and a realname",
        apply: |config, args| {
            let fs = config.resolve(&args[1]);
            config.url_aliases.push(crate::alias::AliasRule::alias(&args[0], fs)?);
            Ok(())
        },
    },
    Directive {
        name: "AliasMatch",
        args: (2, 2),
        help: "a regular expression and a filename",
        apply: |config, args| {
            use crate::alias::{AliasKind, AliasRule};
            config.url_aliases.push(AliasRule::matching("AliasMatch", &args[0], &args[1], AliasKind::Files)?);
            Ok(())
        },
    },
    Directive {
        name: "ScriptAliasMatch",
        args: (2, 2),
        help: "a regular expression and a filename",
        apply: |config, args| {
            use crate::alias::{AliasKind, AliasRule};
            config.url_aliases.push(AliasRule::matching("ScriptAliasMatch", &args[0], &args[1], AliasKind::Scripts)?);
            Ok(())
        },
    },
    Directive {
        name: "Redirect",
        args: (2, 3),
        help: "an optional status, then document to be redirected and destination URL",
        apply: |config, args| {
            config.redirects.push(crate::alias::RedirectRule::parse("Redirect", args, None)?);
            Ok(())
        },
    },
    Directive {
        name: "RedirectMatch",
        args: (2, 3),
        help: "an optional status, then a regular expression and destination URL",
        apply: |config, args| {
            config.redirects.push(crate::alias::RedirectRule::parse("RedirectMatch", args, None)?);
            Ok(())
        },
    },
    Directive {
        name: "RedirectPermanent",
        args: (2, 2),
        help: "a document to be redirected, then the destination URL",
        apply: |config, args| {
            config.redirects.push(crate::alias::RedirectRule::parse("RedirectPermanent", args, Some(301))?);
            Ok(())
        },
    },
    Directive {
        name: "RedirectTemp",
        args: (2, 2),
        help: "a document to be redirected, then the destination URL",
        apply: |config, args| {
            config.redirects.push(crate::alias::RedirectRule::parse("RedirectTemp", args, Some(302))?);
            Ok(())
        },
    },
    Directive {
        name: "ServerTokens",
        args: (1, 1),
        help: "'Prod', 'Major', 'Minor', 'Min', 'OS' or 'Full'",
        apply: |config, args| {
            use crate::config::ServerTokens;
            config.server_tokens = match args[0].to_ascii_lowercase().as_str() {
                "prod" | "productonly" => ServerTokens::Prod,
                "major" => ServerTokens::Major,
                "minor" => ServerTokens::Minor,
                "min" | "minimal" => ServerTokens::Min,
                "os" => ServerTokens::Os,
                "full" => ServerTokens::Full,
                _ => {
                    return Err(Problem::BadValue {
                        directive: "ServerTokens",
                        value: args[0].clone(),
                        reason: "expected Prod, Major, Minor, Min, OS or Full".to_string(),
                    })
                }
            };
            Ok(())
        },
    },
    Directive {
        name: "CGIInterpreter",
        args: (2, 2),
        help: "a file extension such as .php and the interpreter that runs such files",
        apply: |config, args| {
            if !args[0].starts_with('.') || args[0].len() < 2 || args[0].contains('/') {
                return Err(Problem::BadValue {
                    directive: "CGIInterpreter",
                    value: args[0].clone(),
                    reason: "the extension must start with a dot, such as .php".to_string(),
                });
            }
            let interpreter = config.resolve(&args[1]);
            config.cgi_interpreters.push((args[0].clone(), interpreter));
            Ok(())
        },
    },
    Directive {
        name: "AddHandler",
        args: (2, 64),
        help: "cgi-script followed by one or more file extensions",
        apply: |config, args| {
            let handler = args[0].to_ascii_lowercase();
            if handler != "cgi-script" {
                let reason = if handler.contains("php") {
                    "weir has no PHP handler; use CGIInterpreter .php /usr/bin/php-cgi"
                } else {
                    "weir knows the handler cgi-script (files run as CGI programs); for an interpreter use CGIInterpreter"
                };
                return Err(Problem::BadValue {
                    directive: "AddHandler",
                    value: args[0].clone(),
                    reason: reason.to_string(),
                });
            }
            for ext in &args[1..] {
                let bare = ext.strip_prefix('.').unwrap_or(ext);
                if bare.is_empty() || bare.contains(['/', '.']) {
                    return Err(Problem::BadValue {
                        directive: "AddHandler",
                        value: ext.clone(),
                        reason: "expected an extension such as .cgi".to_string(),
                    });
                }
                let ext = format!(".{}", bare.to_ascii_lowercase());
                if !config.cgi_script_extensions.contains(&ext) {
                    config.cgi_script_extensions.push(ext);
                }
            }
            Ok(())
        },
    },
    Directive {
        name: "RLimitCPU",
        args: (1, 2),
        help: "Soft/hard limits for max CPU usage in seconds",
        apply: |config, args| {
            config.rlimits.cpu = Some(values::rlimit("RLimitCPU", args)?);
            Ok(())
        },
    },
    Directive {
        name: "RLimitMEM",
        args: (1, 2),
        help: "Soft/hard limits for max memory usage per process",
        apply: |config, args| {
            config.rlimits.mem = Some(values::rlimit("RLimitMEM", args)?);
            Ok(())
        },
    },
    Directive {
        name: "RLimitNPROC",
        args: (1, 2),
        help: "soft/hard limits for max number of processes per uid",
        apply: |config, args| {
            config.rlimits.nproc = Some(values::rlimit("RLimitNPROC", args)?);
            Ok(())
        },
    },
    Directive {
        name: "RequestReadTimeout",
        args: (1, 3),
        help: "Set various timeout parameters for TLS handshake and reading request headers and body",
        apply: |config, args| {
            for arg in args {
                edge::read_timeout_stage(&mut config.edge.read_timeout, arg)?;
            }
            Ok(())
        },
    },
    Directive {
        name: "LimitRequestLine",
        args: (1, 1),
        help: "Limit on maximum size of an HTTP request line",
        apply: |config, args| {
            config.edge.limit_request_line = values::number("LimitRequestLine", &args[0], 64, 65_536)? as usize;
            Ok(())
        },
    },
    Directive {
        name: "LimitRequestFieldSize",
        args: (1, 1),
        help: "Limit on maximum size of an HTTP request header field",
        apply: |config, args| {
            config.edge.limit_request_field_size =
                values::number("LimitRequestFieldSize", &args[0], 64, 65_536)? as usize;
            Ok(())
        },
    },
    Directive {
        name: "LimitRequestFields",
        args: (1, 1),
        help: "Limit (0 = unlimited) on max number of header fields in a request message",
        apply: |config, args| {
            let n = values::number("LimitRequestFields", &args[0], 0, 32_767)? as usize;
            // Apache reads 0 as unlimited; weir keeps a ceiling even then.
            config.edge.limit_request_fields = if n == 0 { 32_767 } else { n };
            Ok(())
        },
    },
    Directive {
        name: "KeepAlive",
        args: (1, 1),
        help: "Whether persistent connections should be On or Off",
        apply: |config, args| {
            config.edge.keep_alive = values::on_off("KeepAlive", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "StatusQueryStrings",
        args: (1, 1),
        help: "weir: whether server-status shows the query strings of request lines (tokens, session ids); default Off",
        apply: |config, args| {
            config.status_query_strings = values::on_off("StatusQueryStrings", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "KeepAliveTimeout",
        args: (1, 1),
        help: "Keep-Alive timeout duration (sec)",
        apply: |config, args| {
            config.edge.keep_alive_timeout = values::seconds("KeepAliveTimeout", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "MaxKeepAliveRequests",
        args: (1, 1),
        help: "Maximum number of Keep-Alive requests per connection, or 0 for infinite",
        apply: |config, args| {
            config.edge.max_keep_alive_requests =
                values::number("MaxKeepAliveRequests", &args[0], 0, u64::from(u32::MAX))?;
            Ok(())
        },
    },
    Directive {
        name: "MaxConnections",
        args: (1, 1),
        help: "most client connections open at once: auto (from the descriptors and memory the edge may use), 0 for no limit, or a number",
        apply: |config, args| {
            config.edge.max_connections = edge::ConnectionCap::parse("MaxConnections", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "MaxConnectionsPerIP",
        args: (1, 1),
        help: "most connections open at once from one source (an IPv4 address or an IPv6 /64): auto (half of MaxConnections), 0 for no limit, or a number",
        apply: |config, args| {
            config.edge.max_connections_per_ip = edge::ConnectionCap::parse("MaxConnectionsPerIP", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "RateLimit",
        args: (1, 2),
        help: "requests per second per client (an IPv4 address or an IPv6 /64), such as 20/s burst=40",
        apply: |config, args| {
            config.edge.rate_limit = Some(edge::rate_limit(args)?);
            Ok(())
        },
    },
    Directive {
        name: "QueueTimeout",
        args: (1, 1),
        help: "seconds a request may wait for a free worker before 503",
        apply: |config, args| {
            config.edge.queue_timeout = values::seconds("QueueTimeout", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "TraceEnable",
        args: (1, 1),
        help: "'on' (default), 'off' or 'extended' to trace request body content",
        apply: |config, args| {
            config.edge.trace_enable = match args[0].to_ascii_lowercase().as_str() {
                "on" | "extended" => true,
                "off" => false,
                _ => {
                    return Err(Problem::BadValue {
                        directive: "TraceEnable",
                        value: args[0].clone(),
                        reason: "expected On, Off or extended".to_string(),
                    })
                }
            };
            Ok(())
        },
    },
    Directive {
        name: "ServerSignature",
        args: (1, 1),
        help: "En-/disable server signature (on|off|email)",
        apply: |config, args| {
            use crate::edge::ServerSignature;
            config.edge.server_signature = match args[0].to_ascii_lowercase().as_str() {
                "off" => ServerSignature::Off,
                "on" => ServerSignature::On,
                "email" => ServerSignature::Email,
                _ => {
                    return Err(Problem::BadValue {
                        directive: "ServerSignature",
                        value: args[0].clone(),
                        reason: "expected On, Off or EMail".to_string(),
                    })
                }
            };
            Ok(())
        },
    },
    Directive {
        name: "Header",
        args: (2, 4),
        help: "[always] set|append|merge|add|unset NAME [VALUE]",
        apply: |config, args| {
            let rule = edge::header_rule(args)?;
            config.edge.headers.push(rule);
            Ok(())
        },
    },
    Directive {
        name: "SSLProtocol",
        args: (1, 8),
        help: "Enable or disable various SSL protocols ('[+-][TLSv1.2|TLSv1.3] ...' - see manual)",
        apply: |config, args| {
            config.tls_options.versions = edge::ssl_protocol(args)?;
            Ok(())
        },
    },
    Directive {
        name: "SSLVerifyClient",
        args: (1, 1),
        help: "SSL Client verify type ('none', 'optional', 'require')",
        apply: |config, args| {
            use crate::edge::VerifyClient;
            config.tls_options.verify_client = match args[0].to_ascii_lowercase().as_str() {
                "none" => VerifyClient::None,
                "optional" => VerifyClient::Optional,
                "require" => VerifyClient::Require,
                _ => {
                    return Err(Problem::BadValue {
                        directive: "SSLVerifyClient",
                        value: args[0].clone(),
                        reason: "expected none, optional or require".to_string(),
                    })
                }
            };
            Ok(())
        },
    },
    Directive {
        name: "SSLCACertificateFile",
        args: (1, 1),
        help: "SSL CA Certificate file ('/path/to/file' - PEM encoded)",
        apply: |config, args| {
            config.tls_options.client_ca_file = Some(config.resolve(&args[0]));
            Ok(())
        },
    },
    Directive {
        name: "SSLCipherSuite",
        args: (1, 2),
        help: "Colon-delimited list of permitted SSL Ciphers, optionally preceded by the protocol ('SSL' or 'TLSv1.3')",
        apply: |config, args| {
            use crate::ciphers::Protocol;
            match crate::ciphers::ssl_cipher_suite(args)? {
                (Protocol::Tls12, suites) => config.tls_options.tls12_suites = suites,
                (Protocol::Tls13, suites) => config.tls_options.tls13_suites = suites,
            }
            Ok(())
        },
    },
    Directive {
        name: "SSLHonorCipherOrder",
        args: (1, 1),
        help: "Use the server's cipher ordering preference (weir's default: On)",
        apply: |config, args| {
            config.tls_options.honor_cipher_order = values::on_off("SSLHonorCipherOrder", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "SSLOptions",
        args: (1, 8),
        help: "Set one or more options to configure the SSL engine ('[+-]option[=value] ...' - see manual)",
        apply: |config, args| {
            config.tls_options.ssl_options = edge::ssl_options(config.tls_options.ssl_options, args)?;
            Ok(())
        },
    },
    Directive {
        name: "SSLSessionTickets",
        args: (1, 1),
        help: "Enable or disable TLS session tickets",
        apply: |config, args| {
            config.tls_options.session_tickets = values::on_off("SSLSessionTickets", &args[0])?;
            Ok(())
        },
    },
    Directive {
        name: "AuthFailureBlock",
        args: (1, 2),
        help: "weir: failed Basic password checks from one source (an IPv4 address or IPv6 /64) and the window in seconds after which it gets 429 for the window, such as 10 600; or Off",
        apply: |config, args| {
            config.auth_failure_block = crate::auth::FailureBlock::parse(args)?;
            Ok(())
        },
    },
    Directive {
        name: "Protocols",
        args: (1, 4),
        help: "Protocols available for the server in order of preference: h2 http/1.1",
        apply: |config, args| {
            let mut h2 = false;
            for arg in args {
                match arg.to_ascii_lowercase().as_str() {
                    "h2" => h2 = true,
                    "http/1.1" | "h2c" => {}
                    _ => {
                        return Err(Problem::BadValue {
                            directive: "Protocols",
                            value: arg.clone(),
                            reason: "expected h2 and/or http/1.1".to_string(),
                        })
                    }
                }
            }
            config.tls_options.alpn_h2 = h2;
            Ok(())
        },
    },
];

pub(crate) fn find(name: &str) -> Option<&'static Directive> {
    DIRECTIVES.iter().find(|directive| directive.name.eq_ignore_ascii_case(name))
}

/// The canonical name of a directive the table knows.
pub(crate) fn known(name: &str) -> Option<&'static str> {
    find(name).map(|directive| directive.name)
}

/// The known directive closest to a misspelled name, if one is close enough to be a typo.
fn suggest(name: &str) -> Option<&'static str> {
    // Names refused on purpose count too: the corrected line then says why weir lacks it.
    let refused = crate::refused::REFUSED.iter().flat_map(|refusal| refusal.names.iter().copied());
    DIRECTIVES
        .iter()
        .map(|directive| directive.name)
        .chain(crate::location::SECTION_ONLY.iter().copied())
        .chain(refused)
        .map(|candidate| (values::distance(name, candidate), candidate))
        .filter(|(distance, candidate)| *distance <= (candidate.len() / 4).max(2))
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

fn arity_text(args: (usize, usize)) -> &'static str {
    match args {
        (1, 1) => "one argument",
        (2, 2) => "two arguments",
        (1, 2) => "one or two arguments",
        (0, 0) => "no arguments",
        _ => "one or more arguments",
    }
}

/// Applies every node to `config`, collecting each bad line's error.
pub fn apply_all(config: &mut Config, nodes: &[Node], errors: &mut Vec<ConfigError>) {
    apply_nodes(config, nodes, errors, 0);
}

/// Most levels of Include inside Include, as Apache's limit against include loops.
const MAX_INCLUDE_DEPTH: usize = 16;

fn apply_nodes(config: &mut Config, nodes: &[Node], errors: &mut Vec<ConfigError>, depth: usize) {
    for node in nodes {
        // `${NAME}` as the line is reached, so a Define above it applies and one below does not.
        let expanded = crate::define::expand_node(config, node);
        let node = expanded.as_ref().unwrap_or(node);
        match node {
            Node::Directive { name, args, span }
                if name.eq_ignore_ascii_case("Include") || name.eq_ignore_ascii_case("IncludeOptional") =>
            {
                let optional = name.eq_ignore_ascii_case("IncludeOptional");
                include(config, name, args, span, optional, errors, depth);
            }
            Node::Directive { name, span, .. } if crate::location::section_only(name).is_some() => {
                let directive = crate::location::section_only(name).unwrap_or("Require");
                errors.push(ConfigError::at(span, Some(name), Problem::NotAllowedHere { directive }));
            }
            Node::Directive { name, args, span } => match apply_one(config, name, args) {
                Err(problem) => errors.push(ConfigError::at(span, Some(name), problem)),
                // Checks made once the whole file is read (a proxy-protocol listener needs
                // RemoteIPTrustedProxy) name this line.
                Ok(()) if name.eq_ignore_ascii_case("Listen") => {
                    if let Some(listener) = config.listeners.last_mut() {
                        listener.span = Some(span.clone());
                    }
                }
                Ok(()) => {}
            },
            Node::Section { name, args, span, children } => {
                apply_section(config, name, args, span, children, errors, depth)
            }
        }
    }
}

/// `Include` / `IncludeOptional PATTERN`: files matching a glob, relative to the server root
/// (the main file's directory), read in sorted order as Apache does.
fn include(
    config: &mut Config,
    name: &str,
    args: &[String],
    span: &Span,
    optional: bool,
    errors: &mut Vec<ConfigError>,
    depth: usize,
) {
    let fail = |problem| ConfigError::at(span, Some(name), problem);
    let [pattern] = args else {
        errors.push(fail(Problem::Arity {
            directive: "Include",
            expected: "one argument",
            help: "Name(s) of the config file(s) to be included; fails if the wildcard does not match at least one file",
        }));
        return;
    };
    if depth >= MAX_INCLUDE_DEPTH {
        errors.push(fail(Problem::Unreadable {
            reason: format!("Exceeded the maximum include directory nesting level of {MAX_INCLUDE_DEPTH}"),
        }));
        return;
    }
    let full = config.resolve(pattern);
    let full_text = full.display().to_string();
    let mut files: Vec<std::path::PathBuf> = match glob::glob(&full_text) {
        Ok(paths) => paths.filter_map(Result::ok).filter(|p| p.is_file()).collect(),
        Err(error) => {
            errors.push(fail(Problem::BadValue {
                directive: "Include",
                value: pattern.clone(),
                reason: error.to_string(),
            }));
            return;
        }
    };
    files.sort();
    if files.is_empty() && !optional {
        let reason = if full_text.contains(['*', '?', '[']) {
            format!("No matches for the wildcard '{}' in '{}'", file_part(&full_text), dir_part(&full_text))
        } else {
            format!("Could not open configuration file {full_text}: No such file or directory")
        };
        errors.push(fail(Problem::Unreadable { reason }));
        return;
    }
    for file in files {
        match std::fs::read_to_string(&file) {
            Ok(text) => {
                let path: std::sync::Arc<std::path::Path> = std::sync::Arc::from(file.as_path());
                let nodes = crate::syntax::parse(&text, &path, errors);
                apply_nodes(config, &nodes, errors, depth + 1);
            }
            Err(error) => errors.push(fail(Problem::Unreadable {
                reason: format!("Could not open configuration file {}: {error}", file.display()),
            })),
        }
    }
}

fn file_part(path: &str) -> &str {
    path.rsplit_once('/').map_or(path, |(_, f)| f)
}

fn dir_part(path: &str) -> &str {
    path.rsplit_once('/').map_or(".", |(d, _)| d)
}

/// The error for a name no table entry accepts: refused on purpose, or a likely typo.
pub(crate) fn unknown(name: &str) -> Problem {
    match crate::refused::lookup(name) {
        Some(refusal) => crate::refused::problem(name, refusal),
        None => Problem::InvalidCommand { name: name.to_string(), suggestion: suggest(name) },
    }
}

fn apply_one(config: &mut Config, name: &str, args: &[String]) -> Result<(), Problem> {
    let Some(directive) = find(name) else {
        return Err(unknown(name));
    };
    let (min, max) = directive.args;
    if args.len() < min || args.len() > max {
        return Err(Problem::Arity {
            directive: directive.name,
            expected: arity_text(directive.args),
            help: directive.help,
        });
    }
    if config.in_vhost {
        if !crate::vhost::PER_VHOST.iter().any(|name| name.eq_ignore_ascii_case(directive.name)) {
            return Err(Problem::NotInVirtualHost { directive: directive.name });
        }
        config.applied.push(directive.name);
    }
    (directive.apply)(config, args)
}

fn apply_section(
    config: &mut Config,
    name: &str,
    args: &[String],
    span: &Span,
    children: &[Node],
    errors: &mut Vec<ConfigError>,
    depth: usize,
) {
    if name.eq_ignore_ascii_case("IfModule") {
        let Some(module) = args.first().filter(|_| args.len() == 1) else {
            errors.push(ConfigError::at(
                span,
                Some(name),
                Problem::Arity {
                    directive: "<IfModule>",
                    expected: "one argument",
                    help: "a module name or module identifier, optionally preceded by !",
                },
            ));
            return;
        };
        if module_condition_holds(module) {
            apply_nodes(config, children, errors, depth);
        }
    } else if name.eq_ignore_ascii_case("IfDefine") {
        let Some(variable) = args.first().filter(|_| args.len() == 1) else {
            errors.push(ConfigError::at(
                span,
                Some(name),
                Problem::Arity {
                    directive: "<IfDefine>",
                    expected: "one argument",
                    help: "a variable name defined by Define, optionally preceded by !",
                },
            ));
            return;
        };
        if crate::define::condition_holds(config, variable) {
            apply_nodes(config, children, errors, depth);
        }
    } else if name.eq_ignore_ascii_case("Location") {
        apply_location(config, args, span, children, errors);
    } else if name.eq_ignore_ascii_case("VirtualHost") {
        apply_virtual_host(config, args, span, children, errors, depth);
    } else if let Some(kind) = crate::directory::Kind::of(name) {
        let root = config.server_root.clone();
        crate::directory::read(
            &mut config.sections,
            kind,
            args,
            span,
            children,
            &|path| root.join(path),
            errors,
        );
    } else if let Some(container) = crate::location::section_only(name) {
        errors.push(ConfigError::at(span, Some(name), Problem::NotAllowedHere { directive: container }));
    } else if let Some(refusal) = crate::refused::lookup(name) {
        errors.push(ConfigError::at(
            span,
            Some(name),
            crate::refused::problem(&format!("<{name}>"), refusal),
        ));
    } else {
        errors.push(ConfigError::at(span, Some(name), Problem::UnknownSection { name: name.to_string() }));
    }
}

/// `<VirtualHost addr[:port] …>`: its directives go to a configuration of its own, merged with
/// the main server once the whole file is read ([`crate::vhost::resolve`]).
fn apply_virtual_host(
    config: &mut Config,
    args: &[String],
    span: &Span,
    children: &[Node],
    errors: &mut Vec<ConfigError>,
    depth: usize,
) {
    let fail = |problem| ConfigError::at(span, Some("VirtualHost"), problem);
    if config.in_vhost {
        errors.push(fail(Problem::NotInVirtualHost { directive: "<VirtualHost>" }));
        return;
    }
    if args.is_empty() {
        errors.push(fail(Problem::Arity {
            directive: "<VirtualHost>",
            expected: "one or more arguments",
            help: "addresses such as *:80, _default_:443 or 192.0.2.1:80",
        }));
        return;
    }
    let mut addrs = Vec::new();
    for arg in args {
        match crate::vhost::parse_addr(arg) {
            Ok(addr) => addrs.push(addr),
            Err(problem) => {
                errors.push(fail(problem));
                return;
            }
        }
    }
    let mut scratch = Config::defaults(config.source.clone(), config.server_root.clone());
    scratch.in_vhost = true;
    // What the file has read so far holds inside the section: its variables and LogFormat
    // nicknames.
    scratch.defines = config.defines.clone();
    scratch.log_formats = config.log_formats.clone();
    // `SSLOptions +X` inside adds to the main server's options, as mod_ssl merges them.
    scratch.tls_options.ssl_options = config.tls_options.ssl_options;
    apply_nodes(&mut scratch, children, errors, depth);
    // Variables are global wherever they are defined, and the section's warnings are the
    // whole configuration's.
    config.defines = std::mem::take(&mut scratch.defines);
    config.warnings.append(&mut scratch.warnings);
    config.vhost_inputs.push(crate::vhost::VhostInput {
        addrs,
        span: span.clone(),
        scratch: Box::new(scratch),
    });
}

/// `<Location path>`: SetHandler, Require and its containers, and authentication.
fn apply_location(
    config: &mut Config,
    args: &[String],
    span: &Span,
    children: &[Node],
    errors: &mut Vec<ConfigError>,
) {
    let [path] = args else {
        errors.push(ConfigError::at(
            span,
            Some("Location"),
            Problem::Arity {
                directive: "<Location>",
                expected: "one argument",
                help: "a URL path such as /server-status",
            },
        ));
        return;
    };
    let mut location = crate::location::Location::at(&weir_wire::target::merge_slashes(path));
    location.auth.at = Some(span.clone());
    let root = config.server_root.clone();
    crate::location::read_section(&mut location, children, &|file| root.join(file), errors);
    config.locations.push(location);
}

/// `<IfModule [!]name>`: Apache accepts both `ssl_module` and `mod_ssl.c`.
pub(crate) fn module_condition_holds(argument: &str) -> bool {
    let (negated, module) = match argument.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, argument),
    };
    let short = module
        .strip_suffix("_module")
        .or_else(|| module.strip_prefix("mod_").and_then(|m| m.strip_suffix(".c")))
        .or_else(|| (module == "prefork.c").then_some("mpm_prefork"))
        .unwrap_or(module);
    MODULES.contains(&short) != negated
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;
    use std::path::{Path, PathBuf};

    fn load(text: &str) -> Result<Config, crate::ConfigErrors> {
        Config::from_text(text, Path::new("t.conf"), Source::BuiltIn, PathBuf::from("/r"))
    }

    #[test]
    fn names_are_case_insensitive_and_unique() {
        for (index, directive) in DIRECTIVES.iter().enumerate() {
            assert!(
                DIRECTIVES[..index].iter().all(|d| !d.name.eq_ignore_ascii_case(directive.name)),
                "{} twice",
                directive.name
            );
        }
        let config = load("listen 80\nSTARTSERVERS 2\n").unwrap();
        assert_eq!(config.pool.start_servers, 2);
    }

    #[test]
    fn ifmodule_takes_apaches_branches() {
        assert!(module_condition_holds("mpm_prefork_module"));
        assert!(module_condition_holds("mod_reqtimeout.c"));
        assert!(module_condition_holds("prefork.c"));
        assert!(!module_condition_holds("mpm_event_module"));
        assert!(module_condition_holds("!mpm_worker_module"));
        let config = load(
            "Listen 80\n<IfModule mpm_prefork_module>\nStartServers 2\n</IfModule>\n<IfModule mod_php.c>\nStartServers 9\n</IfModule>\n",
        )
        .unwrap();
        assert_eq!(config.pool.start_servers, 2);
    }

    #[test]
    fn spill_space_and_body_limit() {
        let config = load("Listen 80\n").unwrap();
        assert_eq!(config.limit_request_body, crate::config::DEFAULT_LIMIT_REQUEST_BODY);
        assert_eq!(config.spill_dir, None);
        assert_eq!(config.spill_limit, crate::config::DEFAULT_SPILL_LIMIT);
        assert_eq!(config.spill_share(), crate::config::DEFAULT_SPILL_LIMIT / 4);
        let config = load("Listen 80\nSpillDir spool\nSpillLimit 256M\nLimitRequestBody 0\n").unwrap();
        assert_eq!(config.spill_dir, Some(PathBuf::from("/r/spool")));
        assert_eq!(config.spill_limit, 256 << 20);
        assert_eq!(config.spill_share(), 64 << 20);
        assert_eq!(config.limit_request_body, 0);
        let config = load("Listen 80\nSpillLimit 256M\nSpillLimitPerSource 100M\n").unwrap();
        assert_eq!(config.spill_share(), 100 << 20);
        let config = load("Listen 80\nSpillLimit 256M\nSpillLimitPerSource 1G\n").unwrap();
        assert_eq!(config.spill_share(), 256 << 20, "never more than the whole");
    }

    #[test]
    fn deprecated_aliases() {
        let config = load("Listen 80\nMaxClients 7\nMaxRequestsPerChild 100\n").unwrap();
        assert_eq!(config.pool.max_request_workers, 7);
        assert_eq!(config.pool.max_connections_per_child, 100);
    }

    #[test]
    fn tokens_interpreters_and_rlimits() {
        use crate::config::{RLimit, RLimitValue, ServerTokens};
        let config = load(
            "Listen 80\nServerTokens Full\nCGIInterpreter .php /usr/bin/php-cgi\nRLimitCPU 10 max\nRLimitMEM 104857600\n",
        )
        .unwrap();
        assert_eq!(config.server_tokens, ServerTokens::Full);
        assert_eq!(config.interpreter_for("index.PHP"), Some(Path::new("/usr/bin/php-cgi")));
        assert_eq!(config.interpreter_for(".php"), None);
        // A multi-byte name whose end is not on a character boundary at the extension's length.
        assert_eq!(config.interpreter_for("\u{e9}php"), None);
        assert_eq!(
            config.rlimits.cpu,
            Some(RLimit { soft: RLimitValue::Value(10), hard: Some(RLimitValue::Max) })
        );
        assert_eq!(config.rlimits.mem.unwrap().hard, None);
        assert!(load("Listen 80\nRLimitCPU 10 5\n").is_err());
        assert!(load("Listen 80\nServerTokens Everything\n").is_err());
        assert!(load("Listen 80\nCGIInterpreter php /usr/bin/php-cgi\n").is_err());
        assert_eq!(ServerTokens::Prod.product(), "weir");
        assert!(ServerTokens::Full.product().ends_with(" (Unix)"));
    }

    #[test]
    fn suggestions_only_for_near_misses() {
        assert_eq!(suggest("MaxRequestWorker"), Some("MaxRequestWorkers"));
        assert_eq!(suggest("DocumnetRoot"), Some("DocumentRoot"));
        assert_eq!(suggest("Frobnicate"), None);
    }
}
