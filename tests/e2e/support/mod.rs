//! The fixture every end-to-end test uses: a real weir binary on ephemeral loopback ports, with
//! its own temporary directory, certificate, document root and scripts.

pub mod attack;
pub mod client;
pub mod h2;
pub mod procs;
pub mod raw;

use std::io::Read;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to come up on this shared 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(30);

/// A running weir, stopped (and checked for leftovers) on drop.
pub struct Weir {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    /// Bound addresses by scheme, from RuntimeDir/listen.
    pub https: Vec<SocketAddr>,
    pub http: Vec<SocketAddr>,
    /// The server certificate's PEM, for clients to trust.
    pub cert_pem: String,
    /// The private key's PEM, for tests that look for it where it must not be.
    pub key_pem: String,
}

/// A test's site before start: its directory with certificate, document root and scripts.
pub struct Site {
    pub dir: tempfile::TempDir,
    cert_pem: String,
    key_pem: String,
    /// The program to run: weir itself, or an application built on it (an example).
    binary: PathBuf,
    /// Extra environment for the server (applications read their own settings from it).
    env: Vec<(String, String)>,
}

impl Site {
    /// A fresh site with a generated certificate, an index page and an empty script directory.
    pub fn new() -> Site {
        // Short path under /tmp: Unix socket paths are limited to 108 bytes.
        let dir = tempfile::Builder::new().prefix("weir").tempdir_in("/tmp").expect("temp dir");
        // Readable by the account weir drops to when the tests run as root.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
        let pair = rcgen::generate_simple_self_signed(names).expect("certificate");
        let cert_pem = pair.cert.pem();
        let key_pem = pair.signing_key.serialize_pem();
        std::fs::write(dir.path().join("cert.pem"), &cert_pem).expect("write cert");
        std::fs::write(dir.path().join("key.pem"), &key_pem).expect("write key");
        std::fs::set_permissions(dir.path().join("key.pem"), std::fs::Permissions::from_mode(0o600))
            .expect("chmod key");
        for sub in ["htdocs", "cgi-bin"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::write(dir.path().join("htdocs/index.html"), "<h1>index</h1>\n").expect("index");
        Site { dir, cert_pem, key_pem, binary: PathBuf::from(env!("CARGO_BIN_EXE_weir")), env: Vec::new() }
    }

    /// Runs the example application `name` (built by `cargo test` beside the tests) instead of
    /// the weir binary.
    pub fn with_example(mut self, name: &str) -> Site {
        let deps = std::env::current_exe().expect("test binary path");
        let binary = deps
            .parent()
            .and_then(Path::parent)
            .map(|dir| dir.join("examples").join(name))
            .expect("target directory");
        assert!(
            binary.exists(),
            "{} is missing: run the tests with `cargo test --workspace`, which builds the examples",
            binary.display()
        );
        self.binary = binary;
        self
    }

    /// Runs weir with RLIMIT_NOFILE at `limit` (soft and hard), through a shell that sets it and
    /// then becomes weir, so the pid is still weir's.
    pub fn with_open_file_limit(mut self, limit: u32) -> Site {
        let wrapper = self.path().join("weir-limited");
        let script =
            format!("#!/bin/sh\nulimit -n {limit} || exit 1\nexec '{}' \"$@\"\n", self.binary.display());
        std::fs::write(&wrapper, script).expect("write wrapper");
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod wrapper");
        self.binary = wrapper;
        self
    }

    /// Sets an environment variable for the server.
    pub fn env(mut self, key: &str, value: &str) -> Site {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes a file under the document root.
    pub fn doc(&self, name: &str, bytes: &[u8]) {
        let path = self.path().join("htdocs").join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, bytes).expect("write doc");
    }

    /// Writes an executable script under cgi-bin.
    pub fn script(&self, name: &str, body: &str) {
        let path = self.path().join("cgi-bin").join(name);
        std::fs::write(&path, body).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// The configuration every test starts from, followed by `extra`.
    pub fn config(&self, extra: &str) -> String {
        let d = self.path().display();
        format!(
            "Listen 127.0.0.1:0 https\n\
             SSLCertificateFile {d}/cert.pem\n\
             SSLCertificateKeyFile {d}/key.pem\n\
             DocumentRoot {d}/htdocs\n\
             ScriptAlias /cgi-bin/ {d}/cgi-bin/\n\
             RuntimeDir {d}/run\n\
             PidFile {d}/run/weir.pid\n\
             ErrorLog {d}/error.log\n\
             CustomLog {d}/access.log combined\n\
             StartServers 2\nMinSpareServers 1\nMaxSpareServers 4\nMaxRequestWorkers 10\n\
             GracefulShutdownTimeout 5\n\
             Timeout 20\n\
             {extra}\n"
        )
    }

    /// Writes `weir.conf` with the default configuration plus `extra`, and starts weir on it.
    pub fn start(self, extra: &str) -> Weir {
        let conf = self.config(extra);
        self.start_with(&conf)
    }

    /// Starts weir on exactly `conf`.
    pub fn start_with(self, conf: &str) -> Weir {
        let conf_path = self.path().join("weir.conf");
        std::fs::write(&conf_path, conf).expect("write conf");
        let child = program_command(&self.binary, &["run", "-f"], &conf_path)
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::from(std::fs::File::create(self.path().join("stdout.log")).expect("log")))
            .stderr(Stdio::from(std::fs::File::create(self.path().join("stderr.log")).expect("log")))
            .spawn()
            .expect("spawn weir");
        let mut weir = Weir {
            dir: self.dir,
            child: Some(child),
            https: Vec::new(),
            http: Vec::new(),
            cert_pem: self.cert_pem,
            key_pem: self.key_pem,
        };
        weir.wait_ready();
        weir
    }
}

/// The weir binary with its arguments, in a process group of its own so cleanup finds it all.
pub fn weir_command(args: &[&str], conf: &Path) -> Command {
    program_command(Path::new(env!("CARGO_BIN_EXE_weir")), args, conf)
}

/// `program` with its arguments, in a process group of its own.
pub fn program_command(program: &Path, args: &[&str], conf: &Path) -> Command {
    let mut command = Command::new(program);
    command.args(args).arg(conf).stdin(Stdio::null()).process_group(0);
    command
}

impl Weir {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().map_or(0, |c| c.id() as i32)
    }

    /// The pool master and the edge, once both are up (waits up to 10 s).
    pub fn roles(&self) -> (procs::Proc, procs::Proc) {
        let mut found = None;
        let up = wait_until(Duration::from_secs(10), || {
            let masters = procs::children_titled(self.pid(), "weir: pool master");
            let edges = procs::children_titled(self.pid(), "weir: edge");
            if masters.len() == 1 && edges.len() == 1 {
                found = Some((masters[0].clone(), edges[0].clone()));
            }
            found.is_some()
        });
        assert!(up, "expected one pool master and one edge under the supervisor\n{}", self.logs());
        found.expect("checked above")
    }

    /// The pool's workers now.
    pub fn workers(&self) -> Vec<procs::Proc> {
        let (master, _) = self.roles();
        procs::children_titled(master.pid, "weir: worker")
    }

    /// The first https address.
    pub fn addr(&self) -> SocketAddr {
        self.https[0]
    }

    /// Everything weir has logged so far.
    pub fn logs(&self) -> String {
        let mut text = String::new();
        for name in ["stderr.log", "stdout.log", "error.log"] {
            if let Ok(mut file) = std::fs::File::open(self.path().join(name)) {
                text.push_str(&format!("--- {name}\n"));
                let _ = file.read_to_string(&mut text);
            }
        }
        text
    }

    fn wait_ready(&mut self) {
        let listen = self.path().join("run/listen");
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(text) = std::fs::read_to_string(&listen) {
                for line in text.lines() {
                    let (scheme, addr) = line.split_once(' ').expect("listen line");
                    let addr: SocketAddr = addr.parse().expect("address");
                    match scheme {
                        "https" => self.https.push(addr),
                        _ => self.http.push(addr),
                    }
                }
                return;
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("weir exited before it was ready: {status}\n{}", self.logs());
                }
            }
            assert!(Instant::now() < deadline, "weir was not ready in time\n{}", self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGTERM and waits for the supervisor to exit; returns how long that took.
    pub fn stop(&mut self) -> Duration {
        let started = Instant::now();
        let Some(mut child) = self.child.take() else {
            return Duration::ZERO;
        };
        let pgid = child.id() as i32;
        // SAFETY: kill takes plain integers.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let took = started.elapsed();
        // Whatever is left in the group is a leak: kill it so the machine stays clean, then fail.
        let leftovers = procs::in_group(pgid);
        if !leftovers.is_empty() {
            // SAFETY: kill takes plain integers; a negative pid names the process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = child.kill();
        let _ = child.wait();
        assert!(leftovers.is_empty(), "processes left behind after stop: {leftovers:?}\n{}", self.logs());
        took
    }
}

impl Drop for Weir {
    fn drop(&mut self) {
        if std::thread::panicking() {
            if let Some(child) = self.child.take() {
                eprintln!("{}", self.logs());
                // SAFETY: kill takes plain integers; a negative pid names the process group.
                unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            }
            return;
        }
        self.stop();
    }
}

/// Waits for `condition` until `deadline` passes; returns whether it held.
pub fn wait_until(deadline: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + deadline;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A deterministic pseudo-random payload, so a mismatch shows where it happened.
pub fn payload(len: usize) -> Vec<u8> {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

/// Whether the tests run as root (some need to create accounts' files or drop privileges).
pub fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

/// `dir` and everything below it, directories included, sorted.
pub fn entries_under(dir: &Path) -> Vec<PathBuf> {
    let mut all = vec![dir.to_path_buf()];
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(entries_under(&path));
        } else {
            all.push(path);
        }
    }
    all.sort();
    all
}

/// A status, the headers that matter for routing, and the body of one GET.
pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
}

/// GET of `target` exactly as written: over HTTP/1.1 as raw bytes (no client library tidies the
/// path), over h2 through hyper with the target as the `:path`.
pub fn get_as_written(weir: &Weir, proto: client::Proto, target: &str) -> Answer {
    let client = client::Client::new(weir.addr(), &weir.cert_pem);
    match proto {
        client::Proto::H1 => {
            let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
            let bytes = client.raw(request.as_bytes()).unwrap_or_else(|e| panic!("GET {target}: {e}"));
            let responses =
                raw::responses(&bytes).unwrap_or_else(|e| panic!("GET {target}: {e}\n{}", weir.logs()));
            let response = responses.last().unwrap_or_else(|| panic!("GET {target}: no response"));
            Answer {
                status: response.status,
                location: response.header("location").map(str::to_string),
                body: response.text(),
            }
        }
        client::Proto::H2 => {
            let reply = client
                .request(client::Proto::H2, "GET", target, Vec::new())
                .unwrap_or_else(|e| panic!("h2 GET {target}: {e}\n{}", weir.logs()));
            Answer {
                status: reply.status,
                location: reply.header("location").map(str::to_string),
                body: reply.text(),
            }
        }
    }
}
