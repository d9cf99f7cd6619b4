//! Signals for single-threaded roles: blocked, then read from a `signalfd` in the role's loop, so
//! no handler ever runs code that is not async-signal-safe.
//!
//! The signal table (also in docs/operations.md):
//!
//! | signal | supervisor | pool master | worker | edge |
//! |---|---|---|---|---|
//! | SIGTERM, SIGINT | graceful stop of the tree | stop workers, then exit | finish the current request, exit | stop accepting, drain, exit |
//! | SIGHUP | reload | — | — | — |
//! | SIGCHLD | reap, restart a lost role | reap, replace the worker | — | — |

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::signal::{SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};

/// The signals a single-threaded role reads from its loop.
pub const ROLE_SIGNALS: [Signal; 6] = [
    Signal::SIGTERM,
    Signal::SIGINT,
    Signal::SIGHUP,
    Signal::SIGCHLD,
    Signal::SIGUSR1,
    // From a worker to its master: "my last connection; fork my replacement".
    Signal::SIGUSR2,
];

/// A `signalfd` over [`ROLE_SIGNALS`], which stay blocked while it exists.
pub struct SignalReader {
    fd: SignalFd,
}

impl SignalReader {
    /// Blocks [`ROLE_SIGNALS`] and opens a non-blocking `signalfd` for them.
    pub fn new() -> nix::Result<Self> {
        let mut mask = SigSet::empty();
        for signal in ROLE_SIGNALS {
            mask.add(signal);
        }
        nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&mask), None)?;
        let fd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)?;
        Ok(SignalReader { fd })
    }

    /// The next pending signal, if any.
    pub fn pending(&mut self) -> Option<Signal> {
        loop {
            match self.fd.read_signal() {
                Ok(Some(info)) => match Signal::try_from(info.ssi_signo as i32) {
                    Ok(signal) => return Some(signal),
                    Err(_) => continue,
                },
                Ok(None) | Err(_) => return None,
            }
        }
    }
}

impl AsFd for SignalReader {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Unblocks every signal. A forked role calls this once its own handling is in place.
pub fn unblock_all() {
    let _ = nix::sys::signal::sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
}

/// The description Apache prints for a signal, such as `Segmentation fault (11)`.
pub fn describe(signal: i32) -> String {
    // SAFETY: strsignal returns a pointer to a static or thread-local string; the roles that call
    // this are single-threaded, and the text is copied before any other call could overwrite it.
    let text = unsafe {
        let ptr = libc::strsignal(signal);
        if ptr.is_null() {
            String::from("Unknown signal")
        } else {
            std::ffi::CStr::from_ptr(ptr).to_string_lossy().into_owned()
        }
    };
    format!("{text} ({signal})")
}
