//! The supervisor: holds the listening sockets, forks the pool master and the edge, restarts a
//! role that dies, and stops the tree on SIGTERM or SIGINT. Single-threaded; signals arrive
//! through a `signalfd` read in its one poll loop.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use weir_conf::Config;
use weir_prefork::privileges::Account;
use weir_prefork::signals::{self, SignalReader};
use weir_prefork::{fork_child, Role, Scoreboard};

use crate::roles;
use crate::sockets::{self, BoundListener};

/// A role lost unexpectedly is restarted after this long, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A role that stays up this long resets its backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);

/// One forked role the supervisor keeps alive.
struct Child {
    role: Role,
    pid: Option<Pid>,
    /// The read end of the role's readiness pipe until its byte arrives.
    ready: Option<OwnedFd>,
    started: Instant,
    backoff: Duration,
    restart_at: Option<Instant>,
}

impl Child {
    fn new(role: Role) -> Self {
        Child {
            role,
            pid: None,
            ready: None,
            started: Instant::now(),
            backoff: FIRST_BACKOFF,
            restart_at: None,
        }
    }
}

/// What the supervisor owns while it runs.
pub struct Supervisor {
    pub config: Arc<Config>,
    /// Application handlers, moved into each pool master this supervisor forks.
    pub handlers: Vec<(String, Box<dyn weir_apps::Handler>)>,
    /// Their paths, which the edge routes to the pool.
    pub handler_paths: Vec<String>,
    pub account: Option<Account>,
    pub listeners: Vec<BoundListener>,
    pub pool_listener: UnixListener,
    /// Shared with every process forked from here: workers write it, the master reads it.
    pub scoreboard: Scoreboard,
    pub pool_socket: PathBuf,
}

impl Supervisor {
    /// Runs the tree until it is told to stop. Returns the process exit code.
    pub fn run(mut self, signals: &mut SignalReader) -> i32 {
        // Orphaned workers (a pool master that died) are re-parented here, reaped and stopped.
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and no pointers.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        // The pool master first: it must be forked before the edge reads any private key.
        let mut pool = Child::new(Role::PoolMaster);
        let mut edge = Child::new(Role::Edge);
        if let Err(error) = self.start(&mut pool).and_then(|()| self.start(&mut edge)) {
            tracing::error!("{error}");
            self.stop_all(&mut [&mut pool, &mut edge]);
            return 1;
        }
        let mut announced = false;
        loop {
            self.wait_for_events(signals, &mut [&mut pool, &mut edge]);
            let mut stop = false;
            while let Some(signal) = signals.pending() {
                match signal {
                    Signal::SIGTERM | Signal::SIGINT => {
                        tracing::info!("AH00169: caught SIGTERM, shutting down");
                        stop = true;
                    }
                    Signal::SIGHUP => {
                        tracing::warn!("SIGHUP received; reloading is not supported yet, ignoring")
                    }
                    _ => {}
                }
            }
            if stop {
                self.stop_all(&mut [&mut pool, &mut edge]);
                return 0;
            }
            self.reap(&mut [&mut pool, &mut edge]);
            for child in [&mut pool, &mut edge] {
                if child.restart_at.is_some_and(|at| Instant::now() >= at) {
                    if let Err(error) = self.start(child) {
                        tracing::error!("{error}");
                        child.restart_at = Some(Instant::now() + child.backoff);
                    }
                }
            }
            if !announced
                && pool.pid.is_some()
                && edge.pid.is_some()
                && pool.ready.is_none()
                && edge.ready.is_none()
            {
                announced = true;
                self.announce();
            }
        }
    }

    fn start(&mut self, child: &mut Child) -> Result<(), weir_prefork::fork::ForkError> {
        let (ready_read, ready_write) = match nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC) {
            Ok(pipe) => pipe,
            Err(source) => {
                return Err(weir_prefork::fork::ForkError::Fork {
                    role: child.role,
                    source,
                })
            }
        };
        let pid = match child.role {
            Role::PoolMaster => {
                let keep = [self.pool_listener.as_raw_fd(), ready_write.as_raw_fd()];
                fork_child(Role::PoolMaster, &keep, || {
                    // This runs in the child, on its own copy of the supervisor's memory: taking
                    // the handlers leaves the supervisor's for the next pool master it forks.
                    let handlers = std::mem::take(&mut self.handlers);
                    roles::pool_master(
                        &self.config,
                        self.scoreboard,
                        &self.pool_listener,
                        self.account.clone(),
                        ready_write,
                        handlers,
                    )
                })?
            }
            _ => {
                let keep = roles::edge_fds(&self.listeners, &ready_write);
                fork_child(Role::Edge, &keep, || {
                    roles::edge(
                        self.config.clone(),
                        &self.listeners,
                        self.pool_socket.clone(),
                        self.handler_paths.clone(),
                        self.account.clone(),
                        ready_write,
                    )
                })?
            }
        };
        child.pid = Some(pid);
        child.ready = Some(ready_read);
        child.started = Instant::now();
        child.restart_at = None;
        Ok(())
    }

    /// Waits for a signal, a readiness byte, or a restart due.
    fn wait_for_events(&self, signals: &SignalReader, children: &mut [&mut Child]) {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        for child in children.iter() {
            if let Some(ready) = &child.ready {
                fds.push(PollFd::new(ready.as_fd(), PollFlags::POLLIN));
            }
        }
        let _ = poll(&mut fds, PollTimeout::from(250u16));
        let fired: Vec<bool> = fds[1..]
            .iter()
            .map(|fd| fd.any().unwrap_or(false))
            .collect();
        drop(fds);
        let mut index = 0;
        for child in children.iter_mut() {
            if child.ready.is_some() {
                if fired[index] {
                    let mut byte = [0u8; 1];
                    if let Some(ready) = child.ready.take() {
                        // A byte means ready; end-of-file means the role died before it was;
                        // reaping handles that.
                        let _ = std::fs::File::from(ready).read(&mut byte);
                    }
                }
                index += 1;
            }
        }
    }

    /// Reaps exited children; schedules the restart of a lost role.
    fn reap(&self, children: &mut [&mut Child]) {
        loop {
            let (pid, how) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, format!("exit status {code}")),
                Ok(WaitStatus::Signaled(pid, signal, _)) => (
                    pid,
                    format!("exit signal {}", signals::describe(signal as i32)),
                ),
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            let Some(child) = children.iter_mut().find(|c| c.pid == Some(pid)) else {
                // A worker orphaned by a lost pool master, re-parented to us.
                tracing::warn!("AH00165: long lost child came home! (pid {pid})");
                continue;
            };
            child.pid = None;
            child.ready = None;
            if child.started.elapsed() > STABLE_AFTER {
                child.backoff = FIRST_BACKOFF;
            }
            tracing::error!(
                role = child.role.title(),
                pid = pid.as_raw(),
                "{} (pid {pid}) {how}; restarting it in {:?}",
                child.role.title(),
                child.backoff
            );
            child.restart_at = Some(Instant::now() + child.backoff);
            child.backoff = (child.backoff * 2).min(MAX_BACKOFF);
        }
    }

    /// Logs the ready line and writes the address file tests and tools wait for.
    fn announce(&self) {
        for listener in &self.listeners {
            let scheme = match listener.scheme {
                weir_conf::ListenScheme::Https => "https",
                weir_conf::ListenScheme::Http => "http",
            };
            tracing::info!(address = %listener.local, "listening on {scheme}://{}", listener.local);
        }
        if let Err(error) = sockets::write_address_file(&self.config.runtime_dir, &self.listeners) {
            tracing::error!(%error, "could not write the address file in RuntimeDir");
        }
        tracing::info!(
            "AH00163: weir/{} (Unix) configured -- resuming normal operations",
            env!("CARGO_PKG_VERSION")
        );
    }

    /// Graceful stop: the edge first (it stops accepting and drains, still using the pool), then
    /// the pool; anything left at GracefulShutdownTimeout is killed.
    fn stop_all(&self, children: &mut [&mut Child]) {
        let deadline = Instant::now() + self.config.graceful_shutdown_timeout;
        for role in [Role::Edge, Role::PoolMaster] {
            let Some(child) = children.iter_mut().find(|c| c.role == role) else {
                continue;
            };
            let Some(pid) = child.pid else { continue };
            let _ = kill(pid, Signal::SIGTERM);
            if !wait_for_exit(pid, deadline) {
                tracing::warn!(
                    pid = pid.as_raw(),
                    "{} did not stop in time; killing it",
                    role.title()
                );
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
            }
            child.pid = None;
        }
        kill_orphans(deadline);
        let _ = std::fs::remove_file(self.config.runtime_dir.join("listen"));
        let _ = std::fs::remove_file(&self.pool_socket);
        let _ = std::fs::remove_file(&self.config.pid_file);
        tracing::info!("weir stopped");
    }
}

/// Waits for `pid` to exit until `deadline`, reaping any other child that exits meanwhile.
fn wait_for_exit(pid: Pid, deadline: Instant) -> bool {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(done, _)) | Ok(WaitStatus::Signaled(done, _, _))
                if done == pid =>
            {
                return true
            }
            Ok(WaitStatus::StillAlive) => {}
            Err(nix::Error::ECHILD) => return true,
            Ok(_) | Err(_) => continue,
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Processes re-parented to the supervisor (workers of a lost pool master, and what their
/// scripts started): asked to stop, then killed from the deadline on, until none is left.
fn kill_orphans(deadline: Instant) {
    let mut asked = false;
    loop {
        while let Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) =
            waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG))
        {}
        let children = child_pids();
        if children.is_empty() {
            return;
        }
        let late = Instant::now() >= deadline;
        if late || !asked {
            let signal = if late {
                Signal::SIGKILL
            } else {
                Signal::SIGTERM
            };
            for pid in children {
                let _ = kill(pid, signal);
            }
            asked = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// This process's children, from /proc.
fn child_pids() -> Vec<Pid> {
    let me = std::process::id();
    std::fs::read_to_string(format!("/proc/{me}/task/{me}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok().map(Pid::from_raw))
        .collect()
}
