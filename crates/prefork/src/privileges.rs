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
    /// A set*id call failed: weir must not go on as root when asked not to.
    #[error("could not switch to user {user}: {source}")]
    Switch { user: String, source: nix::Error },
}

impl Account {
    /// Resolves `User`/`Group` when running as root. Started as root without `User`, weir runs
    /// its roles as `nobody`, never as root. Started as anyone else, `None`: roles run as the
    /// invoking user, as Apache does.
    pub fn resolve(user: Option<&str>, group: Option<&str>) -> Result<Option<Account>, PrivilegeError> {
        if !Uid::effective().is_root() {
            return Ok(None);
        }
        let user_name = user.unwrap_or("nobody");
        let found = lookup_user(user_name)?;
        let gid = match group {
            Some(name) => lookup_group(name)?,
            None => found.gid,
        };
        Ok(Some(Account { name: user_name.to_string(), uid: found.uid, gid }))
    }
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

/// Switches this process to `account` (when there is one), clears supplementary groups, and sets
/// `no_new_privs` so nothing exec'd later can regain privileges.
pub fn drop_to(account: Option<&Account>) -> Result<(), PrivilegeError> {
    if let Some(account) = account {
        let switch = |source| PrivilegeError::Switch { user: account.name.clone(), source };
        // Supplementary groups cleared: the account's primary group is all the roles keep.
        nix::unistd::setgroups(&[]).map_err(switch)?;
        nix::unistd::setresgid(account.gid, account.gid, account.gid).map_err(switch)?;
        nix::unistd::setresuid(account.uid, account.uid, account.uid).map_err(switch)?;
    }
    // SAFETY: PR_SET_NO_NEW_PRIVS takes the value 1 and no pointers.
    unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    Ok(())
}

/// `chown` for paths the roles must own after dropping root (the pool socket, the runtime dir).
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
