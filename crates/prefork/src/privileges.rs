//! Dropping root: the account the edge and the pool run as, and `no_new_privs`.

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User};

/// The account to switch to, resolved once in the supervisor (name lookups read /etc files and
/// must not happen after chroot-like hardening or in a hurry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// User name, for messages and `initgroups`-style decisions.
    pub name: String,
    pub uid: Uid,
    pub gid: Gid,
}

/// Why an account could not be used.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    /// `User` names no account on this system.
    #[error("User {0} does not exist on this system")]
    NoSuchUser(String),
    /// `Group` names no group on this system.
    #[error("Group {0} does not exist on this system")]
    NoSuchGroup(String),
    /// `User root`: code in workers would run with every privilege.
    #[error("User must not be root: scripts and Handlers would run as root (for development only, UnsafeAllowUserRoot On allows it)")]
    RootWorkers,
    /// `EdgeUser root`: the process facing the Internet would keep every privilege.
    #[error("EdgeUser must not be root: the edge faces the Internet")]
    RootEdge,
    /// A set*id call failed: weir must not go on as root when asked not to.
    #[error("could not switch to user {user}: {source}")]
    Switch { user: String, source: nix::Error },
}

/// The system account the edge runs as by default when started as root.
pub const EDGE_ACCOUNT: &str = "_weir";
/// The edge's uid and gid when [`EDGE_ACCOUNT`] does not exist and `EdgeUser` is not set:
/// Debian reserves 65000-65533 for local use by no package, and 65534 is nobody, so this id
/// owns no file on a stock system and is nobody else's.
pub const EDGE_FALLBACK_ID: u32 = 65533;

/// The identities weir's roles take when started as root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identities {
    /// `User`/`Group`: workers, and so every script and Handler.
    pub workers: Account,
    /// `EdgeUser`/`EdgeGroup`: the edge, which holds the TLS key and the pool socket.
    pub edge: Account,
    /// Set when the edge's account is the numeric fallback, for the start-up notice.
    pub edge_fallback: bool,
}

impl Identities {
    /// Resolves every role's account when running as root; `None` otherwise (every role then
    /// stays the invoking user, as Apache's do).
    /// `root_workers`: `UnsafeAllowUserRoot On`, which lets `User` be root (development only).
    pub fn resolve(
        user: Option<&str>,
        group: Option<&str>,
        edge_user: Option<&str>,
        edge_group: Option<&str>,
        root_workers: bool,
    ) -> Result<Option<Identities>, PrivilegeError> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let Some(workers) = Account::resolve(user, group, root_workers)? else {
            return Ok(None);
        };
        let (edge, edge_fallback) = match edge_user {
            Some(name) => (account(name, edge_group)?, false),
            None => match lookup_user(EDGE_ACCOUNT) {
                Ok(found) => {
                    let gid = match edge_group {
                        Some(name) => lookup_group(name)?,
                        None => found.gid,
                    };
                    (Account { name: EDGE_ACCOUNT.to_string(), uid: found.uid, gid }, false)
                }
                Err(_) => {
                    let gid = match edge_group {
                        Some(name) => lookup_group(name)?,
                        None => Gid::from_raw(EDGE_FALLBACK_ID),
                    };
                    let name = format!("#{EDGE_FALLBACK_ID}");
                    (Account { name, uid: Uid::from_raw(EDGE_FALLBACK_ID), gid }, true)
                }
            },
        };
        if edge.uid.is_root() {
            return Err(PrivilegeError::RootEdge);
        }
        Ok(Some(Identities { workers, edge, edge_fallback }))
    }

    /// Whether code in workers could signal or trace the edge: one uid for both.
    pub fn edge_shares_worker_uid(&self) -> bool {
        self.edge.uid == self.workers.uid
    }
}

impl Account {
    /// Resolves `User`/`Group` when running as root. Started as root without `User`, weir runs
    /// its workers as `nobody`, never as root. Started as anyone else, `None`: roles run as the
    /// invoking user, as Apache does.
    /// `User root` is refused, as Apache refuses it, unless `allow_root` (UnsafeAllowUserRoot).
    pub fn resolve(
        user: Option<&str>,
        group: Option<&str>,
        allow_root: bool,
    ) -> Result<Option<Account>, PrivilegeError> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let account = account(user.unwrap_or("nobody"), group)?;
        if account.uid.is_root() && !allow_root {
            return Err(PrivilegeError::RootWorkers);
        }
        Ok(Some(account))
    }
}

/// An account by user name (or `#uid`), with `group` (or the user's own group).
fn account(user_name: &str, group: Option<&str>) -> Result<Account, PrivilegeError> {
    let (uid, own_gid) = match lookup_user(user_name) {
        Ok(found) => (found.uid, Some(found.gid)),
        // `#uid` with no passwd entry: a numeric identity, as Apache's `User #n` allows.
        Err(error) => match user_name.strip_prefix('#').and_then(|id| id.parse().ok()) {
            Some(id) => (Uid::from_raw(id), None),
            None => return Err(error),
        },
    };
    let gid = match group {
        Some(name) => lookup_group(name)?,
        None => own_gid.unwrap_or(Gid::from_raw(uid.as_raw())),
    };
    Ok(Account { name: user_name.to_string(), uid, gid })
}

fn lookup_user(name: &str) -> Result<User, PrivilegeError> {
    let by_name = User::from_name(name).ok().flatten();
    let by_id = name
        .strip_prefix('#')
        .and_then(|id| id.parse().ok())
        .and_then(|id| User::from_uid(Uid::from_raw(id)).ok().flatten());
    by_name.or(by_id).ok_or_else(|| PrivilegeError::NoSuchUser(name.to_string()))
}

fn lookup_group(name: &str) -> Result<Gid, PrivilegeError> {
    if let Some(id) = name.strip_prefix('#').and_then(|id| id.parse().ok()) {
        return Ok(Gid::from_raw(id));
    }
    Group::from_name(name)
        .ok()
        .flatten()
        .map(|group| group.gid)
        .ok_or_else(|| PrivilegeError::NoSuchGroup(name.to_string()))
}

/// Switches this process to `account` (when there is one), clears supplementary groups, makes
/// the process not dumpable and sets `no_new_privs`.
///
/// Not dumpable: no process of another uid, and none of the same uid without CAP_SYS_PTRACE,
/// may ptrace it or read its memory, maps, environment or descriptors through /proc. The kernel
/// clears the flag at a uid change anyway; it is set explicitly so that it also holds when
/// weir runs as one user, where it is what keeps a script from reading the edge's key or a
/// sibling worker's requests. `no_new_privs`: nothing exec'd later can regain privileges. The
/// parent-death signal is re-armed: the kernel clears it when the credentials change.
pub fn drop_to(account: Option<&Account>) -> Result<(), PrivilegeError> {
    if let Some(account) = account {
        let switch = |source| PrivilegeError::Switch { user: account.name.clone(), source };
        // Supplementary groups cleared: the account's primary group is all the roles keep.
        nix::unistd::setgroups(&[]).map_err(switch)?;
        nix::unistd::setresgid(account.gid, account.gid, account.gid).map_err(switch)?;
        nix::unistd::setresuid(account.uid, account.uid, account.uid).map_err(switch)?;
    }
    harden();
    Ok(())
}

/// Not dumpable, `no_new_privs`, and the parent-death signal armed: what every role sets,
/// including those that stay root (the supervisor's children that serve nothing).
pub fn harden() {
    // SAFETY: these prctl options take integer arguments and no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM, 0, 0, 0);
    }
    // A change of identity cleared the signal until just now: a supervisor killed in between
    // (during a reload, say) would leave this role running for ever.
    if crate::fork::parent_gone() {
        std::process::exit(0);
    }
}

/// The supervisor's share of [`harden`]: not dumpable and `no_new_privs`, without a
/// parent-death signal (its parent is a shell or systemd, whose exit must not stop weir).
pub fn harden_supervisor() {
    // SAFETY: these prctl options take integer arguments and no pointers.
    unsafe {
        libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    }
}

/// `chown` for a path weir has just created for a role (the pool socket, for the edge).
pub fn chown_to(path: &std::path::Path, account: Option<&Account>) -> std::io::Result<()> {
    let Some(account) = account else {
        return Ok(());
    };
    let c_path = CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: c_path is a valid NUL-terminated path for the duration of the call.
    let rc = unsafe { libc::chown(c_path.as_ptr(), account.uid.as_raw(), account.gid.as_raw()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}
