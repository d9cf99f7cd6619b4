//! A worker: blocks in `accept()` on the pool's Unix listener and serves one connection at a time.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal};
use nix::sys::socket::SockFlag;

/// What runs a connection inside a worker. The object is built once in the supervisor and copied
/// into every worker by `fork`, so each worker has its own, never shared with another process.
pub trait ConnectionHandler {
    /// Called once in each new worker, before its first connection (open a C library here).
    fn worker_init(&mut self) {}
    /// Serves one connection from the edge, from its first byte to its close, and says whether
    /// this worker may serve another.
    fn serve(&mut self, stream: UnixStream) -> AfterConnection;
    /// Called once when the worker leaves its loop normally.
    fn worker_exit(&mut self) {}
}

/// What a worker does after a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AfterConnection {
    /// Go back to `accept()`.
    Continue,
    /// Exit and let the master fork a fresh worker (the handler's state may be damaged, for
    /// example after a panic).
    Retire,
}

/// Set by SIGTERM or SIGUSR1: finish the connection in hand, then exit.
static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// The worker's entry point: serves connections until told to stop or until it has served
/// `max_connections` (0: no limit), then exits.
pub fn run(listener: RawFd, handler: &mut dyn ConnectionHandler, max_connections: u64) -> ! {
    install_signal_handling();
    handler.worker_init();
    let mut served = 0u64;
    while !STOP.load(Ordering::SeqCst) && (max_connections == 0 || served < max_connections) {
        // nix's accept4 does not retry on EINTR (std's accept does), so SIGTERM wakes an idle
        // worker at once; a connection already accepted is still served.
        match nix::sys::socket::accept4(listener, SockFlag::SOCK_CLOEXEC) {
            Ok(fd) => {
                // SAFETY: accept4 returned a new descriptor that nothing else owns.
                let stream = UnixStream::from(unsafe { OwnedFd::from_raw_fd(fd) });
                served += 1;
                if handler.serve(stream) == AfterConnection::Retire {
                    break;
                }
            }
            Err(nix::Error::EINTR | nix::Error::ECONNABORTED) => continue,
            Err(error) => {
                tracing::error!(%error, "worker could not accept on the pool socket");
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
    }
    handler.worker_exit();
    std::process::exit(0)
}

fn install_signal_handling() {
    // No SA_RESTART: the signal must interrupt a blocking accept().
    let stop = SigAction::new(
        SigHandler::Handler(request_stop),
        SaFlags::empty(),
        SigSet::empty(),
    );
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
        for signal in [Signal::SIGCHLD, Signal::SIGSEGV, Signal::SIGBUS] {
            let _ = nix::sys::signal::sigaction(signal, &default);
        }
    }
    crate::signals::unblock_all();
}
