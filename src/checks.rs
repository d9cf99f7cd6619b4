//! Checks that need the filesystem (and, for configtest only, the private key): what
//! `weir configtest` reports beyond the syntax, and what a reload verifies before it starts a
//! new generation.

use weir_conf::{Config, ListenScheme};

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
    if config.source != weir_conf::Source::BuiltIn && !config.document_root.is_dir() {
        problems.push(format!("DocumentRoot '{}' is not a directory", config.document_root.display()));
    }
    for alias in &config.script_aliases {
        if !alias.dir.is_dir() {
            problems.push(format!("ScriptAlias directory '{}' is not a directory", alias.dir.display()));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// configtest's full check: the files, and that the key belongs to the certificate (rustls
/// refuses the pair otherwise). Runs in the `weir configtest` process only.
pub fn full(config: &Config) -> Result<(), Vec<String>> {
    files_readable(config)?;
    let https = config.listeners.iter().any(|l| l.scheme == ListenScheme::Https);
    if https && !config.tls.generate_self_signed {
        weir_edge::tls::server_config(&config.tls, &config.tls_options).map_err(|e| vec![e.to_string()])?;
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
    if config.limit_request_body == 0 {
        warnings.push("LimitRequestBody 0 accepts request bodies of any size".to_string());
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
