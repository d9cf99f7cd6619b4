//! CGI/1.1 (RFC 3875) under `ScriptAlias`: finds the script a request names, runs it with the
//! meta-variables, its body streamed into its stdin, and turns its output into the response.

use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use weir_conf::alias::{self, AliasKind, AliasRule};
use weir_conf::vhost::VirtualHost;
use weir_conf::{Config, RLimitValue, RLimits};
use weir_prefork::AfterRequest;
use weir_wire as wire;
use weir_wire::script_path::{self, Verdict};

use crate::body::RequestBody;
use crate::cgi_relay::{kill_group, relay, Connection, Script};
use crate::request::Request;
use crate::response::{reason, ResponseWriter};

/// One `ScriptAlias`: a URL prefix and the directory its scripts live in.
#[derive(Debug, Clone)]
pub struct ScriptDir {
    pub url_prefix: String,
    pub dir: PathBuf,
}

/// What CGI needs to know about the server.
#[derive(Debug, Clone)]
pub struct CgiSettings {
    /// Script directories, longest prefix first.
    pub script_dirs: Vec<ScriptDir>,
    /// `Alias`, `AliasMatch`, `ScriptAliasMatch`, in order: the site's own mapping, so the worker
    /// finds the script the edge routed here.
    pub url_aliases: Vec<AliasRule>,
    pub document_root: PathBuf,
    /// `CGIInterpreter`: extension (with its dot) and interpreter.
    pub interpreters: Vec<(String, PathBuf)>,
    /// `AddHandler cgi-script`: extensions (with their dot) of files run as programs themselves.
    pub cgi_script_extensions: Vec<String>,
    /// The site's `<Directory>` and `<Files>` sections, for `Options ExecCGI`.
    pub sections: weir_conf::directory::Sections,
    /// DocumentRoot as configured, which the sections' paths are written against.
    pub mapped_root: PathBuf,
    /// RLimitCPU, RLimitMEM, RLimitNPROC for every script.
    pub rlimits: RLimits,
    /// SERVER_SOFTWARE, as ServerTokens allows.
    pub server_software: String,
    /// SERVER_NAME when the request brings no Host.
    pub server_name: Option<String>,
    /// SERVER_ADMIN: `ServerAdmin`, when set.
    pub server_admin: Option<String>,
    /// The `<VirtualHost>` these settings belong to, named in the error log's lines about its
    /// scripts (in the main ErrorLog when the site has none of its own); `None` for the main
    /// server.
    pub vhost: Option<String>,
    /// The site has an ErrorLog other than the main server's: its requests run in a `site`
    /// span, whose error-log lines go there.
    pub own_error_log: bool,
    /// A script still running after this long is killed with its process group.
    pub timeout: Duration,
}

impl CgiSettings {
    /// The CGI settings of a configuration's main server.
    pub fn from_config(config: &Config) -> CgiSettings {
        CgiSettings::for_site(config, &config.main_site(), None)
    }

    /// The CGI settings of every site, by its number on the edge–worker contract (0: the main
    /// server, then each `<VirtualHost>`).
    pub fn for_every_site(config: &Config) -> Vec<CgiSettings> {
        config
            .sites()
            .iter()
            .enumerate()
            .map(|(number, site)| CgiSettings::for_site(config, site, (number > 0).then(|| site.label())))
            .collect()
    }

    /// The CGI settings of one site: its scripts, DocumentRoot and names; the limits are the
    /// server's.
    pub fn for_site(config: &Config, site: &VirtualHost, vhost: Option<String>) -> CgiSettings {
        CgiSettings {
            script_dirs: site
                .script_aliases
                .iter()
                .map(|alias| ScriptDir {
                    url_prefix: weir_wire::target::merge_slashes(&alias.url_prefix),
                    dir: alias.dir.clone(),
                })
                .collect(),
            url_aliases: site.url_aliases.clone(),
            // Canonical, so the containment check below compares real paths.
            document_root: std::fs::canonicalize(&site.document_root)
                .unwrap_or_else(|_| site.document_root.clone()),
            interpreters: site.cgi_interpreters.clone(),
            cgi_script_extensions: config.cgi_script_extensions.clone(),
            sections: site.sections.clone(),
            mapped_root: site.document_root.clone(),
            rlimits: config.rlimits,
            server_software: config.server_tokens.product(),
            server_name: site.server_name.clone(),
            server_admin: site.server_admin.clone(),
            own_error_log: vhost.is_some() && site.error_log.is_some() && site.error_log != config.error_log,
            vhost,
            timeout: config.timeout,
        }
    }

    fn is_cgi_script(&self, name: &str) -> bool {
        script_path::has_extension(name, self.cgi_script_extensions.iter().map(String::as_str))
    }

    fn interpreter_for(&self, name: &str) -> Option<&Path> {
        self.interpreters
            .iter()
            .find(|(ext, _)| script_path::has_extension(name, std::iter::once(ext.as_str())))
            .map(|(_, path)| path.as_path())
    }
}

/// The script a URL path names, and the PATH_INFO after it.
#[derive(Debug, PartialEq, Eq)]
pub struct ScriptTarget {
    /// SCRIPT_NAME: the URL prefix and the script's name, decoded (as Apache gives it).
    pub script_name: String,
    /// SCRIPT_FILENAME.
    pub file: PathBuf,
    /// PATH_INFO, decoded.
    pub path_info: String,
    /// The `CGIInterpreter` that runs the file, if it is not run directly.
    pub interpreter: Option<PathBuf>,
    /// An `nph-` script, whose output starts with its own status line.
    pub nph: bool,
}

/// Why a CGI request did not reach its script.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No script by that name, or the name was not a plain file name.
    NotFound,
    /// The file is there but not an executable regular file.
    Forbidden,
}

impl CgiSettings {
    /// Resolves a normalised, decoded URL path ([`weir_wire::target`]) to a script: one under
    /// a script directory, or a file under DocumentRoot whose extension has a `CGIInterpreter`.
    /// `None`: not a script's path.
    pub fn target(&self, path: &str) -> Option<Result<ScriptTarget, Refusal>> {
        if let Some(alias) = self.script_dirs.iter().find(|alias| path.starts_with(&alias.url_prefix)) {
            return Some(self.resolve_in_alias(alias, path));
        }
        if let Some(found) = alias::map(&self.url_aliases, path) {
            let Ok(mapped) = found else {
                return Some(Err(Refusal::NotFound));
            };
            let segments: Vec<&str> = mapped.relative.iter().map(String::as_str).collect();
            if mapped.kind == AliasKind::Scripts {
                return Some(self.resolve_in_script_match(&mapped.root, &segments, path));
            }
            let index = self.code_index(&segments)?;
            let Ok(root) = std::fs::canonicalize(&mapped.root) else {
                return Some(Err(Refusal::NotFound));
            };
            return Some(self.resolve_in_root(&root, &mapped.root, &segments, index, Some(path)));
        }
        if self.interpreters.is_empty() && self.cgi_script_extensions.is_empty() {
            return None;
        }
        let segments = script_path::segments(path)?;
        let index = self.code_index(&segments)?;
        Some(self.resolve_in_root(&self.document_root, &self.mapped_root, &segments, index, None))
    }

    /// The first segment that names code (a `CGIInterpreter` or `AddHandler cgi-script` file).
    fn code_index(&self, segments: &[&str]) -> Option<usize> {
        segments.iter().position(|s| self.interpreter_for(s).is_some() || self.is_cgi_script(s))
    }

    /// A `ScriptAliasMatch` script: the first file walking `segments` under `dir`
    /// ([`script_path::locate`], as the edge found it).
    fn resolve_in_script_match(
        &self,
        dir: &Path,
        segments: &[&str],
        path: &str,
    ) -> Result<ScriptTarget, Refusal> {
        let index = script_path::locate(dir, segments).map_err(|verdict| match verdict {
            Verdict::Forbidden => Refusal::Forbidden,
            _ => Refusal::NotFound,
        })?;
        let file = dir.join(segments[..=index].iter().collect::<PathBuf>());
        let name = segments[index];
        let interpreter = self.interpreter_for(name).map(Path::to_path_buf);
        match script_path::alias_verdict(&file, interpreter.is_some(), script_path::Runner::current()) {
            Verdict::Run => {}
            Verdict::Forbidden => return Err(Refusal::Forbidden),
            Verdict::NotFound | Verdict::Unknown => return Err(Refusal::NotFound),
        }
        let path_info = info_after(segments, index);
        Ok(ScriptTarget {
            script_name: script_name_in(path, &path_info),
            file,
            path_info,
            nph: name.starts_with("nph-"),
            interpreter,
        })
    }

    fn resolve_in_alias(&self, alias: &ScriptDir, path: &str) -> Result<ScriptTarget, Refusal> {
        // The edge refuses from the same rules before it reads a body (weir_wire::script_path).
        let found = script_path::in_alias(&path[alias.url_prefix.len()..]).ok_or(Refusal::NotFound)?;
        let file = alias.dir.join(found.name);
        let interpreter = self.interpreter_for(found.name).map(Path::to_path_buf);
        match script_path::alias_verdict(&file, interpreter.is_some(), script_path::Runner::current()) {
            Verdict::Run => {}
            Verdict::Forbidden => return Err(Refusal::Forbidden),
            Verdict::NotFound | Verdict::Unknown => return Err(Refusal::NotFound),
        }
        let script_name = format!("{}/{}", alias.url_prefix.trim_end_matches('/'), found.name);
        let path_info = found.info.to_string();
        Ok(ScriptTarget { script_name, file, path_info, nph: found.name.starts_with("nph-"), interpreter })
    }

    /// Code under `root` (canonical: DocumentRoot, or an `Alias` directory, whose URL `path`
    /// then gives SCRIPT_NAME); `mapped` is that root as configured, which `<Directory>`
    /// sections are written against.
    fn resolve_in_root(
        &self,
        root: &Path,
        mapped: &Path,
        segments: &[&str],
        index: usize,
        path: Option<&str>,
    ) -> Result<ScriptTarget, Refusal> {
        let relative: PathBuf = segments[..=index].iter().collect();
        let file = std::fs::canonicalize(root.join(&relative)).map_err(|_| Refusal::NotFound)?;
        // A symlink out of the root is not followed.
        if !file.starts_with(root) {
            return Err(Refusal::NotFound);
        }
        if !std::fs::metadata(&file).map_err(|_| Refusal::NotFound)?.is_file() {
            return Err(Refusal::NotFound);
        }
        let interpreter = self.interpreter_for(segments[index]).map(Path::to_path_buf);
        // An AddHandler cgi-script file runs itself: only where Options allow it (ExecCGI, as
        // the edge checked too), and it must be executable, as in a ScriptAlias.
        if interpreter.is_none() {
            if !weir_conf::directory::exec_cgi(&self.sections, &mapped.join(&relative)) {
                return Err(Refusal::Forbidden);
            }
            match script_path::alias_verdict(&file, false, script_path::Runner::current()) {
                Verdict::Run => {}
                Verdict::Forbidden => return Err(Refusal::Forbidden),
                Verdict::NotFound | Verdict::Unknown => return Err(Refusal::NotFound),
            }
        }
        let path_info = info_after(segments, index);
        let script_name = match path {
            Some(path) => script_name_in(path, &path_info),
            None => format!("/{}", segments[..=index].join("/")),
        };
        Ok(ScriptTarget { script_name, interpreter, file, path_info, nph: false })
    }
}

/// PATH_INFO: the segments after the script's.
fn info_after(segments: &[&str], index: usize) -> String {
    if index + 1 < segments.len() {
        format!("/{}", segments[index + 1..].join("/"))
    } else {
        String::new()
    }
}

/// SCRIPT_NAME for a script an alias maps: the URL path without its PATH_INFO, as Apache gives
/// it (the URL may name the script differently from its file).
fn script_name_in(path: &str, path_info: &str) -> String {
    let trimmed = path.trim_end_matches('/');
    let trimmed = if trimmed.is_empty() { "/" } else { trimmed };
    trimmed.strip_suffix(path_info).filter(|_| !path_info.is_empty()).unwrap_or(trimmed).to_string()
}

/// Runs the script and writes its response. Errors are answered here; none escapes. Returns
/// whether the connection to the edge may carry another request.
///
/// The body goes into the script's stdin as it comes from the edge, a bounded piece at a time,
/// while the script's output goes back; the edge is asked for it (`100 Continue`) only once
/// the script has been started.
pub fn serve<S: Read + Write + AsFd, W: Write>(
    settings: &CgiSettings,
    target: &ScriptTarget,
    request: &Request,
    body: &mut RequestBody<S>,
    mut out: ResponseWriter<W>,
) -> AfterRequest {
    let mut child = match spawn(settings, target, request, body.length()) {
        Ok(child) => child,
        Err(error) => {
            tracing::error!(script = %target.file.display(), %error, "AH01241: couldn't spawn child process");
            body.settle_for(&mut out, Instant::now() + settings.timeout);
            let _ = out.simple(500, reason(500), "The script could not be started.\n");
            return AfterRequest::KeepAlive;
        }
    };
    if let Err(error) = body.accept() {
        tracing::debug!(%error, "the edge went away before the request body was sent");
        kill_group(&mut child);
        return AfterRequest::Close;
    }
    let name = match &settings.vhost {
        Some(vhost) => format!("{} (vhost {vhost})", target.file.display()),
        None => target.file.display().to_string(),
    };
    let script = Script { name: &name, nph: target.nph, timeout: settings.timeout };
    match relay(&script, child, body, out) {
        Connection::Reusable => AfterRequest::KeepAlive,
        Connection::Close => AfterRequest::Close,
    }
}

fn spawn(
    settings: &CgiSettings,
    target: &ScriptTarget,
    request: &Request,
    content_length: u64,
) -> std::io::Result<Child> {
    let mut command = match &target.interpreter {
        // The interpreter finds the script through SCRIPT_FILENAME; no arguments are passed, so
        // a query string can never become command-line options (CVE-2012-1823).
        Some(interpreter) => Command::new(interpreter),
        None => Command::new(&target.file),
    };
    let limits = rlimit_values(&settings.rlimits);
    command
        .env_clear()
        .envs(meta_variables(settings, target, request, content_length))
        .current_dir(target.file.parent().unwrap_or(Path::new("/")))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so a timeout kills whatever the script started too.
        .process_group(0);
    // SAFETY: the closure runs in the forked child before exec and makes only async-signal-safe
    // system calls. A script must not outlive a worker that crashed.
    unsafe {
        command.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
            reset_signals();
            for (resource, limit) in &limits {
                if libc::setrlimit(*resource, limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    // A pipe, fed by the relay as the body comes from the edge: never a copy of the whole body.
    command.stdin(if content_length == 0 { Stdio::null() } else { Stdio::piped() });
    command.spawn()
}

/// Every signal back to its default disposition, none blocked: a script starts as from a shell,
/// not with what the worker ignores (SIGHUP, SIGINT: the pool master's to send) or what the
/// process that started weir ignored. Handled signals are reset by exec itself; ignored ones
/// are inherited, so each is set back here. A raw rt_sigaction, because the C library refuses
/// the signals it reserves for itself (32, 33), which weir's parent may have left ignored.
/// Runs in the forked child before exec: system calls only.
fn reset_signals() {
    // The kernel's sigaction with SIG_DFL (0), no flags and an empty mask: all zeros, whatever
    // the architecture's field order.
    let default = [0u64; 4];
    for signal in 1..=64 {
        if signal == libc::SIGKILL || signal == libc::SIGSTOP {
            continue;
        }
        // SAFETY: rt_sigaction reads a zeroed kernel sigaction (SIG_DFL) of the size it expects
        // at most; 8 is the kernel's sigset size. Failures (none expected) leave the default.
        unsafe {
            libc::syscall(
                libc::SYS_rt_sigaction,
                signal,
                default.as_ptr(),
                std::ptr::null_mut::<u64>(),
                8usize,
            )
        };
    }
    let empty = [0u64; 1];
    // SAFETY: rt_sigprocmask with an empty set of the kernel's size unblocks every signal.
    unsafe {
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            empty.as_ptr(),
            std::ptr::null_mut::<u64>(),
            8usize,
        )
    };
}

/// The CGI/1.1 meta-variables for this request.
fn meta_variables(
    settings: &CgiSettings,
    target: &ScriptTarget,
    request: &Request,
    content_length: u64,
) -> Vec<(String, String)> {
    let host = request.header("x-forwarded-host").or_else(|| request.header("host"));
    let server_name = host
        .map(|h| h.rsplit_once(':').filter(|(_, p)| p.parse::<u16>().is_ok()).map_or(h, |(n, _)| n))
        .or(settings.server_name.as_deref())
        .unwrap_or("localhost");
    let https = request.header("x-forwarded-proto") == Some("https");
    let server_port = request.header("x-forwarded-port").unwrap_or(if https { "443" } else { "80" });
    let mut vars = vec![
        ("GATEWAY_INTERFACE", "CGI/1.1".to_string()),
        ("SERVER_PROTOCOL", request.protocol.clone()),
        ("SERVER_SOFTWARE", settings.server_software.clone()),
        ("SERVER_NAME", server_name.to_string()),
        ("SERVER_PORT", server_port.to_string()),
        ("REQUEST_METHOD", request.method.clone()),
        ("QUERY_STRING", request.query().to_string()),
        ("REQUEST_URI", request.target.clone()),
        ("SCRIPT_NAME", target.script_name.clone()),
        ("SCRIPT_FILENAME", target.file.display().to_string()),
        ("DOCUMENT_ROOT", settings.document_root.display().to_string()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect::<Vec<_>>();
    if !target.path_info.is_empty() {
        vars.push(("PATH_INFO".into(), target.path_info.clone()));
        let translated = settings.document_root.join(target.path_info.trim_start_matches('/'));
        vars.push(("PATH_TRANSLATED".into(), translated.display().to_string()));
    }
    if let Some(admin) = &settings.server_admin {
        vars.push(("SERVER_ADMIN".into(), admin.clone()));
    }
    if let Some(client) = request.client {
        vars.push(("REMOTE_ADDR".into(), client.ip().to_string()));
        vars.push(("REMOTE_PORT".into(), client.port().to_string()));
    }
    if https {
        vars.push(("HTTPS".into(), "on".into()));
    }
    if let (Some(user), Some(kind)) = (&request.remote_user, &request.auth_type) {
        vars.push(("REMOTE_USER".into(), user.clone()));
        vars.push(("AUTH_TYPE".into(), kind.clone()));
    }
    if let Some(tls) = &request.tls {
        vars.push(("SSL_PROTOCOL".into(), tls.protocol.clone()));
        vars.push(("SSL_CIPHER".into(), tls.cipher.clone()));
        vars.push(("SSL_CLIENT_VERIFY".into(), tls.client_verify.clone()));
        if let Some(subject) = &tls.client_subject {
            vars.push(("SSL_CLIENT_S_DN".into(), subject.clone()));
        }
        if let Some(pem) = &tls.server_cert {
            vars.push(("SSL_SERVER_CERT".into(), pem.clone()));
        }
        if let Some(pem) = &tls.client_cert {
            vars.push(("SSL_CLIENT_CERT".into(), pem.clone()));
        }
        for (n, pem) in tls.client_chain.iter().enumerate() {
            vars.push((format!("SSL_CLIENT_CERT_CHAIN_{n}"), pem.clone()));
        }
    }
    if let Some(redirect) = &request.redirect {
        // An ErrorDocument: what Apache's internal redirect tells the script.
        vars.push(("REDIRECT_STATUS".into(), redirect.status.clone()));
        vars.push(("REDIRECT_URL".into(), redirect.url.clone()));
        vars.push(("REDIRECT_QUERY_STRING".into(), redirect.query.clone()));
        vars.push(("REDIRECT_REQUEST_METHOD".into(), redirect.method.clone()));
    } else if target.interpreter.is_some() {
        // php-cgi refuses to run without it (cgi.force_redirect), as behind Apache's Action.
        vars.push(("REDIRECT_STATUS".into(), "200".into()));
    }
    // RFC 3875 4.1.2: unset when no body is attached. The edge always frames with a
    // Content-Length, so a method that carries a body is what tells an empty body from none.
    // The head's Content-Length: the body itself is still on its way.
    let carries_body = matches!(request.method.as_str(), "POST" | "PUT" | "PATCH");
    if content_length > 0 || carries_body {
        vars.push(("CONTENT_LENGTH".into(), content_length.to_string()));
    }
    if let Some(content_type) = request.header("content-type") {
        vars.push(("CONTENT_TYPE".into(), content_type.to_string()));
    }
    for (name, value) in &request.headers {
        // Apache drops names with '_' so `X_Forwarded_For` cannot pose as `X-Forwarded-For`;
        // credentials are not passed (RFC 3875 4.1.18) unless `CGIPassAuth On`; framing is already in CONTENT_*, and
        // Expect belongs to the edge–worker exchange, answered before the script ran. `Proxy`
        // would become HTTP_PROXY, which HTTP client libraries take as their outgoing proxy
        // (httpoxy; Apache drops it since 2.4.25). `Connection` describes the edge–worker hop
        // (always keep-alive), not the client's, so a script is not told something untrue.
        let lower = name.to_ascii_lowercase();
        if request.cgi_pass_auth && lower == "authorization" {
            vars.push(("HTTP_AUTHORIZATION".into(), String::from_utf8_lossy(value).into_owned()));
            continue;
        }
        if name.contains('_')
            || wire::is_internal(name)
            || [
                "authorization",
                "proxy-authorization",
                "content-length",
                "content-type",
                "expect",
                "proxy",
                "connection",
            ]
            .contains(&lower.as_str())
        {
            continue;
        }
        let key = format!("HTTP_{}", name.to_ascii_uppercase().replace('-', "_"));
        let value = String::from_utf8_lossy(value).into_owned();
        match vars.iter_mut().find(|(k, _)| *k == key) {
            Some((_, existing)) => {
                existing.push_str(", ");
                existing.push_str(&value);
            }
            None => vars.push((key, value)),
        }
    }
    vars
}

/// The `setrlimit` calls a script's child process makes before exec, computed beforehand so the
/// child does nothing but the calls.
fn rlimit_values(limits: &RLimits) -> Vec<(libc::__rlimit_resource_t, libc::rlimit)> {
    let mut out = Vec::new();
    for (resource, limit) in
        [(libc::RLIMIT_CPU, limits.cpu), (libc::RLIMIT_AS, limits.mem), (libc::RLIMIT_NPROC, limits.nproc)]
    {
        let Some(limit) = limit else { continue };
        let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
        // SAFETY: getrlimit writes one struct we own.
        if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
            continue;
        }
        let value = |v: RLimitValue| match v {
            RLimitValue::Max => current.rlim_max,
            RLimitValue::Value(n) => n.min(current.rlim_max),
        };
        let hard = limit.hard.map_or(current.rlim_max, value);
        let soft = value(limit.soft).min(hard);
        out.push((resource, libc::rlimit { rlim_cur: soft, rlim_max: hard }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// `/cgi-bin/x`, the script `/srv/cgi/x`, with no PATH_INFO.
    fn script_x() -> ScriptTarget {
        ScriptTarget {
            script_name: "/cgi-bin/x".into(),
            file: "/srv/cgi/x".into(),
            path_info: String::new(),
            interpreter: None,
            nph: false,
        }
    }

    fn settings(dir: &Path) -> CgiSettings {
        CgiSettings {
            script_dirs: vec![ScriptDir { url_prefix: "/cgi-bin/".into(), dir: dir.to_path_buf() }],
            url_aliases: Vec::new(),
            document_root: "/srv/www".into(),
            interpreters: Vec::new(),
            cgi_script_extensions: Vec::new(),
            sections: Default::default(),
            mapped_root: "/srv/www".into(),
            rlimits: RLimits::default(),
            server_software: "weir".into(),
            server_name: None,
            server_admin: None,
            vhost: None,
            own_error_log: false,
            timeout: Duration::from_secs(5),
        }
    }

    /// The worker finds through the site's aliases the script the edge routed: a
    /// ScriptAliasMatch script with its PATH_INFO, and code in an Alias directory with the URL's
    /// SCRIPT_NAME; a capture that climbs out finds nothing.
    #[test]
    fn resolves_scripts_through_aliases() {
        use weir_conf::alias::{AliasKind, AliasRule};
        let dir = std::env::temp_dir().join(format!("weir-cgi-alias-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tools/sub")).unwrap();
        std::fs::create_dir_all(dir.join("docs")).unwrap();
        for file in ["tools/sub/show", "docs/page.cgi", "secret.cgi"] {
            std::fs::write(dir.join(file), "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(dir.join(file), std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let d = dir.display();
        let mut s = settings(&dir.join("cgi-bin"));
        s.cgi_script_extensions = vec![".cgi".into()];
        s.url_aliases = vec![
            AliasRule::matching(
                "ScriptAliasMatch",
                "^/tools/(.*)",
                &format!("{d}/tools/$1"),
                AliasKind::Scripts,
            )
            .unwrap(),
            AliasRule::alias("/docs", dir.join("docs")).unwrap(),
            AliasRule::matching("AliasMatch", "^/d(.*)$", &format!("{d}/docs/$1"), AliasKind::Files).unwrap(),
        ];
        let found = s.target("/tools/sub/show/x/y").unwrap().unwrap();
        assert_eq!(
            (found.script_name.as_str(), found.path_info.as_str(), found.file.clone()),
            ("/tools/sub/show", "/x/y", dir.join("tools/sub/show"))
        );
        assert_eq!(s.target("/tools/sub").unwrap(), Err(Refusal::Forbidden));
        assert_eq!(s.target("/tools/nope").unwrap(), Err(Refusal::NotFound));
        let found = s.target("/docs/page.cgi/more").unwrap().unwrap();
        assert_eq!((found.script_name.as_str(), found.path_info.as_str()), ("/docs/page.cgi", "/more"));
        assert_eq!(s.target("/d../secret.cgi").unwrap(), Err(Refusal::NotFound));
        assert!(s.target("/docs/plain.txt").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn resolves_scripts_and_refuses_the_rest() {
        let dir = std::env::temp_dir().join(format!("weir-cgi-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("run.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.join("plain.txt");
        std::fs::write(&plain, "x").unwrap();
        let s = settings(&dir);
        let found = s.target("/cgi-bin/run.sh/a b/c").unwrap().unwrap();
        assert_eq!(found.script_name, "/cgi-bin/run.sh");
        assert_eq!(found.path_info, "/a b/c");
        assert_eq!(found.file, script);
        assert_eq!(s.target("/cgi-bin/plain.txt").unwrap(), Err(Refusal::Forbidden));
        assert_eq!(s.target("/cgi-bin/").unwrap(), Err(Refusal::NotFound));
        assert!(s.target("/static/x").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The worker refuses an AddHandler cgi-script file where Options apply without ExecCGI,
    /// as the edge does: a request that reached it some other way still does not run it.
    #[test]
    fn addhandler_scripts_run_only_where_execcgi_is_on() {
        let dir = std::env::temp_dir().join(format!("weir-cgi-exec-{}", std::process::id()));
        for sub in ["on", "off"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
            let script = dir.join(sub).join("x.cgi");
            std::fs::write(&script, "#!/bin/sh\n").unwrap();
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let d = dir.display();
        let config = Config::from_text(
            &format!("Listen 80\nOptions None\n<Directory {d}/on>\n Options +ExecCGI\n</Directory>\n"),
            Path::new("t.conf"),
            weir_conf::Source::BuiltIn,
            dir.clone(),
        )
        .unwrap();
        let mut s = settings(&dir);
        s.document_root = std::fs::canonicalize(&dir).unwrap();
        s.mapped_root = dir.clone();
        s.cgi_script_extensions = vec![".cgi".into()];
        s.sections = config.sections.clone();
        assert!(s.target("/on/x.cgi").unwrap().is_ok());
        assert_eq!(s.target("/off/x.cgi").unwrap(), Err(Refusal::Forbidden));
        s.sections = Default::default();
        assert!(s.target("/off/x.cgi").unwrap().is_ok(), "no Options at all: runs, as before");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_proxy_header_never_becomes_http_proxy() {
        let head = b"GET /cgi-bin/x HTTP/1.1\r\nHost: h\r\nProxy: http://evil:1\r\nPROXY: http://evil:2\r\n\
                     X-Kept: yes\r\nContent-Length: 0\r\n\r\n";
        let (request, _) = Request::read_head(
            &head[..],
            &weir_wire::limits::HeadLimits { request_line: 8190, field_size: 8190, fields: 100 },
        )
        .unwrap();
        let target = script_x();
        let vars = meta_variables(&settings(Path::new("/srv/cgi")), &target, &request, 0);
        assert!(!vars.iter().any(|(k, v)| k == "HTTP_PROXY" || v.contains("evil")), "{vars:?}");
        assert!(vars.iter().any(|(k, v)| k == "HTTP_X_KEPT" && v == "yes"), "{vars:?}");
    }

    #[test]
    fn the_edge_names_the_user_and_the_password_stays_hidden() {
        let limits = weir_wire::limits::HeadLimits { request_line: 8190, field_size: 8190, fields: 100 };
        let target = script_x();
        let vars = |extra: &str| {
            let head = format!("GET /cgi-bin/x HTTP/1.1\r\nHost: h\r\nAuthorization: Basic Ym9iOnNlY3JldA==\r\n{extra}Content-Length: 0\r\n\r\n");
            let (request, _) = Request::read_head(head.as_bytes(), &limits).unwrap();
            meta_variables(&settings(Path::new("/srv/cgi")), &target, &request, 0)
        };
        let get = |vars: &[(String, String)], key: &str| {
            vars.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone())
        };
        let plain = vars("");
        assert_eq!((get(&plain, "REMOTE_USER"), get(&plain, "HTTP_AUTHORIZATION")), (None, None));
        let authenticated = vars("X-Weir-Remote-User: bob\r\nX-Weir-Auth-Type: Basic\r\n");
        assert_eq!(get(&authenticated, "REMOTE_USER").as_deref(), Some("bob"));
        assert_eq!(get(&authenticated, "AUTH_TYPE").as_deref(), Some("Basic"));
        assert_eq!(get(&authenticated, "HTTP_AUTHORIZATION"), None);
        let passed = vars("X-Weir-Cgi-Pass-Auth: on\r\n");
        assert_eq!(get(&passed, "HTTP_AUTHORIZATION").as_deref(), Some("Basic Ym9iOnNlY3JldA=="));
        assert!(!passed.iter().any(|(k, _)| k.starts_with("HTTP_X_WEIR")), "{passed:?}");
    }
}
