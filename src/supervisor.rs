//! The supervisor: holds the listening sockets, runs generations of (pool master, edge), restarts
//! a role that dies, reloads on SIGHUP without dropping a request, and stops the tree on SIGTERM
//! or SIGINT. Single-threaded; signals arrive through a `signalfd` read in its one poll loop.
//!
//! A reload starts a new generation on the same listening sockets and waits until it is ready;
//! only then is the old edge told to stop accepting and drain (its pool stays until the edge is
//! gone, since the edge's requests in flight still need it). A configuration that does not load,
//! or a new generation that does not come up, leaves the old one serving.

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
use weir_apps::Handler;
use weir_conf::Config;
use weir_prefork::fork::ForkError;
use weir_prefork::privileges::Identities;
use weir_prefork::signals::{self, SignalReader};
use weir_prefork::{fork_child, Role, Scoreboard};

use crate::notify;
use crate::reload_status;
use crate::roles;
use crate::runtime_files::PidFile;
use crate::sockets::{self, BoundListener};

/// A role lost unexpectedly is restarted after this long, doubling up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A role that stays up this long resets its backoff.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How long a new generation may take to report ready before a reload is abandoned.
const READY_DEADLINE: Duration = Duration::from_secs(30);

/// Where one forked role is in its life. A pid is held only while the process has not been
/// reaped, so a pid weir signals is always its own child: never one the kernel may have reused.
enum Phase {
    /// Not running and not to be started again: never started, stopped, or abandoned.
    Gone,
    /// Forked; ready once its readiness byte arrives on `ready` (end-of-file instead means it
    /// failed before it was ready: `ready` is then dropped and the exit is awaited).
    Starting { pid: Pid, ready: Option<OwnedFd>, since: Instant },
    /// Reported ready.
    Running { pid: Pid, since: Instant },
    /// Told to stop (SIGTERM); its generation's deadline bounds how long it may take.
    Stopping { pid: Pid },
    /// Died unexpectedly; to be forked again at `at`.
    WaitingToRestart { at: Instant },
}

/// One role of a generation.
struct Child {
    role: Role,
    phase: Phase,
    /// The wait before the next restart after an unexpected exit.
    backoff: Duration,
    /// A pool master's tag in the scoreboard slots it claims (0 for an edge): each pool master
    /// forked gets a new one, so the slots of one that died can be told apart and freed.
    slot_owner: u32,
}

impl Child {
    fn new(role: Role) -> Self {
        Child { role, phase: Phase::Gone, backoff: FIRST_BACKOFF, slot_owner: 0 }
    }

    /// The process, while it exists (not yet reaped).
    fn pid(&self) -> Option<Pid> {
        match self.phase {
            Phase::Starting { pid, .. } | Phase::Running { pid, .. } | Phase::Stopping { pid, .. } => {
                Some(pid)
            }
            Phase::Gone | Phase::WaitingToRestart { .. } => None,
        }
    }

    fn is_ready(&self) -> bool {
        matches!(self.phase, Phase::Running { .. })
    }

    /// Sends SIGTERM once, moving a live role to Stopping.
    fn stop(&mut self) {
        match self.phase {
            Phase::Starting { pid, .. } | Phase::Running { pid, .. } => {
                let _ = kill(pid, Signal::SIGTERM);
                self.phase = Phase::Stopping { pid };
            }
            Phase::WaitingToRestart { .. } => self.phase = Phase::Gone,
            Phase::Stopping { .. } | Phase::Gone => {}
        }
    }

    /// SIGKILL for a role that has not been reaped yet.
    fn kill_now(&self) {
        if let Some(pid) = self.pid() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// A pool master and an edge started from one configuration.
struct Generation {
    number: u32,
    config: Arc<Config>,
    listeners: Vec<BoundListener>,
    pool_listener: UnixListener,
    pool_socket: PathBuf,
    pool: Child,
    edge: Child,
    /// Set once the generation is told to stop: everything left is killed at this time.
    stop_deadline: Option<Instant>,
}

impl Generation {
    fn children(&mut self) -> [&mut Child; 2] {
        [&mut self.pool, &mut self.edge]
    }

    fn child(&mut self, role: Role) -> &mut Child {
        match role {
            Role::PoolMaster => &mut self.pool,
            _ => &mut self.edge,
        }
    }

    fn is_gone(&self) -> bool {
        self.pool.pid().is_none() && self.edge.pid().is_none()
    }
}

/// What the supervisor owns while it runs.
pub struct Supervisor {
    /// The file to re-read on reload; `None` for the built-in default.
    pub config_path: Option<PathBuf>,
    pub config: Arc<Config>,
    /// Application handlers, moved into each pool master this supervisor forks.
    pub handlers: Vec<(String, Box<dyn Handler>)>,
    /// Their paths, which the edge routes to the pool.
    pub handler_paths: Vec<String>,
    /// The roles' accounts when started as root.
    pub identities: Option<Identities>,
    pub listeners: Vec<BoundListener>,
    pub pool_listener: UnixListener,
    pub pool_socket: PathBuf,
    /// Shared with every process forked from here: workers write it, masters and edges read it.
    pub scoreboard: Scoreboard,
    /// Held (locked) for the supervisor's life.
    pub pid_file: PidFile,
}

/// The running state.
struct Running {
    handlers: Vec<(String, Box<dyn Handler>)>,
    handler_paths: Vec<String>,
    identities: Option<Identities>,
    config_path: Option<PathBuf>,
    scoreboard: Scoreboard,
    current: Generation,
    draining: Vec<Generation>,
    /// A stop that arrived while a reload was waiting for its new generation.
    stop_requested: bool,
    /// A SIGHUP that arrived during a reload: another reload follows.
    reload_again: bool,
    /// A new generation is starting: a role of it that dies is not restarted, the reload is
    /// abandoned instead (and the log says so).
    starting_generation: bool,
    /// Whether the first generation has been announced ready. Until then a role that fails
    /// means weir could not start: the tree is stopped and `weir run` exits 1.
    announced: bool,
    /// Why the first start failed, once it has.
    start_failure: Option<String>,
    /// The tag the next pool master forked gets (see [`Child::slot_owner`]).
    next_slot_owner: u32,
    /// Tags of pool masters that have died: their workers, re-parented here, still hold slots
    /// that are freed as each is reaped.
    dead_slot_owners: Vec<u32>,
    /// Reloads attempted so far, for the status file `weir reload` reads.
    reload_attempts: u64,
}

impl Supervisor {
    /// Runs the tree until it is told to stop. Returns the process exit code.
    pub fn run(self, signals: &mut SignalReader) -> i32 {
        let _pid_file = self.pid_file;
        // Orphaned workers (a pool master that died) are re-parented here, reaped and stopped.
        // SAFETY: PR_SET_CHILD_SUBREAPER takes an integer flag and no pointers.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let mut running = Running {
            handlers: self.handlers,
            handler_paths: self.handler_paths,
            identities: self.identities,
            config_path: self.config_path,
            scoreboard: self.scoreboard,
            current: Generation {
                number: 1,
                config: self.config,
                listeners: self.listeners,
                pool_listener: self.pool_listener,
                pool_socket: self.pool_socket,
                pool: Child::new(Role::PoolMaster),
                edge: Child::new(Role::Edge),
                stop_deadline: None,
            },
            draining: Vec::new(),
            stop_requested: false,
            reload_again: false,
            starting_generation: false,
            announced: false,
            start_failure: None,
            next_slot_owner: 1,
            dead_slot_owners: Vec::new(),
            reload_attempts: 0,
        };
        if let Err(error) = running.start_generation_roles() {
            tracing::error!("{error}");
            running.stop_all();
            return 1;
        }
        loop {
            running.wait_for_events(signals);
            let mut stop = false;
            let mut reload = false;
            while let Some(signal) = signals.pending() {
                match signal {
                    Signal::SIGTERM | Signal::SIGINT => stop = true,
                    Signal::SIGHUP => reload = true,
                    _ => {}
                }
            }
            if stop || running.stop_requested {
                tracing::info!("AH00169: caught SIGTERM, shutting down");
                notify::send("STOPPING=1");
                running.stop_all();
                return 0;
            }
            running.reap();
            if let Some(reason) = running.start_failure.take() {
                // As Apache with a bad key: nothing was announced, nothing serves; say why and
                // exit, rather than restart a role that cannot start and look alive meanwhile.
                tracing::error!("weir could not start: {reason}");
                running.stop_all();
                return 1;
            }
            running.restart_lost_roles();
            running.retire_drained();
            kill_orphaned_scripts();
            if !running.announced && running.current.pool.is_ready() && running.current.edge.is_ready() {
                running.announced = true;
                running.announce();
                running.write_reload_status(&reload_status::Outcome::Started);
                notify::send("READY=1");
            }
            if reload || std::mem::take(&mut running.reload_again) {
                running.reload(signals);
                if running.stop_requested {
                    tracing::info!("AH00169: caught SIGTERM, shutting down");
                    notify::send("STOPPING=1");
                    running.stop_all();
                    return 0;
                }
            }
        }
    }
}

impl Running {
    fn start_generation_roles(&mut self) -> Result<(), ForkError> {
        // The pool master first: it must be forked before the edge reads any private key.
        self.start(Role::PoolMaster)?;
        self.start(Role::Edge)
    }

    /// Forks one role of the current generation.
    fn start(&mut self, role: Role) -> Result<(), ForkError> {
        let (ready_read, ready_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .map_err(|source| ForkError::Fork { role, source })?;
        let generation = &self.current;
        let slot_owner = self.next_slot_owner;
        let pid = match role {
            Role::PoolMaster => {
                self.next_slot_owner = self.next_slot_owner.wrapping_add(1).max(1);
                let mut keep = vec![generation.pool_listener.as_raw_fd(), ready_write.as_raw_fd()];
                keep.extend(crate::site_logs::descriptors());
                let handlers = &mut self.handlers;
                let workers = self.identities.as_ref().map(|ids| ids.workers.clone());
                let (config, scoreboard, number) = (&generation.config, self.scoreboard, generation.number);
                let pool_listener = &generation.pool_listener;
                fork_child(Role::PoolMaster, &keep, || {
                    // This runs in the child, on its own copy of the supervisor's memory: taking
                    // the handlers leaves the supervisor's for the next pool master it forks.
                    let handlers = std::mem::take(handlers);
                    roles::pool_master(
                        config,
                        scoreboard,
                        (number, slot_owner),
                        pool_listener,
                        workers,
                        ready_write,
                        handlers,
                    )
                })?
            }
            _ => {
                let mut keep = roles::edge_fds(&generation.listeners, &ready_write);
                keep.extend(crate::site_logs::descriptors());
                let identities = self.identities.clone();
                fork_child(Role::Edge, &keep, || {
                    roles::edge(
                        generation.config.clone(),
                        &generation.listeners,
                        generation.pool_socket.clone(),
                        self.handler_paths.clone(),
                        self.scoreboard,
                        identities,
                        ready_write,
                    )
                })?
            }
        };
        let child = self.current.child(role);
        child.phase = Phase::Starting { pid, ready: Some(ready_read), since: Instant::now() };
        if role == Role::PoolMaster {
            child.slot_owner = slot_owner;
        }
        Ok(())
    }

    /// Waits for a signal, a readiness byte, or the next tick.
    fn wait_for_events(&mut self, signals: &SignalReader) {
        let mut fds = vec![PollFd::new(signals.as_fd(), PollFlags::POLLIN)];
        for child in [&self.current.pool, &self.current.edge] {
            if let Phase::Starting { ready: Some(ready), .. } = &child.phase {
                fds.push(PollFd::new(ready.as_fd(), PollFlags::POLLIN));
            }
        }
        let _ = poll(&mut fds, PollTimeout::from(250u16));
        let fired: Vec<bool> = fds[1..].iter().map(|fd| fd.any().unwrap_or(false)).collect();
        drop(fds);
        let mut index = 0;
        for child in self.current.children() {
            let Phase::Starting { pid, ready: ready @ Some(_), .. } = &mut child.phase else {
                continue;
            };
            let pid = *pid;
            if fired[index] {
                let mut byte = [0u8; 1];
                let got = ready.take().map(|fd| std::fs::File::from(fd).read(&mut byte));
                // Ready only on the byte itself: end-of-file means the role exited (or closed its
                // end) before it was ready, and its exit is reaped below.
                if matches!(got, Some(Ok(1))) {
                    child.phase = Phase::Running { pid, since: Instant::now() };
                }
            }
            index += 1;
        }
    }

    /// Reaps exited children: a role of a draining generation is gone; a role of the current
    /// one that was not asked to stop is scheduled for a restart with backoff.
    fn reap(&mut self) {
        loop {
            let (pid, how) = match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (pid, format!("exit status {code}")),
                Ok(WaitStatus::Signaled(pid, signal, _)) => {
                    (pid, format!("exit signal {}", signals::describe(signal as i32)))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            };
            self.reaped(pid, &how);
        }
    }

    /// Records that `pid` exited (`how`), whichever generation it belonged to.
    fn reaped(&mut self, pid: Pid, how: &str) {
        let old = self.draining.iter_mut().find_map(|g| {
            let number = g.number;
            g.children().into_iter().find(|c| c.pid() == Some(pid)).map(|c| (number, c))
        });
        if let Some((number, child)) = old {
            // A clean exit is the drain finishing; anything else (a crash, a kill from outside,
            // the deadline's SIGKILL) is said, or a draining role could vanish without a word.
            if how != "exit status 0" {
                tracing::warn!(
                    role = child.role.title(),
                    pid = pid.as_raw(),
                    "{} (pid {pid}) of old generation {number} {how}",
                    child.role.title()
                );
            }
            child.phase = Phase::Gone;
            let (role, owner) = (child.role, child.slot_owner);
            if role == Role::PoolMaster {
                self.reclaim_slots(owner);
            }
            return;
        }
        let Some(child) = self.current.children().into_iter().find(|c| c.pid() == Some(pid)) else {
            // A worker orphaned by a lost pool master, re-parented to us (we are the tree's
            // subreaper): its slot is freed here, since its master is gone.
            let dead = &self.dead_slot_owners;
            self.scoreboard.release_orphan(pid.as_raw(), |owner| dead.contains(&owner));
            tracing::warn!("AH00165: long lost child came home! (pid {pid})");
            return;
        };
        if child.role == Role::PoolMaster {
            let owner = child.slot_owner;
            self.reclaim_slots(owner);
        }
        let Some(child) = self.current.children().into_iter().find(|c| c.pid() == Some(pid)) else {
            return;
        };
        let now = Instant::now();
        match child.phase {
            Phase::Stopping { .. } => child.phase = Phase::Gone,
            Phase::Running { since, .. } | Phase::Starting { since, .. } => {
                if now.duration_since(since) > STABLE_AFTER {
                    child.backoff = FIRST_BACKOFF;
                }
                let failed_at_start = matches!(child.phase, Phase::Starting { .. });
                let then = if self.starting_generation {
                    "the reload is abandoned".to_string()
                } else if !self.announced {
                    "weir cannot start".to_string()
                } else {
                    format!("restarting it in {:?}", child.backoff)
                };
                tracing::error!(
                    role = child.role.title(),
                    pid = pid.as_raw(),
                    "{} (pid {pid}) {how}{}; {then}",
                    child.role.title(),
                    if failed_at_start { " before it was ready" } else { "" },
                );
                child.phase = Phase::WaitingToRestart { at: now + child.backoff };
                child.backoff = (child.backoff * 2).min(MAX_BACKOFF);
                if !self.announced && !self.starting_generation {
                    self.start_failure = Some(format!(
                        "{} (pid {pid}) {how} before weir was ready (see the lines above)",
                        child.role.title()
                    ));
                }
            }
            Phase::Gone | Phase::WaitingToRestart { .. } => {}
        }
    }

    /// A pool master (tagged `owner`) has been reaped: frees the slots its workers held, now or
    /// as each of them, re-parented here, is reaped.
    fn reclaim_slots(&mut self, owner: u32) {
        // A stale slot's pid may since have been given to one of our roles: that is no worker,
        // and must not be waited for here (its exit belongs to `reaped`).
        let roles: Vec<Pid> = self
            .draining
            .iter_mut()
            .chain(std::iter::once(&mut self.current))
            .flat_map(|g| g.children().map(|c| c.pid()))
            .flatten()
            .collect();
        let alive = self.scoreboard.reclaim_owner(owner, |pid| {
            let pid = Pid::from_raw(pid);
            // Every child of the dead master is ours by now (re-parented before it could be
            // reaped): a pid that is not our child has been reaped already, by the master.
            roles.contains(&pid)
                || !matches!(waitpid(pid, Some(WaitPidFlag::WNOHANG)), Ok(WaitStatus::StillAlive))
        });
        if !alive.is_empty() && !self.dead_slot_owners.contains(&owner) {
            self.dead_slot_owners.push(owner);
        }
        // A tag no slot carries any more need not be remembered.
        let scoreboard = self.scoreboard;
        self.dead_slot_owners
            .retain(|tag| scoreboard.slots().any(|slot| slot.owner() == *tag && slot.pid() > 0));
    }

    /// Forks again each role of the current generation whose restart time has come, and stops
    /// one that has been starting for too long (it is then restarted like a lost one).
    fn restart_lost_roles(&mut self) {
        let now = Instant::now();
        for role in [Role::PoolMaster, Role::Edge] {
            let child = self.current.child(role);
            match child.phase {
                Phase::WaitingToRestart { at } if now >= at => {
                    if let Err(error) = self.start(role) {
                        tracing::error!("{error}");
                        let child = self.current.child(role);
                        child.phase = Phase::WaitingToRestart { at: now + child.backoff };
                    }
                }
                Phase::Starting { pid, since, .. } if now.duration_since(since) > READY_DEADLINE => {
                    tracing::error!(
                        pid = pid.as_raw(),
                        "{} (pid {pid}) did not report ready within {}s; killing it",
                        child.role.title(),
                        READY_DEADLINE.as_secs()
                    );
                    // Reaped as a role that failed before it was ready, and restarted.
                    let _ = kill(pid, Signal::SIGKILL);
                }
                _ => {}
            }
        }
    }

    /// Drives draining generations: the edge first; its pool once the edge is gone; SIGKILL at
    /// the deadline; the generation's pool socket removed when all of it is gone.
    fn retire_drained(&mut self) {
        let now = Instant::now();
        for generation in &mut self.draining {
            if generation.edge.pid().is_none() {
                generation.pool.stop();
            }
            if generation.stop_deadline.is_some_and(|d| now >= d) {
                for child in generation.children() {
                    if let Some(pid) = child.pid() {
                        tracing::warn!(
                            pid = pid.as_raw(),
                            "{} of an old generation outlived GracefulShutdownTimeout; killing it",
                            child.role.title()
                        );
                        child.kill_now();
                    }
                }
            }
        }
        let (gone, still): (Vec<Generation>, Vec<Generation>) =
            self.draining.drain(..).partition(|g| g.is_gone());
        self.draining = still;
        for generation in gone {
            if generation.pool_socket != self.current.pool_socket {
                let _ = std::fs::remove_file(&generation.pool_socket);
            }
            tracing::info!(generation = generation.number, "old generation has exited");
        }
    }

    /// Logs the ready line and writes the address file tests and tools wait for.
    fn announce(&self) {
        for listener in &self.current.listeners {
            tracing::info!(address = %listener.local, "listening on {}://{}", listener.scheme_name(), listener.local);
        }
        if let Err(error) =
            sockets::write_address_file(&self.current.config.runtime_dir, &self.current.listeners)
        {
            tracing::error!(%error, "could not write the address file in RuntimeDir");
        }
        let config = &self.current.config;
        let pool = &config.pool;
        tracing::info!(
            "configuration {}: StartServers {}, MinSpareServers {}, MaxSpareServers {}, MaxRequestWorkers {}, Timeout {}s, LimitRequestBody {}",
            config.source_name(),
            pool.start_servers,
            pool.min_spare_servers,
            pool.max_spare_servers,
            pool.max_request_workers,
            config.timeout.as_secs(),
            config.limit_request_body
        );
        if let Some((subject, expiry)) =
            config.tls.cert_file.as_deref().and_then(weir_edge::tls::certificate_summary)
        {
            tracing::info!("certificate {subject}, valid until {expiry}");
        }
        tracing::info!(
            "AH00163: weir/{} (Unix) configured -- resuming normal operations",
            env!("CARGO_PKG_VERSION")
        );
    }

    /// SIGHUP: a new generation from the re-read configuration, then the old one drains.
    fn reload(&mut self, signals: &mut SignalReader) {
        tracing::info!("AH00171: Graceful restart requested, doing restart");
        notify::reloading();
        self.reload_attempts += 1;
        self.write_reload_status(&reload_status::Outcome::Running);
        match self.try_reload(signals) {
            Ok(()) => {
                self.announce();
                self.write_reload_status(&reload_status::Outcome::Reloaded);
            }
            Err(reason) => {
                tracing::error!(
                    "reload failed; generation {} stays in service: {reason}",
                    self.current.number
                );
                self.write_reload_status(&reload_status::Outcome::Failed(&reason));
            }
        }
        notify::send("READY=1");
    }

    /// Tells `weir reload` (and anyone looking) what the last attempt came to.
    fn write_reload_status(&self, outcome: &reload_status::Outcome<'_>) {
        let dir = &self.current.config.runtime_dir;
        if let Err(error) = reload_status::write(dir, self.reload_attempts, self.current.number, outcome) {
            tracing::error!(%error, "could not write {}", reload_status::path(dir).display());
        }
    }

    fn try_reload(&mut self, signals: &mut SignalReader) -> Result<(), String> {
        let config = crate::load_config(self.config_path.as_deref()).map_err(|errors| errors.to_string())?;
        let fixed = crate::reload_rules::fixed_at_start(&self.current.config, &config);
        if !fixed.is_empty() {
            return Err(fixed.join("; "));
        }
        // What configtest checks, but the key pair: the supervisor never reads a private key
        // (its next pool master would inherit it). A key that does not fit stops the new edge
        // before it is ready, which fails the reload just the same.
        crate::checks::files_readable(&config).map_err(|problems| problems.join("; "))?;
        let identities = self.identities.as_ref();
        crate::checks::runtime_paths(&config, identities).map_err(|problems| problems.join("; "))?;
        for warning in &config.warnings {
            tracing::warn!("{warning}");
        }
        let listeners =
            sockets::rebind(&config.listeners, &self.current.listeners).map_err(|e| e.to_string())?;
        let number = self.current.number + 1;
        self.scoreboard.counters().generation.store(number, std::sync::atomic::Ordering::Relaxed);
        let untrusted = crate::runtime_files::Untrusted::of(self.identities.as_ref());
        crate::runtime_files::prepare_runtime_dir(&config.runtime_dir, untrusted)
            .map_err(|e| e.to_string())?;
        let (pool_listener, pool_socket) = sockets::pool_listener(
            &config.runtime_dir,
            &format!("pool-{number}.sock"),
            self.identities.as_ref().map(|ids| &ids.edge),
        )
        .map_err(|e| e.to_string())?;
        let mut config = config;
        let slots = self.scoreboard.len();
        if config.pool.max_request_workers > slots {
            config.pool.max_request_workers = slots;
        }
        let fresh = Generation {
            number,
            config: Arc::new(config),
            listeners,
            pool_listener,
            pool_socket,
            pool: Child::new(Role::PoolMaster),
            edge: Child::new(Role::Edge),
            stop_deadline: None,
        };
        // The new generation's roles inherit standard error, so the ErrorLog is reopened before
        // they are forked (which lets logrotate's moved file go), and put back if they never
        // become ready: the generation that keeps serving keeps logging where it did.
        let previous_stderr = match &fresh.config.error_log {
            Some(path) => Some(
                crate::errorlog::redirect_stderr_keeping(path)
                    .map_err(|e| format!("ErrorLog {}: {e}", path.display()))?,
            ),
            None => None,
        };
        // Each site's own ErrorLog likewise.
        let previous_site_logs = match crate::site_logs::open(&fresh.config) {
            Ok(previous) => previous,
            Err(message) => {
                if let Some(previous) = previous_stderr {
                    previous.restore();
                }
                return Err(message);
            }
        };
        // The old generation waits among the draining ones (not yet told to stop, so nothing
        // drives it there), so that a role of it that exits meanwhile is reaped as its own and
        // its pid never signalled again.
        let old = std::mem::replace(&mut self.current, fresh);
        let old_number = old.number;
        self.draining.push(old);
        self.starting_generation = true;
        let started =
            self.start_generation_roles().map_err(|e| e.to_string()).and_then(|()| self.wait_ready(signals));
        self.starting_generation = false;
        if started.is_err() {
            if let Some(previous) = previous_stderr {
                previous.restore();
            }
            previous_site_logs.restore();
        }
        let Some(at) = self.draining.iter().position(|g| g.number == old_number) else {
            return Err("the running generation was lost during the reload".to_string());
        };
        let mut old = self.draining.remove(at);
        if let Err(error) = started {
            // Back out: the new generation goes, the old one never stopped serving. A role of it
            // that exited meanwhile is restarted like any lost role.
            let now = Instant::now();
            for child in old.children() {
                if matches!(child.phase, Phase::Gone) {
                    tracing::error!("{} exited during the reload; restarting it", child.role.title());
                    child.phase = Phase::WaitingToRestart { at: now };
                }
            }
            let failed = std::mem::replace(&mut self.current, old);
            self.abandon(failed);
            return Err(error);
        }
        old.stop_deadline = Some(Instant::now() + old.config.graceful_shutdown_timeout);
        // The edge first: it stops accepting and drains, still using its pool, which
        // `retire_drained` stops once the edge is gone. A role of the old generation waiting
        // for a restart is simply not restarted.
        old.edge.stop();
        if matches!(old.pool.phase, Phase::WaitingToRestart { .. }) {
            old.pool.phase = Phase::Gone;
        }
        self.draining.push(old);
        Ok(())
    }

    /// Waits until both roles of the new generation report ready, or one dies first.
    fn wait_ready(&mut self, signals: &mut SignalReader) -> Result<(), String> {
        let deadline = Instant::now() + READY_DEADLINE;
        while !(self.current.pool.is_ready() && self.current.edge.is_ready()) {
            if Instant::now() >= deadline {
                return Err("the new generation did not become ready in time".to_string());
            }
            self.wait_for_events(signals);
            while let Some(signal) = signals.pending() {
                // A stop wins over a reload in progress; another SIGHUP means the file may have
                // changed again since it was read, so one more reload follows this one.
                match signal {
                    Signal::SIGTERM | Signal::SIGINT => {
                        self.stop_requested = true;
                        return Err("a stop was requested while the new generation was starting".to_string());
                    }
                    Signal::SIGHUP => self.reload_again = true,
                    _ => {}
                }
            }
            // Reaps the old generations too, so none of their pids is left to signal later.
            self.reap();
            let lost = |child: &Child| matches!(child.phase, Phase::WaitingToRestart { .. } | Phase::Gone);
            if lost(&self.current.pool) || lost(&self.current.edge) {
                return Err(
                    "a role of the new generation exited while starting (see the lines above)".to_string()
                );
            }
        }
        Ok(())
    }

    /// Stops a generation that never took over.
    fn abandon(&mut self, mut failed: Generation) {
        for child in failed.children() {
            if let Some(pid) = child.pid() {
                let _ = kill(pid, Signal::SIGKILL);
                let _ = waitpid(pid, None);
            }
            child.phase = Phase::Gone;
        }
        self.reclaim_slots(failed.pool.slot_owner);
        let _ = std::fs::remove_file(&failed.pool_socket);
    }

    /// Graceful stop: every edge first (they stop accepting and drain, still using their pools),
    /// then the pools; anything left at GracefulShutdownTimeout is killed.
    fn stop_all(&mut self) {
        let deadline = Instant::now() + self.current.config.graceful_shutdown_timeout;
        for role in [Role::Edge, Role::PoolMaster] {
            for generation in self.draining.iter_mut().chain(std::iter::once(&mut self.current)) {
                generation.child(role).stop();
            }
            while self.any_alive(role) && Instant::now() < deadline {
                self.reap();
                std::thread::sleep(Duration::from_millis(10));
            }
            for generation in self.draining.iter_mut().chain(std::iter::once(&mut self.current)) {
                let child = generation.child(role);
                if let Some(pid) = child.pid() {
                    tracing::warn!(pid = pid.as_raw(), "{} did not stop in time; killing it", role.title());
                    let _ = kill(pid, Signal::SIGKILL);
                    let _ = waitpid(pid, None);
                    child.phase = Phase::Gone;
                }
            }
        }
        kill_orphans(deadline);
        let config = &self.current.config;
        let _ = std::fs::remove_file(config.runtime_dir.join("listen"));
        let _ = std::fs::remove_file(reload_status::path(&config.runtime_dir));
        for generation in self.draining.iter().chain(std::iter::once(&self.current)) {
            let _ = std::fs::remove_file(&generation.pool_socket);
        }
        let _ = std::fs::remove_file(&config.pid_file);
        tracing::info!("weir stopped");
    }

    /// Whether a process of `role`, in any generation, has not been reaped yet.
    fn any_alive(&mut self, role: Role) -> bool {
        self.draining
            .iter_mut()
            .chain(std::iter::once(&mut self.current))
            .any(|g| g.child(role).pid().is_some())
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
            let signal = if late { Signal::SIGKILL } else { Signal::SIGTERM };
            for pid in children {
                let _ = kill(pid, signal);
            }
            asked = true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Kills the process group of every script that outlived its worker. Scripts run in process
/// groups of their own; when their worker dies (SIGKILL, a hung-worker kill), what they started
/// is re-parented here (the subreaper) and would run on with nothing to read its output. Roles
/// and workers share the supervisor's group, so a child in another group is such a leftover.
fn kill_orphaned_scripts() {
    let ours = nix::unistd::getpgrp();
    for pid in child_pids() {
        let Ok(group) = nix::unistd::getpgid(Some(pid)) else {
            continue;
        };
        if group == ours || group.as_raw() <= 1 {
            continue;
        }
        tracing::warn!(
            pid = pid.as_raw(),
            "process {pid} (group {group}) outlived the worker that ran its script; killing its group"
        );
        let _ = nix::sys::signal::killpg(group, Signal::SIGKILL);
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
