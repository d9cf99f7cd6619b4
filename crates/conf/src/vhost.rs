//! `<VirtualHost addr:port …>`: name-based virtual hosts as Apache selects them.
//!
//! A `<VirtualHost>` section is read into a scratch [`Config`] of its own (the directive table
//! applies itself there, refusing what has no meaning per host); once the whole file is read,
//! each one is resolved against the main server: whatever the section does not set is
//! inherited, as Apache merges a virtual host with the main server. [`VhostMap`] then picks a
//! request's host from the connection's local address and the request's Host, the way Apache's
//! vhost.c does.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use crate::config::{Config, LogFormat, ScriptAlias, Tls};
use crate::error::{ConfigError, Problem};
use crate::location::Location;
use crate::syntax::Span;

/// Directives a `<VirtualHost>` may set (Include, `<Location>` and `<IfModule>` are allowed
/// too). Every other known directive is server-wide in weir and refused inside one, in
/// Apache's words ("X cannot occur within <VirtualHost> section").
pub const PER_VHOST: &[&str] = &[
    "ServerName",
    "ServerAlias",
    "ServerAdmin",
    "DocumentRoot",
    "DirectoryIndex",
    "ErrorLog",
    "ErrorDocument",
    "CustomLog",
    "ScriptAlias",
    "CGIInterpreter",
    "SSLEngine",
    "SSLCertificateFile",
    "SSLCertificateKeyFile",
    "SSLCertificateChainFile",
    "LogLevel",
    // Variables are the whole configuration's, wherever they are defined (as in Apache).
    "Define",
    "UnDefine",
    // AllowOverride None (the only value weir accepts anywhere), and SSLOptions (StdEnvVars,
    // which weir gives every script anyway, and ExportCertData, per site).
    "AllowOverride",
    "SSLOptions",
    // What applies to every directory of the host, below its <Directory> sections.
    "Options",
    // mod_alias: each site its own, then the main server's.
    "Alias",
    "AliasMatch",
    "ScriptAliasMatch",
    "Redirect",
    "RedirectMatch",
    "RedirectPermanent",
    "RedirectTemp",
];

/// The IP part of a `<VirtualHost>` address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VhostIp {
    /// `*`: any address the server listens on.
    Any,
    /// `_default_`: like `*`, but only when no other host claims the address.
    Default,
    /// One address: chosen before any `*` host for connections to it.
    Ip(IpAddr),
}

/// One address of a `<VirtualHost>` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VhostAddr {
    pub ip: VhostIp,
    /// `None`: `*` or no port, any port.
    pub port: Option<u16>,
}

impl VhostAddr {
    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }
}

impl std::fmt::Display for VhostAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            VhostIp::Any => write!(f, "*")?,
            VhostIp::Default => write!(f, "_default_")?,
            VhostIp::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
            VhostIp::Ip(ip) => write!(f, "{ip}")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => write!(f, ":*"),
        }
    }
}

/// Reads one `<VirtualHost>` argument: `*:80`, `*`, `_default_:443`, `192.0.2.1:80`,
/// `[2001:db8::1]:443`. Host names are refused: Apache resolves them once at start, which
/// silently breaks when DNS changes; the name belongs in ServerName.
pub fn parse_addr(text: &str) -> Result<VhostAddr, Problem> {
    let bad = |reason: &str| Problem::BadValue {
        directive: "<VirtualHost>",
        value: text.to_string(),
        reason: reason.to_string(),
    };
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (ip, after) = rest.split_once(']').ok_or_else(|| bad("an IPv6 address needs its closing ]"))?;
        match after {
            "" => (ip, None),
            _ => (ip, Some(after.strip_prefix(':').ok_or_else(|| bad("expected [address]:port"))?)),
        }
    } else if text.matches(':').count() > 1 {
        (text, None)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None | Some("*") => None,
        Some(port) => Some(port.parse::<u16>().map_err(|_| bad("the port must be a number or *"))?),
    };
    let ip = match host {
        "*" => VhostIp::Any,
        h if h.eq_ignore_ascii_case("_default_") => VhostIp::Default,
        h => VhostIp::Ip(h.parse::<IpAddr>().map_err(|_| {
            bad("weir takes *, _default_ or an IP address here; put host names in ServerName and ServerAlias")
        })?),
    };
    Ok(VhostAddr { ip, port })
}

/// A `<VirtualHost>` as read, before it is merged with the main server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VhostInput {
    pub addrs: Vec<VhostAddr>,
    pub span: Span,
    /// The section's directives applied to a configuration of their own.
    pub scratch: Box<Config>,
}

/// A resolved virtual host (or the main server, [`Config::main_site`]): everything a request
/// served by it is answered with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VirtualHost {
    /// The addresses of its `<VirtualHost>` line; empty for the main server.
    pub addrs: Vec<VhostAddr>,
    /// ServerName (the main server's when not set), without scheme or port.
    pub server_name: Option<String>,
    /// ServerAlias names, with `*` and `?` wildcards.
    pub aliases: Vec<String>,
    /// ServerAdmin: SERVER_ADMIN for scripts.
    pub server_admin: Option<String>,
    pub document_root: PathBuf,
    pub directory_index: Vec<String>,
    /// ErrorLog: where the lines about this host's requests go (the main server's when the
    /// section sets none).
    pub error_log: Option<PathBuf>,
    /// ErrorDocuments: the main server's, with this host's own replacing those of the same
    /// status.
    pub error_documents: crate::error_document::ErrorDocuments,
    /// CustomLog: the access log of the requests this host answers.
    pub custom_log: Option<PathBuf>,
    pub custom_log_format: LogFormat,
    /// CustomLog's own format (a LogFormat nickname or a format string), if any.
    pub custom_log_items: Option<Vec<crate::log_format::LogItem>>,
    /// This host's ScriptAliases, then the main server's; longest prefix first.
    pub script_aliases: Vec<ScriptAlias>,
    /// This host's CGIInterpreters, then the main server's.
    pub cgi_interpreters: Vec<(String, PathBuf)>,
    /// This host's `Alias`, `AliasMatch` and `ScriptAliasMatch` lines, then the main server's,
    /// each in order of appearance (Apache's merge: the first match wins).
    pub url_aliases: Vec<crate::alias::AliasRule>,
    /// This host's `Redirect` family, then the main server's, likewise.
    pub redirects: Vec<crate::alias::RedirectRule>,
    /// The main server's `<Location>` sections, then this host's (Apache's merge order).
    pub locations: Vec<Location>,
    /// The main server's `<Directory>` and `<Files>` sections, then this host's.
    pub sections: crate::directory::Sections,
    /// `SSLEngine`: `Some(true)` serves only over TLS, `Some(false)` only over plain HTTP;
    /// `None` follows the listener.
    pub ssl_engine: Option<bool>,
    /// The certificate shown to clients that name this host by SNI (the main server's when the
    /// section names none).
    pub tls: Tls,
    /// `SSLOptions +ExportCertData`: its scripts get the certificates in PEM.
    pub export_cert_data: bool,
    /// Where the section starts (the main server: the configuration file, line 0).
    pub file: PathBuf,
    pub line: usize,
}

impl VirtualHost {
    /// How the host is named in logs: its ServerName, else where its section starts.
    pub fn label(&self) -> String {
        match (&self.server_name, self.addrs.is_empty()) {
            (Some(name), _) => name.clone(),
            (None, true) => "(main server)".to_string(),
            (None, false) => format!("{}:{}", self.file.display(), self.line),
        }
    }

    /// Whether a (lowercase, port-less) host name is this host's ServerName or one of its
    /// ServerAliases.
    pub fn answers_to(&self, host: &str) -> bool {
        self.server_name.as_deref().is_some_and(|name| name.eq_ignore_ascii_case(host))
            || self.aliases.iter().any(|alias| wildcard_match(&alias.to_ascii_lowercase(), host))
    }
}

/// Merges each `<VirtualHost>` read with the main server, once the whole file has been read
/// (a main-server directive after the section still reaches it, as in Apache).
pub(crate) fn resolve(config: &mut Config, errors: &mut Vec<ConfigError>) {
    let inputs = std::mem::take(&mut config.vhost_inputs);
    let main = config.main_site();
    for input in inputs {
        let set = |name: &str| input.scratch.applied.iter().any(|n| n.eq_ignore_ascii_case(name));
        let own = &input.scratch;
        let mut script_aliases = own.script_aliases.clone();
        script_aliases.extend(main.script_aliases.iter().cloned());
        script_aliases.sort_by_key(|alias| std::cmp::Reverse(alias.url_prefix.len()));
        let mut cgi_interpreters = own.cgi_interpreters.clone();
        cgi_interpreters.extend(main.cgi_interpreters.iter().cloned());
        let at = format!("{}:{}", input.span.file.display(), input.span.line);
        let overlaps = crate::alias::overlap_warnings(&own.url_aliases, &own.script_aliases, Some(&at));
        config.warnings.extend(overlaps);
        let url_aliases = own.url_aliases.iter().chain(&main.url_aliases).cloned().collect();
        let redirects = own.redirects.iter().chain(&main.redirects).cloned().collect();
        let mut locations = main.locations.clone();
        locations.extend(own.locations.iter().cloned());
        let pick = |name: &str, own: PathBuf, main: &PathBuf| if set(name) { own } else { main.clone() };
        let tls = Tls {
            cert_file: if set("SSLCertificateFile") {
                own.tls.cert_file.clone()
            } else {
                main.tls.cert_file.clone()
            },
            key_file: if set("SSLCertificateKeyFile") {
                own.tls.key_file.clone()
            } else {
                main.tls.key_file.clone()
            },
            chain_file: if set("SSLCertificateChainFile") {
                own.tls.chain_file.clone()
            } else {
                main.tls.chain_file.clone()
            },
            generate_self_signed: false,
        };
        let (custom_log, custom_log_format, custom_log_items) = if set("CustomLog") {
            (own.custom_log.clone(), own.custom_log_format, own.custom_log_items.clone())
        } else {
            (main.custom_log.clone(), main.custom_log_format, main.custom_log_items.clone())
        };
        let vhost = VirtualHost {
            addrs: input.addrs.clone(),
            server_name: if set("ServerName") { own.server_name.clone() } else { main.server_name.clone() }
                .map(|name| host_of_server_name(&name)),
            aliases: own.server_aliases.clone(),
            server_admin: if set("ServerAdmin") {
                own.server_admin.clone()
            } else {
                main.server_admin.clone()
            },
            document_root: pick("DocumentRoot", own.document_root.clone(), &main.document_root),
            directory_index: if set("DirectoryIndex") {
                own.directory_index.clone()
            } else {
                main.directory_index.clone()
            },
            error_log: if set("ErrorLog") { own.error_log.clone() } else { main.error_log.clone() },
            error_documents: main.error_documents.merged_with(&own.error_documents),
            custom_log,
            custom_log_format,
            custom_log_items,
            script_aliases,
            cgi_interpreters,
            url_aliases,
            redirects,
            locations,
            sections: main.sections.then(&own.sections),
            ssl_engine: own.ssl_engine,
            tls,
            export_cert_data: if set("SSLOptions") {
                own.tls_options.ssl_options.export_cert_data
            } else {
                main.export_cert_data
            },
            file: input.span.file.to_path_buf(),
            line: input.span.line,
        };
        if vhost.ssl_engine == Some(true) && (vhost.tls.cert_file.is_none() || vhost.tls.key_file.is_none()) {
            errors.push(ConfigError::at(
                &input.span,
                Some("VirtualHost"),
                Problem::Contradiction(
                    "SSLEngine is on in this <VirtualHost>, but neither it nor the main server sets SSLCertificateFile and SSLCertificateKeyFile".to_string(),
                ),
            ));
        }
        if set("LogLevel") {
            config.warnings.push(format!(
                "LogLevel in the <VirtualHost> at {}:{} is ignored: weir has one LogLevel, the main server's",
                vhost.file.display(),
                vhost.line
            ));
        }
        config.vhosts.push(vhost);
    }
}

/// `ServerName [scheme://]host[:port]` → the host alone, lowercase.
fn host_of_server_name(name: &str) -> String {
    let name = name.split_once("://").map_or(name, |(_, rest)| rest);
    normalize_host(name)
}

/// A Host (or `:authority`) as compared with ServerName: lowercase, without its port and a
/// trailing dot; an IPv6 literal keeps its brackets.
pub fn normalize_host(host: &str) -> String {
    let host = host.trim();
    let without_port = if host.starts_with('[') {
        host.split_once(']').map_or(host.to_string(), |(ip, _)| format!("{ip}]"))
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_string(),
            _ => host.to_string(),
        }
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// Apache's `ap_strcasecmp_match` on lowercase text: `*` any run of characters (dots too),
/// `?` one character.
pub fn wildcard_match(pattern: &str, text: &str) -> bool {
    let (p, t) = (pattern.as_bytes(), text.as_bytes());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&b| b == b'*')
}

/// Which site answers a request: `0` is the main server, `n` the n-th `<VirtualHost>`.
#[derive(Debug, Clone, Default)]
pub struct VhostMap {
    hosts: Vec<VirtualHost>,
}

impl VhostMap {
    pub fn new(config: &Config) -> VhostMap {
        VhostMap { hosts: config.vhosts.clone() }
    }

    /// Whether any `<VirtualHost>` is configured.
    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// The sites a connection to `local` may be answered by, in order of appearance: the
    /// `<VirtualHost>`s naming this IP address (with this port or `*`), else those with `*`,
    /// else those with `_default_`; over TLS none with `SSLEngine off`, over plain HTTP none
    /// with `SSLEngine on`. Empty: the main server answers.
    pub fn candidates(&self, local: SocketAddr, tls: bool) -> Vec<usize> {
        let ip = local.ip().to_canonical();
        let usable = |host: &VirtualHost| host.ssl_engine.is_none_or(|on| on == tls);
        for tier in [Tier::Ip, Tier::Any, Tier::Default] {
            let found: Vec<usize> = self
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, host)| usable(host))
                .filter(|(_, host)| {
                    host.addrs.iter().any(|addr| {
                        addr.port_matches(local.port())
                            && match (tier, addr.ip) {
                                (Tier::Ip, VhostIp::Ip(want)) => want.to_canonical() == ip,
                                (Tier::Any, VhostIp::Any) | (Tier::Default, VhostIp::Default) => true,
                                _ => false,
                            }
                    })
                })
                .map(|(index, _)| index + 1)
                .collect();
            if !found.is_empty() {
                return found;
            }
        }
        Vec::new()
    }

    /// The site for a request on a connection to `local`, naming `host` (Host, or h2's
    /// `:authority`; `None` when absent or, over TLS, the SNI name): among the candidates, the
    /// first whose ServerName or ServerAlias matches, else the first candidate (the default for
    /// that address), else the main server (0).
    pub fn select(&self, local: SocketAddr, tls: bool, host: Option<&str>) -> usize {
        let candidates = self.candidates(local, tls);
        let Some(&first) = candidates.first() else {
            return 0;
        };
        let Some(host) = host.map(normalize_host).filter(|h| !h.is_empty()) else {
            return first;
        };
        candidates.iter().copied().find(|&site| self.hosts[site - 1].answers_to(&host)).unwrap_or(first)
    }
}

/// The virtual host map, as Apache's `-S` prints it: each address with its default host and
/// its name-based hosts, each with its file and line, then the main server.
pub fn describe(config: &Config) -> String {
    let mut out = String::from("VirtualHost configuration:\n");
    let mut addresses: Vec<String> = Vec::new();
    for host in &config.vhosts {
        for addr in &host.addrs {
            let text = addr.to_string();
            if !addresses.contains(&text) {
                addresses.push(text);
            }
        }
    }
    for address in &addresses {
        let hosts: Vec<&VirtualHost> =
            config.vhosts.iter().filter(|h| h.addrs.iter().any(|a| a.to_string() == *address)).collect();
        let at = |h: &VirtualHost| format!("({}:{})", h.file.display(), h.line);
        let name = |h: &VirtualHost| h.server_name.clone().unwrap_or_else(|| "(no ServerName)".to_string());
        if let [only] = hosts.as_slice() {
            out.push_str(&format!("{address:<22} {} {}\n", name(only), at(only)));
            continue;
        }
        out.push_str(&format!("{address:<22} is a NameVirtualHost\n"));
        if let Some(first) = hosts.first() {
            out.push_str(&format!("         default server {} {}\n", name(first), at(first)));
        }
        for host in &hosts {
            out.push_str(&format!("         namevhost {} {}\n", name(host), at(host)));
            for alias in &host.aliases {
                out.push_str(&format!("                 alias {alias}\n"));
            }
        }
    }
    out.push_str(&format!("ServerRoot: \"{}\"\n", config.server_root.display()));
    out.push_str(&format!("Main DocumentRoot: \"{}\"\n", config.document_root.display()));
    let error_log =
        config.error_log.as_ref().map_or_else(|| "stderr".to_string(), |p| p.display().to_string());
    out.push_str(&format!("Main ErrorLog: \"{error_log}\"\n"));
    out
}

#[derive(Debug, Clone, Copy)]
enum Tier {
    Ip,
    Any,
    Default,
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    fn load(text: &str) -> Result<Config, crate::ConfigErrors> {
        Config::for_tests(text)
    }

    #[test]
    fn addresses() {
        let addr = |t: &str| parse_addr(t).unwrap();
        assert_eq!(addr("*:80"), VhostAddr { ip: VhostIp::Any, port: Some(80) });
        assert_eq!(addr("*"), VhostAddr { ip: VhostIp::Any, port: None });
        assert_eq!(addr("*:*"), VhostAddr { ip: VhostIp::Any, port: None });
        assert_eq!(addr("_default_:443"), VhostAddr { ip: VhostIp::Default, port: Some(443) });
        assert_eq!(addr("192.0.2.1:8080").ip, VhostIp::Ip("192.0.2.1".parse().unwrap()));
        assert_eq!(addr("[::1]:443"), VhostAddr { ip: VhostIp::Ip("::1".parse().unwrap()), port: Some(443) });
        assert_eq!(addr("::1").port, None);
        for bad in ["www.example.com:80", "*:http", "[::1", "1.2.3.4:99999"] {
            assert!(parse_addr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_and_wildcards() {
        assert_eq!(normalize_host("WWW.Example.com:8443"), "www.example.com");
        assert_eq!(normalize_host("example.com."), "example.com");
        assert_eq!(normalize_host("[::1]:443"), "[::1]");
        assert!(wildcard_match("*.example.com", "a.b.example.com"));
        assert!(!wildcard_match("*.example.com", "example.com"));
        assert!(wildcard_match("web?.example.com", "web1.example.com"));
        assert!(!wildcard_match("web?.example.com", "web12.example.com"));
        assert!(wildcard_match("*", "anything"));
    }

    #[test]
    fn a_vhost_inherits_what_it_does_not_set() {
        let config = load(
            "Listen 127.0.0.1:0 http\nServerName main.test\nServerAdmin root@main.test\nScriptAlias /cgi-bin/ /srv/cgi/\n\
             <VirtualHost *:80>\n ServerName A.test:80\n ServerAlias *.a.test\n DocumentRoot /srv/a\n ScriptAlias /cgi-bin/admin/ /srv/a-admin/\n\
             <Location /private>\n  Require all denied\n </Location>\n</VirtualHost>\nDirectoryIndex start.html\n",
        )
        .unwrap();
        let host = &config.vhosts[0];
        assert_eq!(host.server_name.as_deref(), Some("a.test"));
        assert_eq!(host.server_admin.as_deref(), Some("root@main.test"), "inherited");
        assert_eq!(host.document_root, PathBuf::from("/srv/a"));
        assert_eq!(host.directory_index, vec!["start.html"], "a later main-server line reaches it");
        let prefixes: Vec<&str> = host.script_aliases.iter().map(|a| a.url_prefix.as_str()).collect();
        assert_eq!(prefixes, ["/cgi-bin/admin/", "/cgi-bin/"]);
        assert_eq!(host.locations.len(), 1);
        assert!(config.locations.is_empty(), "the section's Location stays in it");
        assert_eq!(config.document_root, PathBuf::from("/etc/weir/htdocs"), "the main server keeps its own");
        assert_eq!((host.file.as_path(), host.line), (Path::new("/etc/weir/weir.conf"), 5));
    }

    #[test]
    fn export_cert_data_merges_as_mod_ssl_merges_options() {
        let config = load(
            "Listen 80 http\nSSLOptions +ExportCertData\n\
             <VirtualHost *:80>\nServerName inherits.test\n</VirtualHost>\n\
             <VirtualHost *:80>\nServerName adds.test\nSSLOptions +StdEnvVars\n</VirtualHost>\n\
             <VirtualHost *:80>\nServerName removes.test\nSSLOptions -ExportCertData\n</VirtualHost>\n\
             <VirtualHost *:80>\nServerName replaces.test\nSSLOptions StdEnvVars\n</VirtualHost>\n",
        )
        .unwrap();
        assert!(config.main_site().export_cert_data);
        let exported: Vec<bool> = config.vhosts.iter().map(|host| host.export_cert_data).collect();
        assert_eq!(exported, [true, true, false, false]);
        let config =
            load("Listen 80 http\n<VirtualHost *:80>\nSSLOptions +ExportCertData\n</VirtualHost>\n").unwrap();
        assert!(!config.main_site().export_cert_data, "a section's option stays in it");
        assert!(config.vhosts[0].export_cert_data);
    }

    #[test]
    fn error_documents_merge_code_by_code() {
        let config = load(
            "Listen 80 http\nErrorDocument 404 /404.html\nErrorDocument 500 \"main 500\"\n\
             <VirtualHost *:80>\nErrorDocument 404 \"own 404\"\nErrorDocument 500 default\n</VirtualHost>\n",
        )
        .unwrap();
        use crate::error_document::ErrorDocument;
        let host = &config.vhosts[0];
        assert_eq!(host.error_documents.get(404), Some(&ErrorDocument::Text("own 404".into())));
        assert_eq!(host.error_documents.get(500), None);
        assert_eq!(config.error_documents.get(404), Some(&ErrorDocument::Local("/404.html".into())));
    }

    #[test]
    fn variables_reach_into_a_vhost_and_out_of_it() {
        let config = load(
            "Listen 80 http\nDefine ROOT /srv\nLogFormat \"%h %r\" short\n\
             <VirtualHost *:80>\n DocumentRoot ${ROOT}/a\n CustomLog ${ROOT}/a.log short\n Define INNER 1\n</VirtualHost>\n\
             <IfDefine INNER>\nServerName inner.test\n</IfDefine>\n",
        )
        .unwrap();
        assert_eq!(config.vhosts[0].document_root, PathBuf::from("/srv/a"));
        assert!(config.vhosts[0].custom_log_items.is_some(), "the main server's LogFormat nickname");
        assert_eq!(config.server_name.as_deref(), Some("inner.test"), "a Define inside is global");
    }

    #[test]
    fn server_wide_directives_are_refused_inside_with_apaches_words() {
        let errors =
            load("Listen 80\n<VirtualHost *:80>\n StartServers 3\n Listen 81\n</VirtualHost>\n").unwrap_err();
        let text = errors.to_string();
        assert!(
            text.contains("line 3")
                && text.contains("StartServers cannot occur within <VirtualHost> section"),
            "{text}"
        );
        assert!(
            text.contains("line 4") && text.contains("Listen cannot occur within <VirtualHost> section"),
            "{text}"
        );
        let text =
            load("Listen 80\n<VirtualHost www.example.com:80>\n</VirtualHost>\n").unwrap_err().to_string();
        assert!(text.contains("line 2 of /etc/weir/weir.conf") && text.contains("ServerName"), "{text}");
        let text =
            load("Listen 80\n<VirtualHost *:80>\n<VirtualHost *:81>\n</VirtualHost>\n</VirtualHost>\n")
                .unwrap_err()
                .to_string();
        assert!(
            text.contains("line 3")
                && text.contains("<VirtualHost> cannot occur within <VirtualHost> section"),
            "{text}"
        );
        let text = load("Listen 80\nServerAlias x.test\n").unwrap_err().to_string();
        assert!(text.contains("ServerAlias only used in <VirtualHost>"), "{text}");
        let text = load("Listen 80 http\n<VirtualHost *:443>\nSSLEngine on\n</VirtualHost>\n")
            .unwrap_err()
            .to_string();
        assert!(text.contains("line 2") && text.contains("SSLCertificateFile"), "{text}");
    }

    #[test]
    fn selection_as_apache_does_it() {
        let config = load(
            "Listen 80 http\n\
             <VirtualHost *:80>\nServerName first.test\n</VirtualHost>\n\
             <VirtualHost *:80>\nServerName second.test\nServerAlias *.second.test\n</VirtualHost>\n\
             <VirtualHost 192.0.2.9:80>\nServerName ip.test\n</VirtualHost>\n\
             <VirtualHost 192.0.2.9:80>\nServerName ip2.test\n</VirtualHost>\n\
             <VirtualHost _default_:*>\nServerName fallback.test\n</VirtualHost>\n\
             <VirtualHost *:*>\nSSLEngine off\nServerName plain.test\n</VirtualHost>\n",
        )
        .unwrap();
        let map = VhostMap::new(&config);
        let at = |a: &str| a.parse::<SocketAddr>().unwrap();
        assert_eq!(map.select(at("127.0.0.1:80"), false, Some("second.test")), 2);
        assert_eq!(map.select(at("127.0.0.1:80"), false, Some("x.y.Second.Test:80")), 2, "alias wildcard");
        assert_eq!(map.select(at("127.0.0.1:80"), false, Some("unknown.test")), 1, "first is the default");
        assert_eq!(map.select(at("127.0.0.1:80"), false, None), 1);
        assert_eq!(
            map.select(at("192.0.2.9:80"), false, Some("second.test")),
            3,
            "an IP host wins its address"
        );
        assert_eq!(map.select(at("192.0.2.9:80"), false, Some("ip2.test")), 4);
        assert_eq!(map.select(at("127.0.0.1:8080"), false, Some("plain.test")), 6);
        assert_eq!(
            map.select(at("127.0.0.1:8080"), true, Some("plain.test")),
            5,
            "SSLEngine off: not over TLS"
        );
        let shown = describe(&config);
        assert!(shown.contains("*:80                   is a NameVirtualHost"), "{shown}");
        assert!(shown.contains("default server first.test (/etc/weir/weir.conf:2)"), "{shown}");
        assert!(shown.contains("alias *.second.test"), "{shown}");
        let none = load("Listen 80 http\n<VirtualHost 192.0.2.1:80>\n</VirtualHost>\n").unwrap();
        assert_eq!(VhostMap::new(&none).select(at("127.0.0.1:80"), false, Some("x")), 0, "the main server");
    }
}
