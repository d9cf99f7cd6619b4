//! The pool master: forks workers, keeps the idle count between MinSpareServers and
//! MaxSpareServers as Apache's prefork does, recycles, retires and replaces workers, and stops
//! them on request. Single-threaded: one poll loop over a signalfd, ticking every 50 ms.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use weir_conf::RLimits;

use crate::fork::{fork_child, Role};
use crate::privileges::{self, Account};
use crate::signals::{self, SignalReader};
use crate::worker::{self, ConnectionHandler, WorkerSettings};
use weir_scoreboard::{now_us, Recycle, Scoreboard, State};

/// The pool's settings, in Apache's terms.
#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub start_servers: usize,
    pub min_spare_servers: usize,
    pub max_spare_servers: usize,
    pub max_request_workers: usize,
    /// Requests a worker serves before it is replaced; 0 means never.
    pub max_connections_per_child: u64,
    /// A worker whose PSS grows past this many bytes is retired after its request; 0: no limit.
    pub max_memory_per_child: u64,
    /// A worker busy on one request longer than this (plus [`HUNG_GRACE`]) is killed.
    pub timeout: Duration,
    /// How long a stop waits for busy workers before killing them.
    pub graceful_shutdown_timeout: Duration,
    /// Account to run as when started as root.
    pub account: Option<Account>,
    /// RLimitCPU, RLimitMEM, RLimitNPROC for each worker.
    pub rlimits: RLimits,
    /// The `<VirtualHost>`s' own ErrorLogs, which every worker keeps open (a site's script
    /// stderr lines go there).
    pub log_fds: Vec<std::os::fd::RawFd>,
    /// This pool's generation (a reload starts a new one).
    pub generation: u32,
    /// This pool master's own tag, written into every slot it claims: unique per pool master
    /// the supervisor forks (a restarted one gets a new tag), so the supervisor can free the
    /// slots of one that died.
    pub slot_owner: u32,
}

/// How often the loop wakes to look at the scoreboard: the reaction time when idle workers run
/// out, against Apache's one second.
const TICK: Duration = Duration::from_millis(50);
/// Apache's maintenance period: spare-server decisions are taken once a second.
const MAINTENANCE: Duration = Duration::from_secs(1);
/// Apache's cap on the exponential spawn rate.
const MAX_SPAWN_RATE: usize = 32;
/// Recycles (MaxConnectionsPerChild) allowed in flight at once.
const MAX_RECYCLES_IN_FLIGHT: usize = 3;
/// Past Timeout, how long a busy worker gets before it is killed as hung.
pub const HUNG_GRACE: Duration = Duration::from_secs(1);
/// After SIGTERM, how long a hung worker gets before SIGKILL.
const KILL_AFTER: Duration = Duration::from_secs(1);
/// More than this many crashes within [`CRASH_WINDOW`] is a crash storm.
const CRASH_STORM: usize = 10;
const CRASH_WINDOW: Duration = Duration::from_secs(10);
/// A failed fork is retried after this long instead of storming the kernel.
const FORK_RETRY: Duration = Duration::from_secs(1);

/// One live worker, as the master knows it.
struct Worker {
    slot: usize,
    forked: Instant,
    /// When the master sent SIGTERM to a hung worker.
    terminated: Option<Instant>,
    /// Whether the MaxMemoryPerChild retirement was already logged.
    memory_retired: bool,
}

struct Master<'a> {
    settings: PoolSettings,
    listener: RawFd,
    scoreboard: Scoreboard,
    handler: &'a mut dyn ConnectionHandler,
    workers: HashMap<Pid, Worker>,
    stopping: Option<Instant>,
    next_fork_at: Instant,
    next_maintenance: Instant,
    spawn_rate: usize,
    crashes: VecDeque<Instant>,
    storm_logged: bool,
}

/// The pool master's entry point. `ready` gets one byte once StartServers workers are forked.
pub fn run(
    settings: PoolSettings,
    scoreboard: Scoreboard,
    listener: OwnedFd,
    ready: Option<OwnedFd>,
    handler: &mut dyn ConnectionHandler,
) -> ! {
    let mut signals = match SignalReader::new() {
        Ok(signals) => signals,
        Err(error) => {
            tracing::error!(%error, "pool master could not set up signal handling");
            std::process::exit(1);
        }
    };
    // The pool master keeps the identity it was started with (root, when weir is started as
    // root, as Apache's parent process does): it serves nothing and runs no application code,
    // and it must be an identity that workers cannot signal or trace, yet one that may signal
    // them. Each worker drops to `User` itself, right after the fork.
    privileges::harden();
    let start = settings.start_servers.min(settings.max_request_workers);
    let mut master = Master {
        listener: listener.as_raw_fd(),
        scoreboard,
        settings,
        handler,
        workers: HashMap::new(),
        stopping: None,
        next_fork_at: Instant::now(),
        next_maintenance: Instant::now() + MAINTENANCE,
        spawn_rate: 1,
        crashes: VecDeque::new(),
        storm_logged: false,
    };
    // The supervisor, whose death hands this process to another parent.
    let parent = nix::unistd::getppid();
    let mut orphan_logged = false;
    for _ in 0..start {
        master.spawn_worker();
    }
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
            // With the supervisor gone the site is down already and no one waits for a graceful
            // stop: workers and their scripts go at once, so nothing of the tree outlives it by
            // more than a moment.
            let orphaned = nix::unistd::getppid() != parent;
            if orphaned && !std::mem::replace(&mut orphan_logged, true) {
                tracing::warn!(
                    workers = master.workers.len(),
                    "the supervisor is gone; pool master stopping its workers at once"
                );
            }
            if orphaned || since.elapsed() >= master.settings.graceful_shutdown_timeout {
                for pid in master.workers.keys() {
                    kill_worker(*pid);
                }
            }
            continue;
        }
        master.watch_hung_workers();
        master.grant_recycles();
        master.react_to_exhaustion();
        if Instant::now() >= master.next_maintenance {
            master.next_maintenance = Instant::now() + MAINTENANCE;
            master.maintain_spares();
            master.watch_memory();
        }
    }
}

/// Counts over this pool's workers.
#[derive(Debug, Default)]
struct Census {
    idle: usize,
    starting: usize,
    total: usize,
}

impl Master<'_> {
    fn wait_for_events(&mut self, signals: &mut SignalReader) {
        let mut fds = [PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(TICK.as_millis() as u16));
        while let Some(signal) = signals.pending() {
            match signal {
                Signal::SIGTERM | Signal::SIGINT if self.stopping.is_none() => self.begin_stop(),
                // SIGUSR2 from a worker asking to be recycled: the loop below handles it now.
                _ => {}
            }
        }
    }

    fn census(&self) -> Census {
        let mut census = Census::default();
        for worker in self.workers.values() {
            let Some(slot) = self.scoreboard.slot(worker.slot) else {
                continue;
            };
            census.total += 1;
            match slot.state() {
                State::Waiting if !slot.retire_requested() => census.idle += 1,
                State::Starting => census.starting += 1,
                _ => {}
            }
        }
        census
    }

    fn begin_stop(&mut self) {
        tracing::info!(workers = self.workers.len(), "pool master stopping its workers");
        self.stopping = Some(Instant::now());
        for (pid, worker) in &self.workers {
            if let Some(slot) = self.scoreboard.slot(worker.slot) {
                slot.request_retire();
            }
            let _ = kill(*pid, Signal::SIGTERM);
        }
    }

    /// Reaps every exited child, logging those that did not leave as asked.
    fn reap(&mut self) {
        loop {
            let (pid, crashed) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => {
                    if code != 0 {
                        tracing::warn!(
                            worker.pid = pid.as_raw(),
                            code,
                            "AH00050: child pid {pid} exit status {code}"
                        );
                    }
                    (pid, code != 0)
                }
                Ok(WaitStatus::Signaled(pid, signal, core)) => {
                    let asked = self.stopping.is_some()
                        || self.workers.get(&pid).is_some_and(|w| w.terminated.is_some());
                    if !asked {
                        let core = if core { ", possible coredump" } else { "" };
                        tracing::warn!(
                            worker.pid = pid.as_raw(),
                            signal = signal as i32,
                            "AH00052: child pid {pid} exit signal {}{core}",
                            signals::describe(signal as i32)
                        );
                    }
                    (pid, !asked)
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            if let Some(worker) = self.workers.remove(&pid) {
                if let Some(slot) = self.scoreboard.slot(worker.slot) {
                    slot.release();
                }
            }
            if crashed {
                self.scoreboard.counters().recycle(Recycle::Crash);
                self.note_crash();
            }
        }
    }

    /// Remembers a crash; past the threshold, spawning slows to one a second (PHP-FPM's
    /// emergency_restart_threshold, without restarting everything).
    fn note_crash(&mut self) {
        let now = Instant::now();
        self.crashes.push_back(now);
        while self.crashes.front().is_some_and(|t| now.duration_since(*t) > CRASH_WINDOW) {
            self.crashes.pop_front();
        }
        if self.in_crash_storm() {
            if !self.storm_logged {
                tracing::error!(
                    crashes = self.crashes.len(),
                    "{} workers crashed within {}s: crash storm; spawning slowed to one worker a second until it passes",
                    self.crashes.len(),
                    CRASH_WINDOW.as_secs()
                );
                self.storm_logged = true;
            }
        } else {
            self.storm_logged = false;
        }
    }

    fn in_crash_storm(&self) -> bool {
        self.crashes.len() > CRASH_STORM
    }

    /// Better than Apache: when no idle worker is left, react within a tick, not a second, and
    /// fork only what brings the idle count back to MinSpareServers (starting ones count).
    fn react_to_exhaustion(&mut self) {
        let census = self.census();
        if census.idle + census.starting > 0 {
            return;
        }
        if census.total >= self.settings.max_request_workers {
            // Apache's AH00161 line is written by the edge, where requests queue for the pool:
            // one place, once per interval, not twice.
            return;
        }
        let room = self.settings.max_request_workers - census.total;
        let wanted = self.settings.min_spare_servers.max(1).min(room);
        let wanted = if self.in_crash_storm() { 1 } else { wanted };
        for _ in 0..wanted {
            self.spawn_worker();
        }
    }

    /// Apache's once-a-second maintenance: retire one idle worker while over MaxSpareServers;
    /// fork 1, 2, 4 … 32 a second while under MinSpareServers.
    fn maintain_spares(&mut self) {
        let census = self.census();
        let idle = census.idle + census.starting;
        if idle > self.settings.max_spare_servers {
            self.retire_longest_idle();
            self.spawn_rate = 1;
        } else if idle < self.settings.min_spare_servers {
            let room = self.settings.max_request_workers.saturating_sub(census.total);
            let count = if self.in_crash_storm() { 1 } else { self.spawn_rate };
            let count = count.min(room).min(self.settings.min_spare_servers - idle);
            if count >= 8 {
                tracing::info!(
                    "AH00162: server seems busy, (you may need to increase StartServers, or Min/MaxSpareServers), spawning {count} children, there are {} idle, and {} total children",
                    census.idle,
                    census.total
                );
            }
            for _ in 0..count {
                self.spawn_worker();
            }
            self.spawn_rate = (self.spawn_rate * 2).min(MAX_SPAWN_RATE);
        } else {
            self.spawn_rate = 1;
        }
    }

    /// Retires the worker that has been idle the longest.
    fn retire_longest_idle(&mut self) {
        let candidate = self
            .workers
            .iter()
            .filter_map(|(pid, worker)| {
                let slot = self.scoreboard.slot(worker.slot)?;
                let view = slot.view();
                (view.state == State::Waiting && !view.retiring).then_some((
                    *pid,
                    view.last_request_us,
                    worker.forked,
                ))
            })
            .min_by_key(|(_, last, forked)| (*last, *forked));
        if let Some((pid, _, _)) = candidate {
            self.scoreboard.counters().recycle(Recycle::Spare);
            self.retire(pid);
        }
    }

    /// Asks a worker to exit after its current request (at once, if idle).
    fn retire(&self, pid: Pid) {
        if let Some(slot) = self.workers.get(&pid).and_then(|w| self.scoreboard.slot(w.slot)) {
            slot.request_retire();
            let _ = kill(pid, Signal::SIGUSR1);
        }
    }

    /// MaxConnectionsPerChild: a worker about to serve its last connection asks for a
    /// replacement; it is forked first, then the old worker may go.
    fn grant_recycles(&mut self) {
        let asking: Vec<Pid> = self
            .workers
            .iter()
            .filter(|(_, w)| self.scoreboard.slot(w.slot).is_some_and(|s| s.wants_recycle()))
            .map(|(pid, _)| *pid)
            .collect();
        if asking.is_empty() {
            return;
        }
        let in_flight = self
            .workers
            .values()
            .filter(|w| self.scoreboard.slot(w.slot).is_some_and(|s| s.recycle_granted()))
            .count();
        for pid in asking.into_iter().take(MAX_RECYCLES_IN_FLIGHT.saturating_sub(in_flight)) {
            if self.workers.len() < self.settings.max_request_workers {
                self.spawn_worker();
            }
            if let Some(slot) = self.workers.get(&pid).and_then(|w| self.scoreboard.slot(w.slot)) {
                slot.grant_recycle();
                self.scoreboard.counters().recycle(Recycle::Connections);
                let _ = kill(pid, Signal::SIGUSR1);
            }
        }
    }

    /// Kills a worker busy on one request past Timeout: SIGTERM, then SIGKILL.
    fn watch_hung_workers(&mut self) {
        let limit = self.settings.timeout + HUNG_GRACE;
        let now = now_us();
        for (pid, worker) in self.workers.iter_mut() {
            if let Some(sent) = worker.terminated {
                if sent.elapsed() >= KILL_AFTER {
                    kill_worker(*pid);
                }
                continue;
            }
            let Some(slot) = self.scoreboard.slot(worker.slot) else {
                continue;
            };
            let started = slot.request_started_us();
            if started == 0 || now.saturating_sub(started) < limit.as_micros() as u64 {
                continue;
            }
            let view = slot.view();
            tracing::error!(
                worker.pid = pid.as_raw(),
                "worker pid {pid} busy for more than Timeout ({}s) on \"{}\"; killing it",
                self.settings.timeout.as_secs(),
                view.request_line
            );
            let _ = kill(*pid, Signal::SIGTERM);
            worker.terminated = Some(Instant::now());
            self.scoreboard.counters().recycle(Recycle::Hung);
        }
    }

    /// MaxMemoryPerChild: retires a worker whose proportional set size is over the limit.
    fn watch_memory(&mut self) {
        let limit = self.settings.max_memory_per_child;
        if limit == 0 {
            return;
        }
        let mut over = Vec::new();
        for (pid, worker) in &self.workers {
            if worker.memory_retired {
                continue;
            }
            // The worker's own figure: it is not dumpable. A worker can only misreport itself,
            // and the worst a low figure does is keep its own retirement away.
            if let Some(pss) = self.scoreboard.slot(worker.slot).and_then(|slot| slot.pss()) {
                if pss > limit {
                    over.push((*pid, pss));
                }
            }
        }
        for (pid, pss) in over {
            tracing::warn!(
                worker.pid = pid.as_raw(),
                pss_kib = pss / 1024,
                "worker pid {pid} uses {} KiB (PSS), above MaxMemoryPerChild of {} KiB; retiring it after its current request",
                pss / 1024,
                limit / 1024
            );
            self.retire(pid);
            self.scoreboard.counters().recycle(Recycle::Memory);
            if let Some(worker) = self.workers.get_mut(&pid) {
                worker.memory_retired = true;
            }
        }
    }

    fn spawn_worker(&mut self) {
        if Instant::now() < self.next_fork_at || self.workers.len() >= self.settings.max_request_workers {
            return;
        }
        let Some(index) = self.scoreboard.claim_free_slot(self.settings.generation, self.settings.slot_owner)
        else {
            return;
        };
        let Some(slot) = self.scoreboard.slot(index) else {
            return;
        };
        let settings = WorkerSettings {
            max_connections: jittered(self.settings.max_connections_per_child),
            rlimits: self.settings.rlimits,
        };
        let listener = self.listener;
        let handler = &mut *self.handler;
        let (scoreboard, account) = (self.scoreboard, self.settings.account.as_ref());
        let mut keep = vec![listener, 2];
        keep.extend(self.settings.log_fds.iter().copied());
        let child = fork_child(Role::Worker, &keep, || {
            // Before any application code runs: only its own slot stays mapped, then `User`.
            let slot = match scoreboard.confine_to(index) {
                Ok(slot) => slot,
                Err(error) => {
                    tracing::error!(%error, "worker could not confine itself to its scoreboard slot");
                    std::process::exit(1);
                }
            };
            if let Err(error) = privileges::drop_to(account) {
                tracing::error!(%error, "worker could not drop privileges");
                std::process::exit(1);
            }
            worker::run(listener, handler, slot, settings)
        });
        match child {
            Ok(pid) => {
                slot.set_pid(pid.as_raw());
                self.workers.insert(
                    pid,
                    Worker { slot: index, forked: Instant::now(), terminated: None, memory_retired: false },
                );
                if self.in_crash_storm() {
                    self.next_fork_at = Instant::now() + FORK_RETRY;
                }
            }
            Err(error) => {
                slot.release();
                tracing::error!(%error, "AH00159: fork: Unable to fork new process");
                self.next_fork_at = Instant::now() + FORK_RETRY;
            }
        }
    }
}

/// Each worker's own MaxConnectionsPerChild, drawn from [N, 1.1 N] so workers started together
/// do not all recycle together.
fn jittered(limit: u64) -> u64 {
    if limit == 0 {
        return 0;
    }
    let spread = limit / 10;
    if spread == 0 {
        return limit;
    }
    let mut bytes = [0u8; 8];
    // SAFETY: getrandom writes at most `bytes.len()` bytes into the buffer we own.
    let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
    let random = if got == 8 { u64::from_ne_bytes(bytes) } else { now_us() };
    limit + random % (spread + 1)
}

/// SIGKILL for a worker, and first for the process group of each script it runs: a worker
/// killed outright cannot kill its scripts' groups itself, and what they started would run on,
/// re-parented, with nothing to read its output.
fn kill_worker(pid: Pid) {
    let ours = nix::unistd::getpgrp();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
    for child in children.split_whitespace().filter_map(|c| c.parse::<i32>().ok()) {
        // Scripts lead groups of their own; anything in ours is not a script's.
        if let Ok(group) = nix::unistd::getpgid(Some(Pid::from_raw(child))) {
            if group != ours && group.as_raw() > 1 {
                let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
            }
        }
    }
    let _ = kill(pid, Signal::SIGKILL);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..200 {
            let n = jittered(100);
            assert!((100..=110).contains(&n), "{n}");
        }
        assert_eq!(jittered(0), 0);
        assert_eq!(jittered(5), 5);
    }
}
