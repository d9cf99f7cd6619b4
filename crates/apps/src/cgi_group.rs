//! A CGI script's process group. The script leads a group of its own (spawned with
//! `process_group(0)`), and what it starts belongs to that group unless it leaves on purpose
//! (`setsid`). The group is killed whole, never the script alone: at the script time limit,
//! when the edge goes away, and once the script has exited (nothing of a finished request
//! outlives it; a child left behind used to run on, re-parented). The script itself dies with
//! its worker through `PR_SET_PDEATHSIG`, set when it is spawned.
//!
//! The group's id is the script's pid, which the kernel keeps reserved while the script is
//! unreaped (a zombie included), so the group is signalled only before the script is reaped:
//! never an id the kernel could since have given to another process.

use std::os::fd::{AsFd, BorrowedFd, FromRawFd, OwnedFd};
use std::process::Child;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

/// A running script and its group, killed and reaped at the latest when dropped.
pub(crate) struct ScriptGroup {
    child: Child,
    /// Readable once the script has exited, for the relay's poll (`pidfd_open`, Linux 5.3);
    /// `None` where the kernel has none, and the relay then looks at most every poll tick.
    pidfd: Option<OwnedFd>,
    /// The script has exited (seen without reaping it, so its pid still names the group).
    exited: bool,
    /// The script has been reaped: the group may no longer be signalled by its id.
    reaped: bool,
}

impl ScriptGroup {
    pub(crate) fn new(child: Child) -> ScriptGroup {
        // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, child.id() as libc::pid_t, 0) };
        // SAFETY: a non-negative return is a descriptor this process now owns.
        let pidfd = (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) });
        ScriptGroup { child, pidfd, exited: false, reaped: false }
    }

    pub(crate) fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// What to poll for the script's exit.
    pub(crate) fn exit_fd(&self) -> Option<BorrowedFd<'_>> {
        self.pidfd.as_ref().filter(|_| !self.exited).map(|fd| fd.as_fd())
    }

    /// Whether the script has exited, found without reaping it.
    pub(crate) fn has_exited(&mut self) -> bool {
        if self.exited || self.reaped {
            return true;
        }
        // SAFETY: siginfo_t is plain data, valid when zeroed.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
        // SAFETY: waitid writes one siginfo_t we own; WNOWAIT leaves the child unreaped.
        let rc = unsafe { libc::waitid(libc::P_PID, self.child.id(), &mut info, flags) };
        // SAFETY: waitid filled `info`; si_pid is 0 when no child had changed state.
        self.exited = rc == 0 && unsafe { info.si_pid() } != 0;
        self.exited
    }

    /// SIGKILL to the whole group (while the script is unreaped, see the module doc).
    pub(crate) fn kill(&mut self) {
        if !self.reaped {
            let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        }
    }

    /// Kills what is left of the group and reaps the script.
    pub(crate) fn end(&mut self) {
        if self.reaped {
            return;
        }
        self.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for ScriptGroup {
    fn drop(&mut self) {
        self.end();
    }
}
