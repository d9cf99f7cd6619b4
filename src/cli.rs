//! weir's command line, in the library so that an application built on weir (with its own
//! [`Handler`](crate::Handler)s) gets the same commands as the `weir` binary.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};

use crate::{certs, checks, load_config, Config, Server, EXIT_CONFIG, EXIT_STARTUP};

#[derive(Parser)]
#[command(
    version,
    disable_version_flag = true,
    about = "A hardened edge gateway with a bundled prefork backend",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    /// Check the configuration and exit (as `apachectl -t`)
    #[arg(short = 't')]
    test: bool,
    /// Show the version, build and pool settings (as `apache2 -V`)
    #[arg(short = 'V')]
    version: bool,
    /// Check the configuration and show the virtual host map (as `apache2 -S`)
    #[arg(short = 'S')]
    vhosts: bool,
    #[command(flatten)]
    config: ConfigFile,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Args, Clone)]
struct ConfigFile {
    /// Configuration file, in Apache httpd syntax (the built-in default without it)
    #[arg(short = 'f', long = "config")]
    file: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server
    Run(ConfigFile),
    /// Check the configuration: prints "Syntax OK" or every error, exit status to match
    Configtest(ConfigFile),
    /// Ask the running server (found through the PidFile) to reload its configuration
    Reload(ConfigFile),
    /// Ask the running server (found through the PidFile) to stop, and wait until it has
    Stop(ConfigFile),
    /// Make certificates: a self-signed one, or a small CA with server and device certificates
    #[command(subcommand)]
    Cert(CertCommand),
}

#[derive(Subcommand)]
enum CertCommand {
    /// A self-signed server certificate: DIR/server.crt and DIR/server.key
    Selfsigned {
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// DNS names and IP addresses the certificate is for
        #[arg(long = "name", default_values_t = ["localhost".to_string(), "127.0.0.1".to_string()])]
        names: Vec<String>,
        #[arg(long)]
        force: bool,
    },
    /// A CA for a fleet: DIR/ca.crt (for SSLCACertificateFile) and DIR/ca.key
    Ca {
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        #[arg(long, default_value = "weir fleet CA")]
        cn: String,
        #[arg(long)]
        force: bool,
    },
    /// A server certificate signed by the CA in --ca: DIR/server.crt and DIR/server.key
    Server {
        #[arg(long, default_value = "certs")]
        ca: PathBuf,
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        #[arg(long)]
        force: bool,
    },
    /// A device (client) certificate signed by the CA in --ca: DIR/CN.crt and DIR/CN.key
    Client {
        #[arg(long, default_value = "certs")]
        ca: PathBuf,
        #[arg(long, default_value = "certs")]
        out: PathBuf,
        /// The device's name, its certificate's common name
        #[arg(long)]
        cn: String,
        #[arg(long)]
        org: Option<String>,
        #[arg(long)]
        force: bool,
    },
}

/// Parses the command line and does what it says. `register` adds the application's handlers
/// to the server before it starts.
pub fn main_with(register: impl FnOnce(Server) -> Server) -> ExitCode {
    let cli = Cli::parse();
    let code = match cli.command {
        _ if cli.version => version(cli.config.file.as_deref()),
        _ if cli.test => configtest(cli.config.file.as_deref(), false),
        _ if cli.vhosts => configtest(cli.config.file.as_deref(), true),
        None => {
            eprintln!("weir: say what to do: run, configtest, reload, stop or cert (see weir --help)");
            EXIT_CONFIG
        }
        Some(Command::Configtest(file)) => configtest(file.file.as_deref(), false),
        Some(Command::Run(file)) => match load(file.file.as_deref()) {
            Ok(config) => register(Server::new(config)).run(),
            Err(code) => code,
        },
        Some(Command::Reload(file)) => reload(file.file.as_deref()),
        Some(Command::Stop(file)) => stop(file.file.as_deref()),
        Some(Command::Cert(command)) => cert(command),
    };
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

fn load(file: Option<&Path>) -> Result<Config, i32> {
    load_config(file).map_err(|errors| {
        eprintln!("{errors}");
        EXIT_CONFIG
    })
}

/// `weir configtest`; with `show_vhosts` (`-S`, or LogLevel debug) the virtual host map too.
fn configtest(file: Option<&Path>, show_vhosts: bool) -> i32 {
    let config = match load(file) {
        Ok(config) => config,
        Err(code) => return code,
    };
    // On standard output when asked for, as Apache's -S; with the warnings otherwise, so
    // "Syntax OK" stays configtest's one line of output.
    if show_vhosts {
        print!("{}", weir_conf::vhost::describe(&config));
    } else if config.log_level == weir_conf::LogLevel::Debug && !config.vhosts.is_empty() {
        eprint!("{}", weir_conf::vhost::describe(&config));
    }
    if config.source == weir_conf::Source::BuiltIn {
        eprintln!(
            "built-in default: its site, certificate and runtime files are in {}",
            config.server_root.display()
        );
        if let Err(problem) = crate::default_site::check(&config.server_root) {
            eprintln!("{}: {problem}", config.source_name());
            return EXIT_CONFIG;
        }
    }
    let measured = checks::measured_worker_pss(&config);
    for warning in config.warnings.iter().chain(&checks::risk_warnings(&config, measured)) {
        eprintln!("{warning}");
    }
    let identities = match crate::resolve_identities(&config) {
        Ok(identities) => identities,
        Err(problem) => {
            eprintln!("{}: {problem}", config.source_name());
            return EXIT_CONFIG;
        }
    };
    for line in checks::privilege_report(identities.as_ref()) {
        match line {
            checks::Report::Notice(text) | checks::Report::Warning(text) => eprintln!("{text}"),
        }
    }
    for warning in checks::script_dirs_for_edge(&config, identities.as_ref()) {
        eprintln!("{warning}");
    }
    if let Err(problems) = deep_checks(&config, identities.as_ref()) {
        for problem in problems {
            eprintln!("{}: {problem}", config.source_name());
        }
        return EXIT_CONFIG;
    }
    println!("Syntax OK");
    0
}

/// What configtest checks beyond the syntax, and `weir reload` before it signals: the key pair,
/// the files named, and the paths the roles' identities will read and write.
fn deep_checks(
    config: &Config,
    identities: Option<&weir_prefork::privileges::Identities>,
) -> Result<(), Vec<String>> {
    checks::full(config).and_then(|()| checks::runtime_paths(config, identities))
}

fn version(file: Option<&Path>) -> i32 {
    println!("Server version: weir/{} (Unix)", env!("CARGO_PKG_VERSION"));
    println!(
        "Server built:   {} build of {} {}",
        if cfg!(debug_assertions) { "debug" } else { "release" },
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION")
    );
    println!("Architecture:   {}-bit {}", usize::BITS, std::env::consts::ARCH);
    println!("Server MPM:     prefork");
    println!("  threaded:     no");
    println!("    forked:     yes (variable process count)");
    println!("TLS library:    rustls 0.23 (TLSv1.2, TLSv1.3; forward-secret suites only)");
    println!("Crypto provider: aws-lc-rs");
    let config = match load(file) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let pool = &config.pool;
    println!(" -D SERVER_CONFIG_FILE=\"{}\"", config.source_name());
    println!(" -D SERVER_ROOT=\"{}\"", config.server_root.display());
    println!(" -D DEFAULT_PIDLOG=\"{}\"", config.pid_file.display());
    println!(" -D RUNTIME_DIR=\"{}\"", config.runtime_dir.display());
    println!("Pool:");
    println!("  StartServers           {}", pool.start_servers);
    println!("  MinSpareServers        {}", pool.min_spare_servers);
    println!("  MaxSpareServers        {}", pool.max_spare_servers);
    println!("  MaxRequestWorkers      {}", pool.max_request_workers);
    println!("  ServerLimit            {}", pool.server_limit);
    println!("  MaxConnectionsPerChild {}", pool.max_connections_per_child);
    println!("  MaxMemoryPerChild      {}", pool.max_memory_per_child);
    println!("Identities (when started as root):");
    println!(
        "  User/Group             {} / {} (workers, scripts, Handlers)",
        config.user.as_deref().unwrap_or("nobody"),
        config.group.as_deref().unwrap_or("(User's group)")
    );
    println!(
        "  EdgeUser/EdgeGroup     {} / {} (the edge; uid and gid {} when the account is missing)",
        config.edge_user.as_deref().unwrap_or(weir_prefork::privileges::EDGE_ACCOUNT),
        config.edge_group.as_deref().unwrap_or("(EdgeUser's group)"),
        weir_prefork::privileges::EDGE_FALLBACK_ID
    );
    println!("  supervisor, pool master root");
    let timeouts = &config.edge.read_timeout;
    println!("Edge:");
    println!("  RequestReadTimeout     {}", describe_timeouts(timeouts));
    println!("  LimitRequestBody       {}", config.limit_request_body);
    println!("  ServerTokens           {:?}", config.server_tokens);
    println!("  ServerSignature        {:?}", config.edge.server_signature);
    println!("  TraceEnable            {}", if config.edge.trace_enable { "On" } else { "Off" });
    for warning in &config.warnings {
        eprintln!("{warning}");
    }
    0
}

fn describe_timeouts(timeouts: &weir_conf::edge::RequestReadTimeout) -> String {
    let stage = |name: &str, stage: &weir_conf::edge::StageTimeout| {
        let mut text = format!("{name}={}", stage.initial.as_secs());
        if let Some(max) = stage.max {
            text.push_str(&format!("-{}", max.as_secs()));
        }
        if let Some(rate) = stage.min_rate {
            text.push_str(&format!(",MinRate={rate}"));
        }
        text
    };
    format!(
        "{} {} {}",
        stage("handshake", &timeouts.handshake),
        stage("header", &timeouts.header),
        stage("body", &timeouts.body)
    )
}

/// How long `weir reload` waits for the supervisor's verdict: its new generation has 30 s to
/// report ready, and a reload may queue behind one already under way.
const RELOAD_VERDICT_DEADLINE: Duration = Duration::from_secs(75);

/// `weir reload`: every check configtest makes, then SIGHUP, then the supervisor's verdict from
/// RuntimeDir/reload-status (see `reload_status`). Exit 0 only when a new generation serves.
fn reload(file: Option<&Path>) -> i32 {
    let unchanged = "not reloading (the running server is unchanged)";
    // As `apachectl graceful`: a configuration that fails configtest is not loaded.
    let config = match load_config(file) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("weir: the configuration has errors; {unchanged}");
            return EXIT_CONFIG;
        }
    };
    let checked = crate::resolve_identities(&config)
        .map_err(|problem| vec![problem])
        .and_then(|identities| deep_checks(&config, identities.as_ref()));
    if let Err(problems) = checked {
        for problem in problems {
            eprintln!("{}: {problem}", config.source_name());
        }
        eprintln!("weir: {unchanged}");
        return EXIT_CONFIG;
    }
    let pid = match running_pid(&config) {
        Ok(pid) => pid,
        Err(code) => return code,
    };
    let owner = std::fs::metadata(format!("/proc/{pid}")).map(|m| std::os::unix::fs::MetadataExt::uid(&m));
    let owner = owner.unwrap_or_else(|_| nix::unistd::Uid::effective().as_raw());
    let runtime_dir = &config.runtime_dir;
    let before = match crate::reload_status::read(runtime_dir, owner) {
        Ok(record) => record.map_or(0, |r| r.attempt),
        Err(problem) => {
            eprintln!("weir: {problem}");
            return EXIT_STARTUP;
        }
    };
    // SAFETY: kill takes plain integers.
    if unsafe { libc::kill(pid, libc::SIGHUP) } != 0 {
        eprintln!("could not signal weir (pid {pid}): {}", std::io::Error::last_os_error());
        return EXIT_STARTUP;
    }
    let deadline = Instant::now() + RELOAD_VERDICT_DEADLINE;
    loop {
        match crate::reload_status::read(runtime_dir, owner) {
            Ok(Some(record)) if record.attempt > before && !record.running => {
                if record.ok {
                    println!("weir (pid {pid}) reloaded: generation {} is serving", record.generation);
                    return 0;
                }
                eprintln!(
                    "weir (pid {pid}): reload failed, generation {} still serving: {}",
                    record.generation, record.reason
                );
                return EXIT_STARTUP;
            }
            Ok(_) => {}
            Err(problem) => {
                eprintln!("weir: {problem}");
                return EXIT_STARTUP;
            }
        }
        if !alive(pid) {
            eprintln!("weir (pid {pid}) exited during the reload");
            return EXIT_STARTUP;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "weir (pid {pid}) was asked to reload but has not said how it went within {}s; see the error log",
                RELOAD_VERDICT_DEADLINE.as_secs()
            );
            return EXIT_STARTUP;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The live supervisor named by the configuration's PidFile, or the exit code after saying why not.
fn running_pid(config: &Config) -> Result<i32, i32> {
    let pid_file = &config.pid_file;
    crate::runtime_files::trusted_pid(pid_file)
        .and_then(|pid| if alive(pid) { Ok(pid) } else { Err(format!("no live process {pid}")) })
        .map_err(|reason| {
            eprintln!(
                "weir is not running: {reason} (PidFile {} from {})",
                pid_file.display(),
                config.source_name()
            );
            EXIT_STARTUP
        })
}

/// `stop`: signal the supervisor named in the configuration's PidFile, and wait until it is gone.
fn stop(file: Option<&Path>) -> i32 {
    let config = match load_config(file) {
        Ok(config) => config,
        Err(errors) => match file.and_then(Config::load_lenient) {
            // A broken file must not keep a running server from being stopped.
            Some(config) => {
                eprintln!("{errors}");
                eprintln!("weir: the configuration has errors; using its PidFile to stop the server anyway");
                config
            }
            None => {
                eprintln!("{errors}");
                return EXIT_CONFIG;
            }
        },
    };
    let pid = match running_pid(&config) {
        Ok(pid) => pid,
        Err(code) => return code,
    };
    // SAFETY: kill takes plain integers.
    if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
        eprintln!("could not signal weir (pid {pid}): {}", std::io::Error::last_os_error());
        return EXIT_STARTUP;
    }
    let deadline = Instant::now() + config.graceful_shutdown_timeout + Duration::from_secs(10);
    while alive(pid) {
        if Instant::now() >= deadline {
            eprintln!("weir (pid {pid}) is still running after GracefulShutdownTimeout");
            return EXIT_STARTUP;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!("weir (pid {pid}) stopped");
    0
}

/// Whether a process exists and has not exited (a zombie waiting for its parent has).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with('Z')))
        .is_some_and(|zombie| !zombie)
}

fn cert(command: CertCommand) -> i32 {
    let result = match command {
        CertCommand::Selfsigned { out, names, force } => certs::selfsigned(&out, &names, force),
        CertCommand::Ca { out, cn, force } => certs::ca(&out, &cn, force),
        CertCommand::Server { ca, out, names, force } => {
            certs::signed(&ca, &out, "server", &names, None, false, force)
        }
        CertCommand::Client { ca, out, cn, org, force } => {
            certs::signed(&ca, &out, &cn.clone(), &[cn], org.as_deref(), true, force)
        }
    };
    match result {
        Ok(paths) => {
            for path in paths {
                println!("wrote {}", path.display());
            }
            0
        }
        Err(error) => {
            eprintln!("weir cert: {error}");
            EXIT_STARTUP
        }
    }
}
