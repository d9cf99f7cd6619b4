//! The one fork primitive. Every process weir starts, it starts through [`fork_child`].

use std::io::Write;
use std::os::fd::RawFd;

use nix::unistd::{ForkResult, Pid};

/// The process that forked this one (0 in the supervisor): [`crate::privileges::harden`] arms
/// the parent-death signal again after a change of identity clears it, and must then see
/// whether that parent died meanwhile.
static PARENT: std::sync::atomic::AtomicI32 = std::sync::atomic::AtomicI32::new(0);

/// Whether the parent this process was forked by is gone (always false in the supervisor).
pub fn parent_gone() -> bool {
    let parent = PARENT.load(std::sync::atomic::Ordering::Relaxed);
    parent != 0 && nix::unistd::getppid().as_raw() != parent
}

/// The roles of weir's process tree, each with the title `ps` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The async TLS terminator.
    Edge,
    /// The prefork pool's master.
    PoolMaster,
    /// One single-connection worker.
    Worker,
}

impl Role {
    /// The process title, as DESIGN.md names the roles.
    pub fn title(self) -> &'static str {
        match self {
            Role::Edge => "weir: edge",
            Role::PoolMaster => "weir: pool master",
            Role::Worker => "weir: worker",
        }
    }
}

/// Why a fork was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ForkError {
    /// Forking a multi-threaded process copies only the calling thread, leaving locks held by the
    /// others locked forever in the child. A bug in weir if it happens.
    #[error("refusing to fork the {role:?}: this process has {threads} threads")]
    Threaded { role: Role, threads: usize },
    /// The kernel refused: usually RLIMIT_NPROC or memory.
    #[error("fork failed for the {role:?}: {source}")]
    Fork { role: Role, source: nix::Error },
}

/// Forks a child that runs `role_main` (a role's `run`, which never returns).
///
/// In the child, before `role_main`: the parent's death is signalled to it (SIGTERM), every file
/// descriptor other than 0, 1, 2 and those in `keep` is closed, and the process title is set.
/// Signal masks are inherited as they are: the role opens its own handling, then unblocks.
pub fn fork_child(role: Role, keep: &[RawFd], role_main: impl FnOnce()) -> Result<Pid, ForkError> {
    let threads = thread_count();
    if threads != 1 {
        return Err(ForkError::Threaded { role, threads });
    }
    let _ = std::io::stdout().flush();
    let _ = std::io::stderr().flush();
    let parent = nix::unistd::getpid();
    // SAFETY: this process has exactly one thread (checked above), so no lock can be held by a
    // thread that would not exist in the child.
    match unsafe { nix::unistd::fork() } {
        Err(source) => Err(ForkError::Fork { role, source }),
        Ok(ForkResult::Parent { child }) => Ok(child),
        Ok(ForkResult::Child) => {
            // SAFETY: prctl with PR_SET_PDEATHSIG takes a signal number and nothing else.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0) };
            PARENT.store(parent.as_raw(), std::sync::atomic::Ordering::Relaxed);
            if parent_gone() {
                // The parent died before the death signal was armed.
                std::process::exit(0);
            }
            close_all_except(keep);
            crate::title::set(role.title());
            role_main();
            // Roles never return; should one, it must not fall back into the parent's code.
            std::process::exit(0)
        }
    }
}

fn thread_count() -> usize {
    std::fs::read_dir("/proc/self/task").map(|dir| dir.count()).unwrap_or(usize::MAX)
}

/// Closes every descriptor above 2 that is not in `keep`, with `close_range` over the gaps
/// between kept descriptors. It allocates nothing: in a fresh worker every heap page written
/// after `fork` becomes a private copy, so start-up stays off the heap.
fn close_all_except(keep: &[RawFd]) {
    let mut low: RawFd = 3;
    loop {
        // The next kept descriptor at or above `low` (keep is a handful of entries).
        let next = keep.iter().copied().filter(|&fd| fd >= low).min();
        let high = next.map_or(libc::c_uint::MAX, |fd| (fd - 1) as libc::c_uint);
        if next != Some(low) && !close_range(low as libc::c_uint, high) {
            close_listed_except(keep);
            return;
        }
        match next {
            Some(fd) => low = fd + 1,
            None => return,
        }
    }
}

/// Closes [low, high]; false if the kernel has no `close_range` (before Linux 5.9).
fn close_range(low: libc::c_uint, high: libc::c_uint) -> bool {
    // SAFETY: close_range takes two descriptor numbers and flags, no pointers; the descriptors
    // it closes are owned by nothing in this freshly forked, single-threaded child.
    unsafe { libc::close_range(low, high, 0) == 0 }
}

/// The fallback for kernels without `close_range`: closes what /proc/self/fd lists.
fn close_listed_except(keep: &[RawFd]) {
    let open: Vec<RawFd> = match std::fs::read_dir("/proc/self/fd") {
        Ok(dir) => dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok()).collect(),
        Err(_) => return,
    };
    for fd in open {
        if fd > 2 && !keep.contains(&fd) {
            // SAFETY: closing a descriptor this child inherited and no object owns.
            unsafe { libc::close(fd) };
        }
    }
}
