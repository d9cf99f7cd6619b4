//! A worker: blocks in `accept()` on the pool's Unix listener and serves one connection at a time
//! (one request after another while the edge keeps it), keeping its scoreboard slot up to date.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::socket::SockFlag;
use weir_conf::{RLimit, RLimitValue, RLimits};
use weir_wire as wire;

use weir_scoreboard::{Slot, State};

/// What runs a connection inside a worker. The object is built once in the supervisor and copied
/// into every worker by `fork`, so each worker has its own, never shared with another process.
pub trait ConnectionHandler {
    /// Called once in each new worker, before its first connection (open a C library here).
    fn worker_init(&mut self) {}
    /// Reads one request from the edge and answers it, recording it in `slot`
    /// ([`Slot::begin_request`], [`Slot::end_request`]). `keep_alive`: whether the response may
    /// offer the edge another request on this connection (`Connection: keep-alive`); it must
    /// say `close` otherwise.
    fn serve(&mut self, stream: &UnixStream, slot: &Slot, keep_alive: bool) -> AfterRequest;
    /// Called once when the worker leaves its loop normally.
    fn worker_exit(&mut self) {}
}

/// What a worker does after a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterRequest {
    /// Wait for another request on the same connection: the response was whole and offered it.
    KeepAlive,
    /// Close the connection and go back to `accept()`.
    Close,
    /// Exit and let the master fork a fresh worker (the handler's state may be damaged, for
    /// example after a panic).
    Retire,
}

/// A worker's own limits.
#[derive(Debug, Clone, Copy)]
pub struct WorkerSettings {
    /// This worker's MaxConnectionsPerChild (already jittered); 0: no limit.
    pub max_connections: u64,
    /// RLimitCPU (per request), RLimitMEM and RLimitNPROC.
    pub rlimits: RLimits,
}

/// Set by SIGTERM or SIGUSR1: finish the connection in hand, then exit.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// How long a worker that has served its last connection waits for the master to fork its
/// replacement before leaving anyway.
const RECYCLE_WAIT: Duration = Duration::from_secs(2);

/// The worker's entry point: serves connections until told to stop, retired by the master, or
/// recycled after its MaxConnectionsPerChild, then exits.
pub fn run(
    listener: RawFd,
    handler: &mut dyn ConnectionHandler,
    slot: &'static Slot,
    settings: WorkerSettings,
) -> ! {
    slot.set_pid(std::process::id() as i32);
    detach_standard_streams();
    install_signal_handling();
    apply_static_rlimits(&settings.rlimits);
    handler.worker_init();
    let mut memory = MemoryReport::new(slot);
    let limit = settings.max_connections;
    let mut served = 0u64;
    set_accept_timeout(listener, IDLE_AFTER);
    // Whether memory has been used since it was last given back.
    let mut used_memory = false;
    let mut state_on_exit = State::IdleCleanup;
    loop {
        if stopping(slot) {
            break;
        }
        slot.set_state(State::Waiting);
        // nix's accept4 does not retry on EINTR (std's accept does), so a signal wakes an idle
        // worker at once; a connection already accepted is still served.
        let fd = match nix::sys::socket::accept4(listener, SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => fd,
            Err(nix::Error::EINTR | nix::Error::ECONNABORTED) => continue,
            Err(nix::Error::EAGAIN) => {
                // IDLE_AFTER without a connection: an idle worker gives back what its last
                // requests grew (a CGI request leaves ~70 KiB of free heap behind), so that a
                // pool at rest costs what a fresh one does.
                if std::mem::take(&mut used_memory) {
                    release_idle_memory();
                    memory.publish();
                }
                continue;
            }
            Err(error) => {
                tracing::error!(%error, "worker could not accept on the pool socket");
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        slot.set_state(State::Reading);
        // SAFETY: accept4 returned a new descriptor that nothing else owns.
        let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
        let end = serve_connection(&stream, handler, slot, &settings, &mut served, &mut memory);
        drop(stream);
        match end {
            ConnectionEnd::Retire => break,
            ConnectionEnd::Closed => used_memory = true,
            ConnectionEnd::Idle => {
                // Waited WORKER_KEEPALIVE for a request that did not come: as idle as accept().
                release_idle_memory();
                memory.publish();
                used_memory = false;
            }
        }
        if limit > 0 && served >= limit {
            wait_for_recycle(slot);
            break;
        }
        if stopping(slot) {
            state_on_exit = State::Graceful;
            break;
        }
    }
    slot.set_state(state_on_exit);
    handler.worker_exit();
    std::process::exit(0)
}

/// How a connection from the edge ended.
enum ConnectionEnd {
    /// The handler asked to retire this worker.
    Retire,
    /// Closed after a request, or by the edge.
    Closed,
    /// No request came within WORKER_KEEPALIVE.
    Idle,
}

/// Serves requests on one connection until either end closes it. Each request counts toward
/// MaxConnectionsPerChild as a connection did when every request had its own: the limit
/// bounds what a worker serves, whatever the edge does with its connections.
fn serve_connection(
    stream: &UnixStream,
    handler: &mut dyn ConnectionHandler,
    slot: &Slot,
    settings: &WorkerSettings,
    served: &mut u64,
    memory: &mut MemoryReport,
) -> ConnectionEnd {
    let limit = settings.max_connections;
    loop {
        *served += 1;
        if limit > 0 && *served == limit {
            // Ask for the replacement before this last request, so it is ready (or nearly)
            // when this worker stops accepting.
            slot.ask_recycle();
            let _ = nix::sys::signal::kill(nix::unistd::getppid(), Signal::SIGUSR2);
        }
        apply_cpu_limit(&settings.rlimits);
        let last = limit > 0 && *served >= limit;
        let after = handler.serve(stream, slot, !last && !stopping(slot));
        memory.publish_if_due();
        match after {
            AfterRequest::Retire => return ConnectionEnd::Retire,
            AfterRequest::Close => return ConnectionEnd::Closed,
            AfterRequest::KeepAlive if last || stopping(slot) => return ConnectionEnd::Closed,
            AfterRequest::KeepAlive => {}
        }
        slot.set_state(State::KeepAlive);
        match wait_for_request(stream, wire::WORKER_KEEPALIVE) {
            NextRequest::Arrived => slot.set_state(State::Reading),
            NextRequest::Closed => return ConnectionEnd::Closed,
            NextRequest::Idle => return ConnectionEnd::Idle,
        }
    }
}

/// Told to stop (SIGTERM, SIGUSR1) or retired by the master.
fn stopping(slot: &Slot) -> bool {
    STOP.load(Ordering::SeqCst) || slot.retire_requested()
}

enum NextRequest {
    Arrived,
    /// The edge closed the connection, or this worker was told to stop while waiting.
    Closed,
    Idle,
}

/// Waits for the edge's next request on a kept connection. A signal (no SA_RESTART) ends the
/// wait at once, so a worker told to stop does not sit out the timeout.
fn wait_for_request(stream: &UnixStream, idle: Duration) -> NextRequest {
    use std::os::fd::AsFd;
    let mut fds = [PollFd::new(stream.as_fd(), PollFlags::POLLIN)];
    match poll(&mut fds, PollTimeout::try_from(idle).unwrap_or(PollTimeout::MAX)) {
        Ok(0) => NextRequest::Idle,
        Ok(_) => {
            let events = fds[0].revents().unwrap_or(PollFlags::empty());
            if events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR | PollFlags::POLLNVAL) {
                NextRequest::Closed
            } else {
                NextRequest::Arrived
            }
        }
        // EINTR: STOP or a retirement; either way this connection ends here.
        Err(_) => NextRequest::Closed,
    }
}

/// A worker's memory figures, published in its own slot: it is not dumpable, so neither the
/// pool master (MaxMemoryPerChild) nor the edge (server-status) may read its /proc files.
/// Read at start, when idle, and after a request at most once a second (reading smaps_rollup
/// costs tens of microseconds, too much for every request).
struct MemoryReport {
    slot: &'static Slot,
    last: Instant,
}

/// The longest a busy worker's published figures may lag.
const MEMORY_REPORT_EVERY: Duration = Duration::from_secs(1);

impl MemoryReport {
    fn new(slot: &'static Slot) -> MemoryReport {
        let mut report = MemoryReport { slot, last: Instant::now() };
        report.publish();
        report
    }

    fn publish(&mut self) {
        self.last = Instant::now();
        if let (Some(rss), Some(pss)) = weir_scoreboard::memory::own_rss_pss() {
            self.slot.publish_memory(rss, pss);
        }
    }

    fn publish_if_due(&mut self) {
        if self.last.elapsed() >= MEMORY_REPORT_EVERY {
            self.publish();
        }
    }
}

/// Standard input and output become /dev/null: a worker reads and writes only its connection,
/// and nothing of the supervisor's terminal or pipes is left for the code it runs. Standard
/// error stays: it is the error log.
fn detach_standard_streams() {
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        for fd in [0, 1] {
            // SAFETY: dup2 onto the standard descriptors, which this process owns.
            unsafe { libc::dup2(null.as_raw_fd(), fd) };
        }
    }
}

/// How long `accept()` waits before an idle worker gives memory back (and waits again).
const IDLE_AFTER: Duration = Duration::from_secs(1);

/// Makes `accept()` on the pool socket return EAGAIN after `after` without a connection. The
/// option belongs to the socket every worker shares; each sets the same value.
fn set_accept_timeout(listener: RawFd, after: Duration) {
    let timeout = libc::timeval { tv_sec: after.as_secs() as libc::time_t, tv_usec: 0 };
    // SAFETY: a valid timeval of the size given, for a descriptor this process holds.
    let rc = unsafe {
        libc::setsockopt(
            listener,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            std::ptr::addr_of!(timeout).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        tracing::debug!(error = %std::io::Error::last_os_error(), "no accept timeout; idle memory is kept");
    }
}

/// Returns free heap pages to the kernel. Done only when idle (not after every request): the
/// pages would otherwise be faulted back in by the very next request.
fn release_idle_memory() {
    // SAFETY: malloc_trim only walks glibc's own free lists; 0 keeps no extra padding.
    unsafe { libc::malloc_trim(0) };
}

fn wait_for_recycle(slot: &Slot) {
    let deadline = Instant::now() + RECYCLE_WAIT;
    while !slot.recycle_granted() && !STOP.load(Ordering::SeqCst) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn install_signal_handling() {
    // No SA_RESTART: the signal must interrupt a blocking accept().
    let stop = SigAction::new(SigHandler::Handler(request_stop), SaFlags::empty(), SigSet::empty());
    // Ctrl-C and a terminal hang-up reach the whole process group; the master decides for workers.
    let ignore = SigAction::new(SigHandler::SigIgn, SaFlags::empty(), SigSet::empty());
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        let _ = nix::sys::signal::sigaction(Signal::SIGTERM, &stop);
        let _ = nix::sys::signal::sigaction(Signal::SIGUSR1, &stop);
        let _ = nix::sys::signal::sigaction(Signal::SIGINT, &ignore);
        let _ = nix::sys::signal::sigaction(Signal::SIGHUP, &ignore);
        // Rust's runtime catches SIGSEGV and SIGBUS to report stack overflows, and a handler that
        // returns lets a signal sent by kill(2) pass unnoticed. A worker dies of them, as in C.
        let default = SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty());
        for signal in [Signal::SIGCHLD, Signal::SIGSEGV, Signal::SIGBUS, Signal::SIGUSR2] {
            let _ = nix::sys::signal::sigaction(signal, &default);
        }
    }
    crate::signals::unblock_all();
}

/// RLimitMEM (address space) and RLimitNPROC hold for the worker's whole life.
fn apply_static_rlimits(limits: &RLimits) {
    for (resource, limit) in [(libc::RLIMIT_AS, limits.mem), (libc::RLIMIT_NPROC, limits.nproc)] {
        if let Some(limit) = limit {
            set_limit(resource, limit, 0);
        }
    }
}

/// RLimitCPU counts a process's whole life, so a long-lived worker would die of the sum of many
/// small requests. weir moves the soft limit before each connection to the CPU time used so far
/// plus the configured seconds: a request that spins past it dies alone, as a CGI script would.
fn apply_cpu_limit(limits: &RLimits) {
    let Some(limit) = limits.cpu else { return };
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage fills the struct we pass.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) } != 0 {
        return;
    }
    // SAFETY: getrusage returned 0, so the struct is initialised.
    let usage = unsafe { usage.assume_init() };
    let used = (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + 1).max(0) as u64;
    set_limit(libc::RLIMIT_CPU, RLimit { soft: limit.soft, hard: None }, used);
}

/// Sets a limit, `offset` added to the soft value; `max` means the current hard limit.
fn set_limit(resource: libc::__rlimit_resource_t, limit: RLimit, offset: u64) {
    let mut current = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one struct we own.
    if unsafe { libc::getrlimit(resource, &mut current) } != 0 {
        return;
    }
    let value = |v: RLimitValue| match v {
        RLimitValue::Max => current.rlim_max,
        RLimitValue::Value(n) => n.saturating_add(offset).min(current.rlim_max),
    };
    let hard = limit.hard.map_or(current.rlim_max, value);
    let wanted = libc::rlimit { rlim_cur: value(limit.soft).min(hard), rlim_max: hard };
    // SAFETY: setrlimit reads one struct we own.
    if unsafe { libc::setrlimit(resource, &wanted) } != 0 {
        tracing::warn!(
            error = %std::io::Error::last_os_error(),
            "worker could not set a resource limit"
        );
    }
}
