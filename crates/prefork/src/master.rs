//! The pool master: forks workers, reaps them, replaces the lost, and stops them on request.

use std::collections::HashSet;
use std::io::Write;
use std::os::fd::{AsFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::fork::{fork_child, Role};
use crate::privileges::{self, Account};
use crate::signals::{self, SignalReader};
use crate::worker::{self, ConnectionHandler};

/// The pool's settings, in Apache's terms.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    /// Workers forked at start.
    pub start_servers: usize,
    /// Requests a worker serves before it is replaced; 0 means never.
    pub max_connections_per_child: u64,
    /// How long a stop waits for busy workers before killing them.
    pub graceful_shutdown_timeout: Duration,
    /// Account to run as when started as root.
    pub account: Option<Account>,
}

/// A failed fork is retried after this long instead of storming the kernel.
const FORK_RETRY: Duration = Duration::from_secs(1);

struct Master<'a> {
    settings: PoolSettings,
    listener: RawFd,
    handler: &'a mut dyn ConnectionHandler,
    workers: HashSet<Pid>,
    stopping: Option<Instant>,
    next_fork_at: Instant,
}

/// The pool master's entry point. `ready` gets one byte once StartServers workers are forked.
pub fn run(
    settings: PoolSettings,
    listener: OwnedFd,
    ready: Option<OwnedFd>,
    handler: &mut dyn ConnectionHandler,
) -> ! {
    use std::os::fd::AsRawFd;
    let mut signals = match SignalReader::new() {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "pool master could not set up signal handling");
            std::process::exit(1);
        }
    };
    if let Err(error) = privileges::drop_to(settings.account.as_ref()) {
        tracing::error!(%error, "pool master could not drop privileges");
        std::process::exit(1);
    }
    let mut master = Master {
        listener: listener.as_raw_fd(),
        settings,
        handler,
        workers: HashSet::new(),
        stopping: None,
        next_fork_at: Instant::now(),
    };
    master.maintain();
    if let Some(ready) = ready {
        let _ = std::fs::File::from(ready).write_all(b"1");
    }
    loop {
        master.wait_for_events(&mut signals);
        master.reap();
        if let Some(since) = master.stopping {
            if master.workers.is_empty() {
                std::process::exit(0);
            }
            if since.elapsed() >= master.settings.graceful_shutdown_timeout {
                for pid in &master.workers {
                    let _ = kill(*pid, Signal::SIGKILL);
                }
            }
        } else {
            master.maintain();
        }
    }
}

impl Master<'_> {
    fn wait_for_events(&mut self, signals: &mut SignalReader) {
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(200u16));
        while let Some(signal) = signals.pending() {
            match signal {
                Signal::SIGTERM | Signal::SIGINT if self.stopping.is_none() => self.begin_stop(),
                _ => {}
            }
        }
    }

    fn begin_stop(&mut self) {
        tracing::info!(
            workers = self.workers.len(),
            "pool master stopping its workers"
        );
        self.stopping = Some(Instant::now());
        for pid in &self.workers {
            let _ = kill(*pid, Signal::SIGTERM);
        }
    }

    /// Reaps every exited child, logging those that did not leave as asked.
    fn reap(&mut self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    self.workers.remove(&pid);
                    if code != 0 {
                        tracing::warn!(
                            worker.pid = pid.as_raw(),
                            code,
                            "child pid {pid} exit status {code}"
                        );
                    }
                }
                Ok(WaitStatus::Signaled(pid, signal, core)) => {
                    self.workers.remove(&pid);
                    if self.stopping.is_none() || signal != Signal::SIGKILL {
                        let core = if core { ", possible coredump" } else { "" };
                        tracing::warn!(
                            worker.pid = pid.as_raw(),
                            signal = signal as i32,
                            "AH00052: child pid {pid} exit signal {}{core}",
                            signals::describe(signal as i32)
                        );
                    }
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    }

    /// Keeps StartServers workers alive, replacing any that exit.
    fn maintain(&mut self) {
        while self.workers.len() < self.settings.start_servers
            && Instant::now() >= self.next_fork_at
        {
            self.spawn_worker();
        }
    }

    fn spawn_worker(&mut self) {
        let listener = self.listener;
        let max = self.settings.max_connections_per_child;
        let handler = &mut *self.handler;
        match fork_child(Role::Worker, &[listener, 2], || {
            worker::run(listener, handler, max)
        }) {
            Ok(pid) => {
                self.workers.insert(pid);
            }
            Err(error) => {
                tracing::error!(%error, "AH00159: fork: Unable to fork new process");
                self.next_fork_at = Instant::now() + FORK_RETRY;
            }
        }
    }
}
