//! Faults in the process tree: reloads that fail must say so and leave the old generation
//! serving; a pool master that dies leaks no scoreboard slot; the supervisor never signals a
//! process it has already reaped; a killed supervisor takes its tree with it; and a reload never
//! silently ignores a directive it cannot apply.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::client::Client;
use crate::support::{procs, wait_until, weir_command, Site, Weir};

const FAST_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nfast\\n'\n";
const SLOW_SCRIPT: &str =
    "#!/bin/sh\nsleep \"${QUERY_STRING:-2}\"\nprintf 'Content-Type: text/plain\\r\\n\\r\\nslow done\\n'\n";
const STATUS: &str = "<Location /server-status>\nSetHandler server-status\nRequire local\n</Location>\n";

/// Requests `/` over and over from a thread until stopped, counting what failed.
struct Prober {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<std::sync::Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Prober {
    fn start(weir: &Weir) -> Prober {
        let client = Client::new(weir.addr(), &weir.cert_pem);
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (s, o, f) = (stop.clone(), ok.clone(), failed.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match client.get("/") {
                    Ok(reply) if reply.status == 200 => {
                        o.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(reply) => f.lock().unwrap().push(format!("status {}", reply.status)),
                    Err(error) => f.lock().unwrap().push(error),
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Prober { stop, ok, failed, thread: Some(thread) }
    }

    /// Stops probing; returns (answered, failures).
    fn finish(mut self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("prober thread");
        }
        let failed = self.failed.lock().unwrap().clone();
        (self.ok.load(Ordering::Relaxed), failed)
    }
}

fn conf_path(weir: &Weir) -> std::path::PathBuf {
    weir.path().join("weir.conf")
}

/// Appends `extra` to the running configuration file (a later directive overrides an earlier one).
fn append_conf(weir: &Weir, extra: &str) {
    let path = conf_path(weir);
    let mut text = std::fs::read_to_string(&path).expect("read conf");
    text.push_str(extra);
    std::fs::write(&path, text).expect("write conf");
}

fn replace_in_conf(weir: &Weir, from: &str, to: &str) {
    let path = conf_path(weir);
    let text = std::fs::read_to_string(&path).expect("read conf");
    assert!(text.contains(from), "{from} not in the configuration");
    std::fs::write(&path, text.replace(from, to)).expect("write conf");
}

fn weir_cli(args: &[&str], conf: &Path) -> Output {
    weir_command(args, conf).stdout(Stdio::piped()).stderr(Stdio::piped()).output().expect("run weir")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn sighup(weir: &Weir) {
    // SAFETY: kill takes plain integers.
    unsafe { libc::kill(weir.pid(), libc::SIGHUP) };
}

/// Lines of the error log that contain `needle`.
fn log_count(weir: &Weir, needle: &str) -> usize {
    weir.logs().matches(needle).count()
}

/// A key that does not belong to the site's certificate, in place of the right one.
fn write_foreign_key(weir: &Weir) {
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    let path = weir.path().join("key.pem");
    std::fs::write(&path, other.signing_key.serialize_pem()).expect("write key");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
}

#[test]
fn a_reload_to_a_foreign_key_fails_loudly_and_the_old_generation_serves() {
    let mut weir = Site::new().start("");
    let conf = conf_path(&weir);
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/").unwrap().status, 200);
    let (_, old_edge) = weir.roles();
    let probe = Prober::start(&weir);
    write_foreign_key(&weir);
    // The command checks what configtest checks before it signals anything.
    let output = weir_cli(&["reload", "-f"], &conf);
    assert_ne!(output.status.code(), Some(0), "weir reload succeeded with a foreign key: {}", text(&output));
    assert!(text(&output).to_lowercase().contains("key"), "{}", text(&output));
    // SIGHUP straight to the supervisor (as systemctl reload): the new edge cannot start, so the
    // reload fails, says so, and the old generation keeps serving.
    let failures_before = log_count(&weir, "reload failed");
    sighup(&weir);
    assert!(
        wait_until(Duration::from_secs(30), || log_count(&weir, "reload failed") > failures_before),
        "no 'reload failed' line\n{}",
        weir.logs()
    );
    for _ in 0..5 {
        assert_eq!(client.get("/").unwrap().status, 200);
    }
    let (answered, failed) = probe.finish();
    assert!(failed.is_empty(), "requests failed during the failed reload: {failed:?}\n{}", weir.logs());
    assert!(answered > 0);
    assert_eq!(weir.roles().1.pid, old_edge.pid, "the old edge was replaced\n{}", weir.logs());
    weir.stop();
}

/// A reload that names a new ErrorLog and fails: the generation that keeps serving keeps its
/// log, so the supervisor's "reload failed" and what comes after it land in the old file.
#[test]
fn a_failed_reload_leaves_the_error_log_where_it_was() {
    let mut weir = Site::new().start("");
    let old_log = weir.path().join("error.log");
    let new_log = weir.path().join("new-error.log");
    replace_in_conf(
        &weir,
        &format!("ErrorLog {}", old_log.display()),
        &format!("ErrorLog {}", new_log.display()),
    );
    write_foreign_key(&weir);
    let failures_before = log_count(&weir, "reload failed");
    sighup(&weir);
    assert!(
        wait_until(Duration::from_secs(30), || log_count(&weir, "reload failed") > failures_before),
        "no 'reload failed' line in the old ErrorLog\n{}",
        weir.logs()
    );
    let new_text = std::fs::read_to_string(&new_log).unwrap_or_default();
    assert!(!new_text.contains("reload failed"), "the failed reload moved the log:\n{new_text}");
    // Later lines of the serving generation still go to the old file.
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/").unwrap().status, 200);
    weir.stop();
    assert!(
        std::fs::read_to_string(&old_log).unwrap_or_default().contains("caught SIGTERM"),
        "the stop was not logged in the old ErrorLog\n{}",
        weir.logs()
    );
}

#[test]
fn a_reload_to_a_document_root_the_edge_cannot_read_is_refused() {
    let mut weir = Site::new().start("");
    let conf = conf_path(&weir);
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/").unwrap().status, 200);
    let closed = weir.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    std::fs::write(closed.join("index.html"), "closed\n").unwrap();
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o700)).unwrap();
    let htdocs = format!("DocumentRoot {}/htdocs", weir.path().display());
    replace_in_conf(&weir, &htdocs, &format!("DocumentRoot {}", closed.display()));
    let probe = Prober::start(&weir);
    let output = weir_cli(&["reload", "-f"], &conf);
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("DocumentRoot"), "{}", text(&output));
    let failures_before = log_count(&weir, "reload failed");
    sighup(&weir);
    assert!(
        wait_until(Duration::from_secs(30), || log_count(&weir, "reload failed") > failures_before),
        "no 'reload failed' line\n{}",
        weir.logs()
    );
    assert!(weir.logs().contains("DocumentRoot"), "{}", weir.logs());
    let (_, failed) = probe.finish();
    assert!(failed.is_empty(), "requests failed: {failed:?}\n{}", weir.logs());
    assert_eq!(client.get("/").unwrap().text(), "<h1>index</h1>\n");
    weir.stop();
}

#[test]
fn weir_reload_reports_the_supervisors_verdict() {
    let mut weir = Site::new().start("");
    let conf = conf_path(&weir);
    // A good reload: exit 0, and the new generation is serving when the command returns.
    let asked = std::time::Instant::now();
    let output = weir_cli(&["reload", "-f"], &conf);
    eprintln!("weir reload returned its verdict in {:?}", asked.elapsed());
    assert_eq!(output.status.code(), Some(0), "{}\n{}", text(&output), weir.logs());
    assert!(text(&output).contains("generation 2"), "{}", text(&output));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/").unwrap().status, 200);
    // Valid to configtest but refused by the running supervisor: the command says why.
    append_conf(&weir, "User daemon\n");
    let output = weir_cli(&["reload", "-f"], &conf);
    assert_ne!(output.status.code(), Some(0), "{}", text(&output));
    assert!(text(&output).contains("User"), "{}", text(&output));
    assert_eq!(client.get("/").unwrap().status, 200);
    weir.stop();
}

#[test]
fn first_start_with_a_foreign_key_is_never_announced_ready() {
    let site = Site::new();
    let socket_path = site.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    std::fs::set_permissions(&socket_path, std::fs::Permissions::from_mode(0o777)).unwrap();
    socket.set_nonblocking(true).unwrap();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).expect("certificate");
    std::fs::write(site.path().join("key.pem"), other.signing_key.serialize_pem()).unwrap();
    let conf = site.path().join("weir.conf");
    std::fs::write(&conf, site.config("")).unwrap();
    let mut child = weir_command(&["run", "-f"], &conf)
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(site.path().join("stderr.log")).unwrap()))
        .spawn()
        .unwrap();
    let pgid = child.id() as i32;
    let mut exited = None;
    let done = wait_until(Duration::from_secs(30), || {
        exited = child.try_wait().ok().flatten();
        exited.is_some()
    });
    let logs = std::fs::read_to_string(site.path().join("error.log")).unwrap_or_default();
    if !done {
        // SAFETY: kill takes plain integers; a negative pid names the process group.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
        let _ = child.wait();
    }
    assert!(done, "weir kept running with an edge that cannot start\n{logs}");
    assert_eq!(exited.and_then(|s| s.code()), Some(1), "{logs}");
    let mut buffer = [0u8; 256];
    let mut heard = Vec::new();
    while let Ok(n) = socket.recv(&mut buffer) {
        heard.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    assert!(!heard.iter().any(|m| m.contains("READY=1")), "READY sent for a dead edge: {heard:?}\n{logs}");
    assert!(!logs.contains("resuming normal operations"), "{logs}");
    assert!(!site.path().join("run/listen").exists(), "the address file was written\n{logs}");
    assert!(wait_until(Duration::from_secs(10), || procs::in_group(pgid).is_empty()), "{logs}");
}

/// Slots server-status shows with a worker in them, against the workers that exist.
pub(crate) fn slot_pids(client: &Client) -> Vec<i32> {
    let reply = client.get("/server-status?json").expect("server-status");
    let json: serde_json::Value = serde_json::from_slice(&reply.body).expect("server-status json");
    json["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["pid"].as_i64())
        .filter(|pid| *pid > 0)
        .map(|pid| pid as i32)
        .collect()
}

/// Every slot with a pid names a live worker: none is left behind by a dead pool master.
pub(crate) fn assert_no_stale_slot(weir: &Weir, client: &Client) {
    let settled = wait_until(Duration::from_secs(15), || {
        slot_pids(client).iter().all(|pid| {
            procs::read(*pid).is_some_and(|p| p.cmdline == "weir: worker" || p.cmdline.contains("cgi-bin"))
        })
    });
    assert!(settled, "stale slots: {:?}\n{}", slot_pids(client), weir.logs());
}

/// Waits for a pool master other than `old`, with a worker under it.
fn wait_new_master(weir: &Weir, old: i32) -> i32 {
    let mut found = 0;
    let up = wait_until(Duration::from_secs(30), || {
        let masters = procs::children_titled(weir.pid(), "weir: pool master");
        if let Some(master) = masters.iter().find(|m| m.pid != old) {
            if !procs::children_titled(master.pid, "weir: worker").is_empty() {
                found = master.pid;
            }
        }
        found != 0
    });
    assert!(up, "no new pool master after killing {old}\n{}", weir.logs());
    found
}

#[test]
fn killing_the_pool_master_again_and_again_leaks_no_slot() {
    let site = Site::new();
    site.script("fast", FAST_SCRIPT);
    // Two workers a master, four slots: two lost masters' workers would fill the scoreboard.
    let mut weir = site.start(&format!(
        "ServerLimit 4\nMaxRequestWorkers 4\nStartServers 2\nMinSpareServers 1\nMaxSpareServers 2\n{STATUS}"
    ));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/cgi-bin/fast").unwrap().status, 200);
    let mut master = weir.roles().0.pid;
    for _ in 0..4 {
        // SAFETY: kill takes plain integers.
        unsafe { libc::kill(master, libc::SIGKILL) };
        master = wait_new_master(&weir, master);
        let served = wait_until(Duration::from_secs(20), || {
            client.get("/cgi-bin/fast").is_ok_and(|reply| reply.status == 200)
        });
        assert!(served, "CGI fails after a pool master was killed\n{}", weir.logs());
    }
    assert_no_stale_slot(&weir, &client);
    weir.stop();
}

#[test]
fn reloads_that_kill_a_draining_pool_master_leak_no_slot() {
    let site = Site::new();
    site.script("fast", FAST_SCRIPT);
    site.script("slow", SLOW_SCRIPT);
    let mut weir = site.start(&format!(
        "ServerLimit 4\nMaxRequestWorkers 4\nStartServers 2\nMinSpareServers 1\nMaxSpareServers 2\n\
         GracefulShutdownTimeout 1\nTimeout 20\n{STATUS}"
    ));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for round in 0..3 {
        // A request longer than GracefulShutdownTimeout keeps the old generation past its
        // deadline, so the supervisor SIGKILLs its edge and pool master.
        let slow = {
            let client = client.clone();
            std::thread::spawn(move || client.get("/cgi-bin/slow?4"))
        };
        let script = weir.path().join("cgi-bin/slow").display().to_string();
        assert!(
            wait_until(Duration::from_secs(10), || procs::all().iter().any(|p| p.cmdline.contains(&script))),
            "the slow script never ran\n{}",
            weir.logs()
        );
        let killed_before = log_count(&weir, "outlived GracefulShutdownTimeout");
        sighup(&weir);
        assert!(
            wait_until(Duration::from_secs(20), || log_count(&weir, "outlived GracefulShutdownTimeout")
                > killed_before),
            "round {round}: the old generation was not killed\n{}",
            weir.logs()
        );
        let _ = slow.join();
        let served = wait_until(Duration::from_secs(20), || {
            client.get("/cgi-bin/fast").is_ok_and(|reply| reply.status == 200)
        });
        assert!(served, "round {round}: CGI fails after a reload killed a pool master\n{}", weir.logs());
    }
    assert_no_stale_slot(&weir, &client);
    weir.stop();
}

#[test]
fn after_kills_and_reloads_the_supervisor_signals_no_gone_process_and_stops_promptly() {
    let site = Site::new();
    site.script("fast", FAST_SCRIPT);
    let mut weir = site.start("GracefulShutdownTimeout 20\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    // Every kill(2) the supervisor makes, with its result: ESRCH would be a pid already gone.
    let trace = weir.path().join("kill.trace");
    let mut strace = Command::new("strace")
        .args(["-qq", "-e", "trace=kill", "-e", "signal=none", "-o"])
        .arg(&trace)
        .args(["-p", &weir.pid().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("strace");
    assert!(wait_until(Duration::from_secs(10), || procs::status_field(weir.pid(), "TracerPid")
        .is_some_and(|t| t != "0")));
    for round in 0..4 {
        // A role of the running generation dies just as a reload starts: the supervisor must
        // count it as reaped, whether it sees the exit before the reload or while the new
        // generation is starting, and never signal that pid again.
        let (master, edge) = weir.roles();
        let victim = if round % 2 == 0 { edge.pid } else { master.pid };
        let (announced, failed) =
            (log_count(&weir, "resuming normal operations"), log_count(&weir, "reload failed"));
        sighup(&weir);
        // SAFETY: kill takes plain integers.
        unsafe { libc::kill(victim, libc::SIGKILL) };
        assert!(
            wait_until(Duration::from_secs(30), || log_count(&weir, "resuming normal operations")
                > announced
                || log_count(&weir, "reload failed") > failed),
            "round {round}: the reload did not finish\n{}",
            weir.logs()
        );
        assert!(
            wait_until(Duration::from_secs(30), || {
                let masters = procs::children_titled(weir.pid(), "weir: pool master");
                let edges = procs::children_titled(weir.pid(), "weir: edge");
                masters.len() == 1
                    && edges.len() == 1
                    && masters[0].pid != victim
                    && edges[0].pid != victim
                    && client.get("/cgi-bin/fast").is_ok_and(|r| r.status == 200)
            }),
            "round {round}: the tree did not settle to one edge and one pool master\n{}",
            weir.logs()
        );
    }
    let output = weir_cli(&["stop", "-f"], &conf_path(&weir));
    let took = weir.stop();
    assert!(output.status.success(), "{}\n{}", text(&output), weir.logs());
    let _ = strace.wait();
    let kills = std::fs::read_to_string(&trace).unwrap_or_default();
    assert!(took < Duration::from_secs(10), "stop took {took:?}\n{}", weir.logs());
    // The trace saw the stop's own signals, so it was watching.
    assert!(kills.contains("SIGTERM"), "strace recorded nothing: {kills}");
    assert!(!kills.contains("ESRCH"), "the supervisor signalled a gone process:\n{kills}");
    let logs = weir.logs();
    assert!(!logs.contains("did not stop in time"), "{logs}");
    assert!(!logs.contains("outlived GracefulShutdownTimeout"), "{logs}");
}

/// With a request in a worker and a long GracefulShutdownTimeout, the supervisor's SIGKILL still
/// takes the pool master, the busy worker and its script down within moments: no one is left
/// to wait for a graceful stop.
#[test]
fn sigkill_on_the_supervisor_does_not_wait_for_busy_workers() {
    // A duration no other test uses, to find this script among the machine's processes.
    const SLEEP: &str = "sleep 23.25";
    let script_running = || procs::all().iter().any(|p| p.cmdline == SLEEP);
    let site = Site::new();
    site.script(
        "slow",
        &format!("#!/bin/sh\n{SLEEP}\nprintf 'Content-Type: text/plain\\r\\n\\r\\nlate\\n'\n"),
    );
    let mut weir = site.start("GracefulShutdownTimeout 60\nTimeout 60\n");
    let (master, _) = weir.roles();
    let pgid = weir.pid();
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let request = std::thread::spawn(move || client.get("/cgi-bin/slow"));
    assert!(wait_until(Duration::from_secs(10), script_running), "the script never started\n{}", weir.logs());
    let mut child = weir.child.take().expect("supervisor");
    let killed = std::time::Instant::now();
    child.kill().expect("SIGKILL the supervisor");
    let _ = child.wait();
    let gone = wait_until(Duration::from_secs(5), || procs::read(master.pid).is_none());
    let took = killed.elapsed();
    if !gone {
        // SAFETY: kill takes plain integers; a negative pid names the process group.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    assert!(
        gone,
        "the pool master waited for its busy worker after the supervisor's SIGKILL\n{}",
        weir.logs()
    );
    eprintln!("pool master gone {took:?} after the supervisor's SIGKILL, with a busy worker");
    assert!(
        wait_until(Duration::from_secs(5), || !script_running()),
        "the busy worker's script outlived the tree"
    );
    assert!(weir.logs().contains("the supervisor is gone"), "{}", weir.logs());
    let _ = request.join();
}

#[test]
fn sigkill_on_the_supervisor_takes_the_tree_down_and_frees_the_listeners() {
    let weir = Site::new().start("");
    let (master, edge) = weir.roles();
    let addr = weir.addr();
    let conf = conf_path(&weir);
    let pgid = weir.pid();
    let mut weir = weir;
    let mut child = weir.child.take().expect("supervisor");
    let killed = std::time::Instant::now();
    child.kill().expect("SIGKILL the supervisor");
    let _ = child.wait();
    let gone = wait_until(Duration::from_secs(3), || {
        procs::read(master.pid).is_none() && procs::read(edge.pid).is_none()
    });
    eprintln!("edge and pool master gone {:?} after the supervisor's SIGKILL", killed.elapsed());
    let left = procs::in_group(pgid);
    if !gone {
        // SAFETY: kill takes plain integers; a negative pid names the process group.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    assert!(gone, "edge or pool master outlived the supervisor by 3 s: {left:?}\n{}", weir.logs());
    assert!(wait_until(Duration::from_secs(10), || procs::in_group(pgid).is_empty()));
    assert!(std::net::TcpStream::connect(addr).is_err(), "the listener is still open");
    // `weir stop` on a dead supervisor says so.
    let output = weir_cli(&["stop", "-f"], &conf);
    assert_ne!(output.status.code(), Some(0));
    assert!(text(&output).contains("weir is not running"), "{}", text(&output));
    // A new weir starts on the same address.
    let _ = std::fs::remove_file(weir.path().join("run/listen"));
    replace_in_conf(&weir, "Listen 127.0.0.1:0 https", &format!("Listen {addr} https"));
    let again = weir_command(&["run", "-f"], &conf)
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(weir.path().join("stderr.log")).unwrap()))
        .spawn()
        .unwrap();
    weir.child = Some(again);
    assert!(
        wait_until(Duration::from_secs(30), || weir.path().join("run/listen").exists()),
        "a new weir did not start on the same configuration\n{}",
        weir.logs()
    );
    assert_eq!(Client::new(addr, &weir.cert_pem).get("/").unwrap().status, 200);
    weir.stop();
}

#[test]
fn a_reload_refuses_by_name_what_it_cannot_change() {
    let mut weir = Site::new().start("");
    let conf = conf_path(&weir);
    let original = std::fs::read_to_string(&conf).unwrap();
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let d = weir.path().display().to_string();
    for (extra, name) in [
        ("User daemon\n", "User"),
        (&format!("PidFile {d}/run/other.pid\n") as &str, "PidFile"),
        (&format!("RuntimeDir {d}/run2\n"), "RuntimeDir"),
        ("ServerLimit 32\nMaxRequestWorkers 20\n", "ServerLimit"),
        ("LogLevel debug\n", "LogLevel"),
    ] {
        std::fs::write(&conf, format!("{original}{extra}")).unwrap();
        let refused_before = log_count(&weir, "reload failed");
        sighup(&weir);
        assert!(
            wait_until(Duration::from_secs(30), || log_count(&weir, "reload failed") > refused_before),
            "a change of {name} was not refused\n{}",
            weir.logs()
        );
        let line = weir.logs().lines().rev().find(|l| l.contains("reload failed")).unwrap_or("").to_string();
        assert!(line.contains(name), "the refusal does not name {name}: {line}");
        assert_eq!(client.get("/").unwrap().status, 200);
    }
    // The PidFile the running server holds is still the one `weir stop` finds.
    std::fs::write(&conf, &original).unwrap();
    let output = weir_cli(&["stop", "-f"], &conf);
    assert!(output.status.success(), "{}\n{}", text(&output), weir.logs());
    weir.stop();
}
