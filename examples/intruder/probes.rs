//! What compromised code in a worker would try first against the rest of weir, each attempt
//! reported as `name: refused (reason)` or `name: ALLOWED (what happened)`. Used by the
//! `intruder` CGI program and by testapp's `/app/intrude` Handler, so both kinds of code in a
//! worker are held to the same list. Attempts that could do harm if they succeeded use their
//! harmless form: signal 0 (the permission check of kill(2) without a signal), PTRACE_SEIZE
//! (does not stop the target) followed by a detach.

use std::io::Read;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

/// What the attempts aim at: weir's other processes and its runtime files.
#[derive(Debug, Default)]
pub struct Targets {
    pub supervisor: i32,
    pub edge: i32,
    pub pool_master: i32,
    /// Every worker; the probing process and its own parent are skipped.
    pub workers: Vec<i32>,
    pub runtime_dir: PathBuf,
    pub pid_file: PathBuf,
}

impl Targets {
    /// From a query string: `supervisor=1&edge=2&master=3&workers=4,5&runtime=/p&pidfile=/q`.
    pub fn from_query(query: &str) -> Targets {
        let mut targets = Targets::default();
        for pair in query.split('&') {
            let Some((key, value)) = pair.split_once('=') else { continue };
            match key {
                "supervisor" => targets.supervisor = value.parse().unwrap_or(0),
                "edge" => targets.edge = value.parse().unwrap_or(0),
                "master" => targets.pool_master = value.parse().unwrap_or(0),
                "workers" => targets.workers = value.split(',').filter_map(|p| p.parse().ok()).collect(),
                "runtime" => targets.runtime_dir = PathBuf::from(value),
                "pidfile" => targets.pid_file = PathBuf::from(value),
                _ => {}
            }
        }
        targets
    }
}

/// Runs every attempt; one line each.
pub fn run_all(targets: &Targets) -> String {
    let mut out = String::new();
    let mut report = |name: String, result: Result<String, String>| {
        let line = match result {
            Ok(what) => format!("{name}: ALLOWED ({what})\n"),
            Err(why) => format!("{name}: refused ({why})\n"),
        };
        out.push_str(&line);
    };
    let me = std::process::id() as i32;
    // SAFETY: getppid takes no arguments.
    let parent = unsafe { libc::getppid() };
    let mut processes = vec![
        ("supervisor", targets.supervisor),
        ("edge", targets.edge),
        ("pool-master", targets.pool_master),
    ];
    for worker in &targets.workers {
        if *worker != me && *worker != parent {
            processes.push(("sibling-worker", *worker));
        }
    }
    for (role, pid) in &processes {
        if *pid <= 0 {
            continue;
        }
        if *role != "sibling-worker" {
            // Siblings share User, as Apache's children do: they may signal one another, and
            // the pool master replaces what dies. Their memory is what must stay closed.
            report(format!("signal {role}"), signal(*pid));
        }
        report(format!("ptrace {role}"), ptrace(*pid));
        for file in ["mem", "maps", "environ", "auxv"] {
            report(format!("read /proc/{role}/{file}"), read_proc(*pid, file));
        }
        report(format!("list /proc/{role}/fd"), list_fds(*pid));
        report(format!("process_vm_readv {role}"), read_memory(*pid));
    }
    let dir = &targets.runtime_dir;
    report("create a file in RuntimeDir".into(), create(&dir.join("intruder.txt")));
    report("bind a socket in RuntimeDir".into(), bind(&dir.join("intruder.sock")));
    for socket in pool_sockets(dir) {
        let name = socket.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        report(format!("connect to {name}"), connect(&socket));
        report(format!("rename {name}"), rename(&socket, &dir.join("moved.sock")));
        report(format!("remove {name}"), remove(&socket));
    }
    report("write RuntimeDir/listen".into(), write(&dir.join("listen")));
    report("write PidFile".into(), write(&targets.pid_file));
    let pid_dir = targets.pid_file.parent().unwrap_or(Path::new("/"));
    report("replace PidFile".into(), replace(pid_dir, &targets.pid_file));
    report("become root".into(), become_root());
    report("regain privileges (no_new_privs off)".into(), no_new_privs_off());
    out
}

fn errno_text() -> String {
    std::io::Error::last_os_error().to_string()
}

fn signal(pid: i32) -> Result<String, String> {
    // SAFETY: kill with signal 0 only checks permission; plain integers.
    match unsafe { libc::kill(pid, 0) } {
        0 => Ok("may signal it, SIGKILL included".into()),
        _ => Err(errno_text()),
    }
}

fn ptrace(pid: i32) -> Result<String, String> {
    // SAFETY: PTRACE_SEIZE takes a pid and no pointers; it does not stop the target.
    let seized = unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, 0usize, 0usize) };
    if seized != 0 {
        return Err(errno_text());
    }
    // SAFETY: detaching from a tracee we just seized.
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, 0usize, 0usize) };
    Ok("attached".into())
}

fn read_proc(pid: i32, file: &str) -> Result<String, String> {
    let mut opened = std::fs::File::open(format!("/proc/{pid}/{file}")).map_err(|e| e.to_string())?;
    let mut buffer = [0u8; 64];
    match opened.read(&mut buffer) {
        Ok(n) => Ok(format!("read {n} bytes")),
        Err(error) => Err(error.to_string()),
    }
}

fn list_fds(pid: i32) -> Result<String, String> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).map_err(|e| e.to_string())?;
    let mut targets = Vec::new();
    for entry in entries.flatten() {
        match std::fs::read_link(entry.path()) {
            Ok(target) => targets.push(target.display().to_string()),
            Err(error) => return Err(error.to_string()),
        }
    }
    Ok(format!("{} descriptors: {}", targets.len(), targets.join(" ")))
}

fn read_memory(pid: i32) -> Result<String, String> {
    let mut buffer = [0u8; 16];
    let local = libc::iovec { iov_base: buffer.as_mut_ptr().cast(), iov_len: buffer.len() };
    // Some address in every process: the start of its stack region is unknown here, so ask for
    // the page at 64 KiB (unmapped: EFAULT), which still goes through the permission check
    // first (EPERM when refused).
    let remote = libc::iovec { iov_base: 0x10000 as *mut libc::c_void, iov_len: 16 };
    // SAFETY: both iovecs describe memory of the right lengths; the remote one is only read.
    let n = unsafe { libc::process_vm_readv(pid, &local, 1, &remote, 1, 0) };
    let error = std::io::Error::last_os_error();
    if n >= 0 || error.raw_os_error() == Some(libc::EFAULT) {
        return Ok("permitted (the kernel checked the address, not the permission)".into());
    }
    Err(error.to_string())
}

fn pool_sockets(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e == "sock"))
                .collect()
        })
        .unwrap_or_default()
}

fn create(path: &Path) -> Result<String, String> {
    std::fs::File::create(path).map(|_| "created".into()).map_err(|e| e.to_string())
}

fn bind(path: &Path) -> Result<String, String> {
    UnixListener::bind(path).map(|_| "bound".into()).map_err(|e| e.to_string())
}

fn connect(path: &Path) -> Result<String, String> {
    UnixStream::connect(path).map(|_| "connected".into()).map_err(|e| e.to_string())
}

fn rename(from: &Path, to: &Path) -> Result<String, String> {
    std::fs::rename(from, to).map(|()| "renamed".into()).map_err(|e| e.to_string())
}

fn remove(path: &Path) -> Result<String, String> {
    std::fs::remove_file(path).map(|()| "removed".into()).map_err(|e| e.to_string())
}

fn write(path: &Path) -> Result<String, String> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map(|_| "opened for writing".into())
        .map_err(|e| e.to_string())
}

fn replace(dir: &Path, target: &Path) -> Result<String, String> {
    let fake = dir.join("intruder.pid");
    std::fs::write(&fake, "1\n").map_err(|e| e.to_string())?;
    std::fs::rename(&fake, target).map(|()| "replaced".into()).map_err(|e| e.to_string())
}

fn become_root() -> Result<String, String> {
    // SAFETY: setuid takes a plain integer.
    match unsafe { libc::setuid(0) } {
        0 => Ok("now root".into()),
        _ => Err(errno_text()),
    }
}

fn no_new_privs_off() -> Result<String, String> {
    let status = std::fs::read_to_string("/proc/self/status").map_err(|e| e.to_string())?;
    match status.lines().find(|l| l.starts_with("NoNewPrivs:")) {
        Some(line) if line.trim_end().ends_with('1') => Err("NoNewPrivs is 1".into()),
        Some(line) => Ok(line.to_string()),
        None => Ok("no NoNewPrivs line".into()),
    }
}

/// This process's own descriptors (with what they point to), and the shared memory it can see:
/// what code in a worker has to work with.
pub fn own_descriptors() -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir("/proc/self/fd") {
        let mut fds: Vec<(i32, String)> = entries
            .flatten()
            .filter_map(|e| {
                let fd = e.file_name().to_str()?.parse().ok()?;
                Some((fd, std::fs::read_link(e.path()).ok()?.display().to_string()))
            })
            .collect();
        fds.sort();
        for (fd, target) in fds {
            out.push_str(&format!("fd {fd}: {target}\n"));
        }
    }
    if let Ok(maps) = std::fs::read_to_string("/proc/self/maps") {
        for line in maps.lines().filter(|l| l.contains("/dev/zero") || l.contains("(deleted)")) {
            let mut fields = line.split_whitespace();
            let range = fields.next().unwrap_or("");
            let perms = fields.next().unwrap_or("");
            if let Some((start, end)) = range.split_once('-') {
                let size =
                    u64::from_str_radix(end, 16).unwrap_or(0) - u64::from_str_radix(start, 16).unwrap_or(0);
                out.push_str(&format!("shared {perms} {size} bytes: {line}\n"));
            }
        }
    }
    out
}
