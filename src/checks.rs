//! Checks that need the filesystem (and, for configtest only, the private key): what
//! `weir configtest` reports beyond the syntax, and what a reload verifies before it starts a
//! new generation.

use weir_conf::{Config, ListenScheme};
use weir_prefork::privileges::Identities;

/// A line of the privilege report: what the operator should know, or act on.
pub enum Report {
    Notice(String),
    Warning(String),
}

/// Which identity each role takes, and which protections are off: logged at start and printed by
/// configtest, so no one runs without privilege separation unawares.
pub fn privilege_report(identities: Option<&Identities>) -> Vec<Report> {
    let Some(ids) = identities else {
        let uid = nix::unistd::Uid::effective();
        let name =
            nix::unistd::User::from_uid(uid).ok().flatten().map_or_else(|| uid.to_string(), |u| u.name);
        return vec![Report::Warning(format!(
            "weir runs as {name} (uid {uid}), not root: without privilege separation. The edge, the pool \
             master, workers and every script share this one identity, so a script can signal the edge \
             and the pool master, connect to the pool socket, replace files in RuntimeDir and PidFile, \
             and read the TLS private key file. Kept on: workers and the edge are not dumpable (no \
             ptrace or /proc memory reads between them), scripts inherit no descriptors, no_new_privs. \
             Start weir as root for the rest (docs/processes.md)"
        ))];
    };
    let mut report = vec![Report::Notice(format!(
        "privilege separation: workers and their scripts run as {} (uid {}, gid {}); the edge as {} (uid {}, gid {}); the supervisor and the pool master stay root and serve nothing",
        ids.workers.name, ids.workers.uid, ids.workers.gid, ids.edge.name, ids.edge.uid, ids.edge.gid
    ))];
    if ids.edge_fallback {
        report.push(Report::Notice(format!(
            "EdgeUser: no account {} on this system, so the edge runs as uid and gid {}, which owns no file; \
             create the account with `adduser --system --group --no-create-home {}` or set EdgeUser",
            weir_prefork::privileges::EDGE_ACCOUNT,
            weir_prefork::privileges::EDGE_FALLBACK_ID,
            weir_prefork::privileges::EDGE_ACCOUNT
        )));
    }
    if ids.workers.uid.is_root() {
        report.push(Report::Warning(format!(
            "UnsafeAllowUserRoot On: User is {} (uid 0), so every worker, script and Handler runs as root with every privilege; \
             for development only, never on a machine that serves anyone",
            ids.workers.name
        )));
    }
    if ids.edge_shares_worker_uid() {
        report.push(Report::Warning(format!(
            "EdgeUser and User are the same account ({}): code in workers can signal and trace the edge, \
             which holds the TLS key and every client's connection; give the edge an account of its own",
            ids.edge.name
        )));
    }
    report
}

/// Files the configuration names exist and can be read. Never reads key material: the
/// supervisor runs this on reload, and must not hold a key its pool masters could inherit.
pub fn files_readable(config: &Config) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    let https = config.listeners.iter().any(|l| l.scheme == ListenScheme::Https);
    if https && !config.tls.generate_self_signed {
        for (directive, path) in
            [("SSLCertificateFile", &config.tls.cert_file), ("SSLCertificateKeyFile", &config.tls.key_file)]
        {
            if let Some(path) = path {
                if let Err(error) = std::fs::File::open(path) {
                    problems.push(format!("{directive} '{}' cannot be read: {error}", path.display()));
                }
            }
        }
    }
    if let Some(path) = &config.tls_options.client_ca_file {
        if let Err(error) = std::fs::File::open(path) {
            problems.push(format!("SSLCACertificateFile '{}' cannot be read: {error}", path.display()));
        }
    }
    // Opened, not read: the supervisor must not hold the hashes its pool masters would inherit.
    for path in user_files(config) {
        if let Err(error) = std::fs::File::open(path) {
            problems.push(format!("AuthUserFile '{}' cannot be read: {error}", path.display()));
        }
    }
    // The built-in default creates its own on start.
    let builtin = config.source == weir_conf::Source::BuiltIn;
    if !builtin && !config.document_root.is_dir() {
        problems.push(format!("DocumentRoot '{}' is not a directory", config.document_root.display()));
    }
    for alias in config.script_aliases.iter().filter(|_| !builtin) {
        if !alias.dir.is_dir() {
            problems.push(format!("ScriptAlias directory '{}' is not a directory", alias.dir.display()));
        }
    }
    for vhost in config.vhosts.iter().filter(|_| !builtin) {
        vhost_files(vhost, &mut problems);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// A `<VirtualHost>`'s own files, each problem naming the section's file and line.
fn vhost_files(vhost: &weir_conf::vhost::VirtualHost, problems: &mut Vec<String>) {
    let at = format!("<VirtualHost> at {}:{}", vhost.file.display(), vhost.line);
    if vhost.ssl_engine != Some(false) {
        let tls = &vhost.tls;
        for (directive, path) in [
            ("SSLCertificateFile", &tls.cert_file),
            ("SSLCertificateKeyFile", &tls.key_file),
            ("SSLCertificateChainFile", &tls.chain_file),
        ] {
            if let Some(path) = path {
                if let Err(error) = std::fs::File::open(path) {
                    problems.push(format!("{at}: {directive} '{}' cannot be read: {error}", path.display()));
                }
            }
        }
    }
    if !vhost.document_root.is_dir() {
        problems.push(format!("{at}: DocumentRoot '{}' is not a directory", vhost.document_root.display()));
    }
    for alias in &vhost.script_aliases {
        if !alias.dir.is_dir() {
            problems
                .push(format!("{at}: ScriptAlias directory '{}' is not a directory", alias.dir.display()));
        }
    }
}

/// Each `AuthUserFile` once, the `<VirtualHost>`s' too.
fn user_files(config: &Config) -> Vec<&std::path::Path> {
    let mut files: Vec<&std::path::Path> = config
        .locations
        .iter()
        .chain(config.vhosts.iter().flat_map(|vhost| vhost.locations.iter()))
        .chain(config.sections.rules())
        .chain(config.vhosts.iter().flat_map(|vhost| vhost.sections.rules()))
        .filter_map(|l| l.auth.user_file.as_deref())
        .collect();
    files.sort();
    files.dedup();
    files
}

/// configtest only: every `AuthUserFile` read and every line checked, as the edge will read
/// them (as root, before it drops privileges).
fn user_files_valid(config: &Config) -> Result<(), Vec<String>> {
    let problems: Vec<String> = user_files(config)
        .into_iter()
        .filter_map(|path| weir_conf::auth::UserFile::read(path).err().map(|e| e.to_string()))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Started as root: RuntimeDir (when it exists) and PidFile's directory are closed to the roles'
/// identities, as `weir run` will require.
pub fn runtime_paths(config: &Config, identities: Option<&Identities>) -> Result<(), Vec<String>> {
    let Some(untrusted) = crate::runtime_files::Untrusted::of(identities) else {
        return Ok(());
    };
    let mut problems = Vec::new();
    if config.runtime_dir.exists() {
        if let Err(error) = crate::runtime_files::check_runtime_dir(&config.runtime_dir, untrusted) {
            problems.push(error.to_string());
        }
    }
    if let Some(dir) = config.pid_file.parent().filter(|d| d.exists()) {
        if let Err(error) = crate::runtime_files::check_pid_dir(dir, untrusted) {
            problems.push(error.to_string());
        }
    }
    if let Err(error) = crate::check_log_dirs(config, identities) {
        problems.push(error);
    }
    if let Err(error) = spill_dir(config, identities) {
        problems.push(error);
    }
    if let Err(error) = document_root_for_edge(config, identities) {
        problems.push(error);
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// SpillDir (or the system's temporary directory) exists and the edge can create files in it.
/// Started as root, judged from the owner and mode of the directory and its ancestors for the
/// edge's identity, which keeps only its primary group (ACLs are not read: the edge checks
/// again itself after it drops privileges, and refuses to start when it cannot spill).
/// Otherwise the edge runs as this user, and a file is simply made and dropped.
pub fn spill_dir(config: &Config, identities: Option<&Identities>) -> Result<(), String> {
    let dir = config.spill_dir.clone().unwrap_or_else(std::env::temp_dir);
    let shown = dir.display();
    match std::fs::metadata(&dir) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => return Err(format!("SpillDir '{shown}' is not a directory")),
        Err(error) => return Err(format!("SpillDir '{shown}' cannot be used: {error}")),
    }
    let Some(ids) = identities else {
        return tempfile::tempfile_in(&dir)
            .map(drop)
            .map_err(|error| format!("SpillDir '{shown}': cannot create a file there: {error}"));
    };
    let (uid, gid) = (ids.edge.uid.as_raw(), ids.edge.gid.as_raw());
    let who = format!("the edge's user {} (uid {uid}, gid {gid})", ids.edge.name);
    let mut ancestor = dir.as_path();
    loop {
        let meta = std::fs::metadata(ancestor).map_err(|e| format!("SpillDir '{shown}': {e}"))?;
        let need = if ancestor == dir { 0o3 } else { 0o1 };
        if !permits(&meta, uid, gid, need) {
            let what = if need == 0o3 { "write to" } else { "reach" };
            return Err(format!(
                "SpillDir '{shown}': {who} cannot {what} '{}'; request bodies and slowly read responses could not be spilled",
                ancestor.display()
            ));
        }
        match ancestor.parent() {
            Some(parent) => ancestor = parent,
            None => return Ok(()),
        }
    }
}

/// Whether owner, group or other bits grant `need` (rwx as 0o7) to this uid and gid.
/// Started as root: the edge's identity can reach and list DocumentRoot, which it serves from;
/// otherwise the edge fails as it starts, again and again. Judged from owners and modes.
pub fn document_root_for_edge(config: &Config, identities: Option<&Identities>) -> Result<(), String> {
    let Some(ids) = identities else {
        return Ok(());
    };
    match unreachable_by(&config.document_root, ids.edge.uid.as_raw(), ids.edge.gid.as_raw(), 0o5) {
        Some(blocked) => Err(format!(
            "DocumentRoot '{}': the edge's user {} (uid {}, gid {}) cannot read '{}'; make it readable by others or by EdgeGroup",
            config.document_root.display(),
            ids.edge.name,
            ids.edge.uid,
            ids.edge.gid,
            blocked.display()
        )),
        None => Ok(()),
    }
}

/// Started as root: warnings for ScriptAlias directories the edge cannot search. The edge then
/// cannot see from a request's head that a script is missing or cannot run, and a body for it
/// is read (within its source's spill share) before the worker says 404 or 403.
pub fn script_dirs_for_edge(config: &Config, identities: Option<&Identities>) -> Vec<String> {
    let Some(ids) = identities else {
        return Vec::new();
    };
    config
        .script_aliases
        .iter()
        .filter_map(|alias| {
            let blocked = unreachable_by(&alias.dir, ids.edge.uid.as_raw(), ids.edge.gid.as_raw(), 0o1)?;
            Some(format!(
                "ScriptAlias directory '{}': the edge's user {} cannot search '{}', so it cannot refuse a request for a missing script before reading its body; make it searchable (o+x)",
                alias.dir.display(),
                ids.edge.name,
                blocked.display()
            ))
        })
        .collect()
}

/// The first directory on the way to `dir` (its ancestors need search, `dir` itself `need`)
/// that `uid`/`gid` may not use; `None` when all may be used or cannot be looked at.
fn unreachable_by(dir: &std::path::Path, uid: u32, gid: u32, need: u32) -> Option<std::path::PathBuf> {
    let real = std::fs::canonicalize(dir).ok()?;
    let mut current = Some(real.as_path());
    let mut wanted = need;
    while let Some(path) = current {
        let meta = std::fs::metadata(path).ok()?;
        if !permits(&meta, uid, gid, wanted) {
            return Some(path.to_path_buf());
        }
        wanted = 0o1;
        current = path.parent();
    }
    None
}

fn permits(meta: &std::fs::Metadata, uid: u32, gid: u32, need: u32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let mode = meta.mode();
    let class = if meta.uid() == uid {
        mode >> 6
    } else if meta.gid() == gid {
        mode >> 3
    } else {
        mode
    };
    class & need == need
}

/// configtest's full check: the files, and that the key belongs to the certificate (rustls
/// refuses the pair otherwise). Runs in the `weir configtest` process only.
pub fn full(config: &Config) -> Result<(), Vec<String>> {
    files_readable(config)?;
    user_files_valid(config)?;
    let https = config.listeners.iter().any(|l| l.scheme == ListenScheme::Https);
    // The main server may have no certificate when <VirtualHost>s bring theirs.
    if https && !config.tls.generate_self_signed && config.tls.cert_file.is_some() {
        weir_edge::tls::server_config(&config.tls, &config.tls_options).map_err(|e| vec![e.to_string()])?;
    }
    for vhost in config.vhosts.iter().filter(|v| https && v.ssl_engine != Some(false) && v.tls != config.tls)
    {
        if vhost.tls.cert_file.is_some() && vhost.tls.key_file.is_some() {
            weir_edge::tls::server_config(&vhost.tls, &config.tls_options).map_err(|e| {
                vec![format!("<VirtualHost> at {}:{}: {e}", vhost.file.display(), vhost.line)]
            })?;
        }
    }
    Ok(())
}

/// Risky settings, worded for an operator: memory, descriptors, timeouts, body size.
pub fn risk_warnings(config: &Config, measured_worker_bytes: Option<u64>) -> Vec<String> {
    let mut warnings = Vec::new();
    let worker = measured_worker_bytes.unwrap_or(ESTIMATED_WORKER_BYTES);
    if let Some(total) = weir_prefork::memory::mem_total() {
        let need = worker.saturating_mul(config.pool.max_request_workers as u64);
        if need > total {
            warnings.push(format!(
                "MaxRequestWorkers {} x {} KiB per worker ({}) is above this machine's {} MiB of memory; the classic sizing gives at most {}",
                config.pool.max_request_workers,
                worker / 1024,
                if measured_worker_bytes.is_some() { "measured" } else { "estimated" },
                total >> 20,
                total / worker.max(1)
            ));
        }
    }
    if let Some(hard) = nofile_hard_limit() {
        let edge = match config.edge.max_connections {
            weir_conf::edge::ConnectionCap::At(n) => n as u64,
            // auto stays within the descriptors; 0 is no limit.
            _ => 0,
        };
        let need = config.pool.max_request_workers as u64 + edge;
        if edge > 0 && need > hard {
            warnings.push(format!(
                "MaxRequestWorkers {} plus MaxConnections {edge} is above the RLIMIT_NOFILE hard limit of {hard}",
                config.pool.max_request_workers
            ));
        }
    }
    if !config.edge.read_timeout.header.is_on() {
        warnings.push("RequestReadTimeout header=0 turns the header timeout off: slow clients may hold connections forever".to_string());
    }
    if config.graceful_shutdown_timeout < config.timeout {
        warnings.push(format!(
            "GracefulShutdownTimeout {} is shorter than Timeout {}: a reload or stop kills requests still running after {}s that the pool would have let finish (leave GracefulShutdownTimeout unset for Timeout + {}s)",
            config.graceful_shutdown_timeout.as_secs(),
            config.timeout.as_secs(),
            config.graceful_shutdown_timeout.as_secs(),
            weir_conf::GRACE_PAST_TIMEOUT.as_secs()
        ));
    }
    if config.limit_request_body == 0 {
        warnings.push("LimitRequestBody 0 accepts request bodies of any size".to_string());
    }
    let share = config.spill_share();
    let limit = config.limit_request_body;
    if limit == 0 || limit > share {
        let what = if limit == 0 { "no limit".to_string() } else { limit.to_string() };
        warnings.push(format!(
            "LimitRequestBody ({what}) is larger than one source's share of SpillLimit ({share} bytes: {}): larger bodies get 503; raise SpillLimit (or SpillLimitPerSource) to accept them",
            if config.spill_limit_per_source.is_some() { "SpillLimitPerSource" } else { "a quarter of SpillLimit" }
        ));
    }
    warnings
}

/// The average PSS of the running server's workers (found through the PidFile), when one runs.
pub fn measured_worker_pss(config: &Config) -> Option<u64> {
    let pid: i32 = std::fs::read_to_string(&config.pid_file).ok()?.trim().parse().ok()?;
    let children = |pid: i32| -> Vec<i32> {
        std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    let title = |pid: i32| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let sizes: Vec<u64> = children(pid)
        .into_iter()
        .flat_map(children)
        .filter(|worker| title(*worker).starts_with("weir: worker"))
        .filter_map(weir_prefork::memory::pss)
        .collect();
    (!sizes.is_empty()).then(|| sizes.iter().sum::<u64>() / sizes.len() as u64)
}

/// A worker's proportional set size when nothing is known about it (an idle weir worker with a
/// CGI script or a small handler, rounded up).
pub const ESTIMATED_WORKER_BYTES: u64 = 4 << 20;

fn nofile_hard_limit() -> Option<u64> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).ok().map(|(_, hard)| hard)
}
