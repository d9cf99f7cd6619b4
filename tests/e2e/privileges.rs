//! Privilege separation, tried from inside: code running as `User` (a CGI script, a Rust Handler)
//! attempts what a compromised one would (signal or trace the supervisor, the edge and the pool
//! master, read a sibling worker's memory, hijack the pool socket, rewrite PidFile) and every
//! attempt must be refused; and weir started as an ordinary user says which protections are off.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::client::Client;
use crate::support::{procs, wait_until, Site, Weir};

/// An example program built beside the tests.
fn example(name: &str) -> PathBuf {
    let deps = std::env::current_exe().expect("test binary path");
    let path = deps.parent().and_then(Path::parent).expect("target dir").join("examples").join(name);
    assert!(path.exists(), "{} is missing: run `cargo test --workspace`", path.display());
    path
}

/// The query that tells the probes where everything is.
fn targets(weir: &Weir) -> String {
    let (master, edge) = weir.roles();
    let workers: Vec<String> = weir.workers().iter().map(|w| w.pid.to_string()).collect();
    let d = weir.path().display();
    format!(
        "supervisor={}&edge={}&master={}&workers={}&runtime={d}/run&pidfile={d}/run/weir.pid",
        weir.pid(),
        edge.pid,
        master.pid,
        workers.join(",")
    )
}

/// Waits until the pool has at least `n` workers, so a sibling exists to attack.
fn wait_for_workers(weir: &Weir, n: usize) {
    assert!(
        wait_until(Duration::from_secs(15), || weir.workers().len() >= n),
        "fewer than {n} workers\n{}",
        weir.logs()
    );
}

/// Every probe line was refused, and the ones that matter most were run.
fn assert_all_refused(report: &str, logs: &str) {
    let allowed: Vec<&str> = report.lines().filter(|l| l.contains(": ALLOWED")).collect();
    assert!(
        allowed.is_empty(),
        "code in a worker was allowed:\n{}\n\nfull report:\n{report}\n{logs}",
        allowed.join("\n")
    );
    for expected in [
        "signal supervisor: refused",
        "signal edge: refused",
        "signal pool-master: refused",
        "ptrace edge: refused",
        "ptrace pool-master: refused",
        "ptrace sibling-worker: refused",
        "read /proc/sibling-worker/mem: refused",
        "read /proc/sibling-worker/maps: refused",
        "read /proc/sibling-worker/environ: refused",
        "list /proc/sibling-worker/fd: refused",
        "process_vm_readv sibling-worker: refused",
        "read /proc/edge/maps: refused",
        "create a file in RuntimeDir: refused",
        "bind a socket in RuntimeDir: refused",
        "connect to pool-1.sock: refused",
        "rename pool-1.sock: refused",
        "remove pool-1.sock: refused",
        "write RuntimeDir/listen: refused",
        "write PidFile: refused",
        "replace PidFile: refused",
        "become root: refused",
        "regain privileges (no_new_privs off): refused",
    ] {
        assert!(report.contains(expected), "missing `{expected}` in the report:\n{report}");
    }
}

/// The descriptors listed by the probe (`fd N: target`).
fn descriptors(report: &str) -> Vec<(i32, String)> {
    report
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix("fd ")?;
            let (fd, target) = rest.split_once(": ")?;
            Some((fd.parse().ok()?, target.to_string()))
        })
        .collect()
}

#[test]
fn a_compromised_cgi_script_is_refused_everything_outside_its_request() {
    if !crate::support::is_root() {
        eprintln!("skipped: privilege separation needs the tests to run as root");
        return;
    }
    let site = Site::new();
    let script = site.path().join("cgi-bin/intruder");
    std::fs::copy(example("intruder"), &script).expect("copy intruder");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let weir = site.start("StartServers 3\nMinSpareServers 3\nMaxSpareServers 6\n");
    wait_for_workers(&weir, 3);
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get(&format!("/cgi-bin/intruder?{}", targets(&weir))).expect("intruder runs");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report = reply.text();
    assert_all_refused(&report, &weir.logs());
    // A script starts with stdin, stdout and stderr, and nothing else (the listing's own
    // descriptor of /proc/self/fd aside).
    let extra: Vec<_> = descriptors(&report)
        .into_iter()
        .filter(|(fd, target)| *fd > 2 && !target.starts_with("/proc/"))
        .collect();
    assert!(extra.is_empty(), "the script inherited descriptors: {extra:?}\n{report}");
    assert!(!report.contains("shared "), "the script sees shared memory:\n{report}");
    // Nothing changed: the pool still answers through its socket.
    let again = client.get("/cgi-bin/intruder").expect("the pool still serves");
    assert_eq!(again.status, 200);
    assert!(weir.path().join("run/pool-1.sock").exists());
}

#[test]
fn compromised_handler_code_is_refused_everything_outside_its_request() {
    if !crate::support::is_root() {
        eprintln!("skipped: privilege separation needs the tests to run as root");
        return;
    }
    let site = Site::new().with_example("testapp");
    let weir = site.start("StartServers 3\nMinSpareServers 3\nMaxSpareServers 6\n");
    wait_for_workers(&weir, 3);
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get(&format!("/app/intrude?{}", targets(&weir))).expect("handler runs");
    assert_eq!(reply.status, 200, "{}", reply.text());
    let report = reply.text();
    assert_all_refused(&report, &weir.logs());
    // The worker's own descriptors: /dev/null for stdin and stdout, the error log, the pool's
    // listening socket and its one connection (and the listing itself); no TCP listener, no
    // readiness pipe, nothing of the supervisor's.
    let fds = descriptors(&report);
    let sockets = fds.iter().filter(|(_, t)| t.starts_with("socket:")).count();
    assert!(sockets <= 2, "a Handler holds {sockets} sockets: {fds:?}");
    let unexpected: Vec<_> = fds
        .iter()
        .filter(|(fd, t)| {
            !(t.starts_with("socket:")
                || t == "/dev/null"
                || t.ends_with("error.log")
                || t.starts_with("/proc/")
                || (*fd == 2))
        })
        .collect();
    assert!(unexpected.is_empty(), "a Handler holds unexpected descriptors: {unexpected:?}\n{report}");
    // Its only shared memory is its own scoreboard slot: one page, not the whole board.
    let shared: Vec<u64> = report
        .lines()
        .filter_map(|l| l.strip_prefix("shared ")?.split_whitespace().nth(1)?.parse().ok())
        .collect();
    assert_eq!(shared.len(), 1, "expected one shared mapping (its slot):\n{report}");
    assert!(shared[0] <= 64 * 1024, "a worker maps {} bytes of the scoreboard:\n{report}", shared[0]);
}

#[test]
fn runtime_paths_others_could_write_are_refused_at_start() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // RuntimeDir left owned by the workers' account (as an older weir made it).
    let site = Site::new();
    let run = site.path().join("run");
    std::fs::create_dir(&run).expect("mkdir");
    nix::unistd::chown(&run, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config("")).expect("conf");
    let out = crate::support::weir_command(&["run", "-f"], &conf).output().expect("weir runs");
    let log = std::fs::read_to_string(site.path().join("error.log")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(1), "weir started with an unsafe RuntimeDir:\n{log}");
    assert!(log.contains("RuntimeDir") && log.contains("owned by uid 65534"), "{log}");
    let test = crate::support::weir_command(&["configtest", "-f"], &conf).output().expect("configtest");
    assert_ne!(test.status.code(), Some(0), "configtest passed an unsafe RuntimeDir");

    // A world-writable directory above PidFile.
    let site = Site::new();
    let open = site.path().join("open");
    std::fs::create_dir(&open).expect("mkdir");
    std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let conf = site.path().join("weir.conf");
    let text = site.config("").replace(
        &format!("PidFile {}/run/weir.pid", site.path().display()),
        &format!("PidFile {}/open/pids/weir.pid", site.path().display()),
    );
    std::fs::write(&conf, text).expect("conf");
    let out = crate::support::weir_command(&["run", "-f"], &conf).output().expect("weir runs");
    let log = std::fs::read_to_string(site.path().join("error.log")).unwrap_or_default();
    assert_eq!(out.status.code(), Some(1), "weir started with PidFile under a world-writable dir:\n{log}");
    assert!(log.contains("writable by others"), "{log}");
}

#[test]
fn weir_stop_signals_only_a_live_weir_that_holds_its_pid_file() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // A PidFile naming some other root process (what a script could once write there): weir
    // stop must leave that process alone.
    let site = Site::new();
    let mut bystander = std::process::Command::new("sleep").arg("60").spawn().expect("sleep");
    let run = site.path().join("run");
    std::fs::create_dir(&run).expect("mkdir");
    std::fs::write(run.join("weir.pid"), format!("{}\n", bystander.id())).expect("pidfile");
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config("")).expect("conf");
    for verb in ["stop", "reload"] {
        let out = crate::support::weir_command(&[verb, "-f"], &conf).output().expect("weir stop");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "weir {verb} acted on a stale PidFile: {stderr}");
        assert!(stderr.contains("not running"), "{stderr}");
    }
    assert!(matches!(bystander.try_wait(), Ok(None)), "weir stop signalled a process that is not weir");
    let _ = bystander.kill();
    let _ = bystander.wait();

    // And a running weir is still stopped by it.
    let site = Site::new();
    let mut weir = site.start("");
    let conf = weir.path().join("weir.conf");
    let out = crate::support::weir_command(&["stop", "-f"], &conf).output().expect("weir stop");
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    weir.stop();
}

#[test]
fn started_as_an_ordinary_user_weir_says_which_protections_are_off() {
    if !crate::support::is_root() {
        eprintln!("skipped: the test switches to nobody, which needs root");
        return;
    }
    let site = Site::new();
    // Everything of the site belongs to nobody, who starts weir; the binary is copied where
    // nobody may run it.
    let binary = site.path().join("weir");
    std::fs::copy(env!("CARGO_BIN_EXE_weir"), &binary).expect("copy weir");
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config("")).expect("conf");
    let nobody = nix::unistd::Uid::from_raw(65534);
    let nogroup = nix::unistd::Gid::from_raw(65534);
    for entry in crate::support::entries_under(site.path()) {
        nix::unistd::chown(&entry, Some(nobody), Some(nogroup)).expect("chown");
    }
    let as_nobody = |args: &[&str]| {
        let mut command = std::process::Command::new(&binary);
        command.args(args).arg(&conf).uid(65534).gid(65534).stdin(Stdio::null()).process_group(0);
        command
    };
    let test = as_nobody(&["configtest", "-f"]).output().expect("configtest");
    let stderr = String::from_utf8_lossy(&test.stderr);
    assert_eq!(test.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("not root: without privilege separation"), "configtest is silent:\n{stderr}");

    let mut child =
        as_nobody(&["run", "-f"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("run");
    let listen = site.path().join("run/listen");
    let up = wait_until(Duration::from_secs(30), || listen.exists());
    let log = std::fs::read_to_string(site.path().join("error.log")).unwrap_or_default();
    // SAFETY: kill takes plain integers; the group is the one weir was started in.
    unsafe { libc::kill(-(child.id() as i32), libc::SIGTERM) };
    let stopped = wait_until(Duration::from_secs(20), || matches!(child.try_wait(), Ok(Some(_))));
    if !stopped {
        // SAFETY: as above.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.wait();
    }
    assert!(up, "weir did not start as nobody:\n{log}");
    assert!(log.contains("not root: without privilege separation"), "the start-up log is silent:\n{log}");
    assert!(procs::in_group(child.id() as i32).is_empty(), "processes left behind");
}

#[test]
fn log_files_the_roles_could_replace_are_refused_and_a_planted_fifo_never_blocks() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // A log directory the workers' account owns: a script could swap the log for a FIFO and
    // hang root at the next reload, or for a link to a file root would then append to.
    let site = Site::new();
    let logs = site.path().join("logs");
    std::fs::create_dir(&logs).expect("mkdir");
    nix::unistd::chown(&logs, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let d = site.path().display();
    let text =
        site.config("").replace(&format!("ErrorLog {d}/error.log"), &format!("ErrorLog {d}/logs/error.log"));
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, &text).expect("conf");
    for verb in ["run", "configtest"] {
        let out = crate::support::weir_command(&[verb, "-f"], &conf).output().expect("weir");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(
            out.status.code(),
            Some(0),
            "weir {verb} accepted a log directory owned by nobody:\n{stderr}"
        );
        assert!(stderr.contains("ErrorLog") && stderr.contains("owned by uid 65534"), "{verb}: {stderr}");
    }
    // A sticky world-writable directory (/tmp's kind): anyone may plant a file under the log's
    // name there. And a log already there that the workers' account owns.
    let site = Site::new();
    let sticky = site.path().join("sticky");
    std::fs::create_dir(&sticky).expect("mkdir");
    std::fs::set_permissions(&sticky, std::fs::Permissions::from_mode(0o1777)).expect("chmod");
    let planted = site.path().join("access.log");
    std::fs::write(&planted, "").expect("plant");
    nix::unistd::chown(&planted, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let d = site.path().display();
    let conf = site.path().join("weir.conf");
    for (text, needle) in [
        (
            site.config("")
                .replace(&format!("ErrorLog {d}/error.log"), &format!("ErrorLog {d}/sticky/error.log")),
            "writable by others",
        ),
        (site.config(""), "owned by uid 65534"),
    ] {
        std::fs::write(&conf, &text).expect("conf");
        let out = crate::support::weir_command(&["configtest", "-f"], &conf).output().expect("configtest");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "configtest accepted a log others could write:\n{stderr}");
        assert!(stderr.contains(needle), "{stderr}");
    }
    // A FIFO where the log should be (planted by anyone): refused at once, never waited on.
    let site = Site::new();
    let fifo = site.path().join("error.log");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).expect("mkfifo");
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config("")).expect("conf");
    let mut child = crate::support::weir_command(&["run", "-f"], &conf)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weir");
    let exited = wait_until(Duration::from_secs(10), || matches!(child.try_wait(), Ok(Some(_))));
    if !exited {
        // SAFETY: kill takes plain integers; the group is weir's own.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(exited, "weir hung opening a FIFO as its error log");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
}

#[test]
fn a_document_root_the_edge_cannot_read_is_refused_before_start() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // Root's own 0700 directory: the edge, with an account of its own, cannot read it and
    // would fail as it starts, again and again. configtest and weir run say so at once.
    let site = Site::new();
    std::fs::set_permissions(site.path().join("htdocs"), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    std::fs::set_permissions(site.path().join("cgi-bin"), std::fs::Permissions::from_mode(0o700))
        .expect("chmod");
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config("")).expect("conf");
    let test = crate::support::weir_command(&["configtest", "-f"], &conf).output().expect("configtest");
    let stderr = String::from_utf8_lossy(&test.stderr);
    assert_eq!(test.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("DocumentRoot") && stderr.contains("cannot read"), "{stderr}");
    assert!(stderr.contains("ScriptAlias directory") && stderr.contains("cannot search"), "{stderr}");
    let out = crate::support::weir_command(&["run", "-f"], &conf).output().expect("weir run");
    // Said before the error log is opened: on standard error.
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "weir started with a DocumentRoot the edge cannot read:\n{said}");
    assert!(said.contains("cannot read"), "{said}");
}

/// A `<VirtualHost>`'s own ErrorLog is held to the main one's rules: in a directory the
/// workers' account owns, `configtest` and `run` refuse it.
#[test]
fn a_virtual_hosts_error_log_the_roles_could_replace_is_refused() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let site = Site::new();
    let logs = site.path().join("site-logs");
    std::fs::create_dir(&logs).expect("mkdir");
    nix::unistd::chown(&logs, Some(nix::unistd::Uid::from_raw(65534)), None).expect("chown");
    let d = site.path().display();
    let text = site.config(&format!(
        "<VirtualHost *:*>\nServerName a.test\nErrorLog {d}/site-logs/a-error.log\n</VirtualHost>\n"
    ));
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, &text).expect("conf");
    for verb in ["configtest", "run"] {
        let out = crate::support::weir_command(&[verb, "-f"], &conf).output().expect("weir");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_ne!(out.status.code(), Some(0), "weir {verb} accepted it:\n{stderr}");
        assert!(stderr.contains("ErrorLog") && stderr.contains("owned by uid 65534"), "{verb}: {stderr}");
    }
    assert!(!logs.join("a-error.log").exists(), "the log was opened all the same");
}
