//! The files the supervisor writes and later acts on: RuntimeDir (the pool's socket, the address
//! file) and PidFile. Started as root, weir must not act on anything code in a worker could have
//! put there: a script that could replace the pool socket would receive the next requests with
//! their credentials, and one that could rewrite PidFile would have `weir stop` signal a process
//! of its choosing. So RuntimeDir is root-owned and closed to others, every directory above it
//! and above PidFile is checked the way OpenSSH checks `~/.ssh`, files are written under a fresh
//! name (never through a symlink) and renamed into place, and weir never changes the owner or
//! mode of a directory it did not create.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use weir_prefork::privileges::Identities;

/// Why a runtime path cannot be trusted or written.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeFileError {
    #[error("{what} {path}: {source}")]
    Io { what: &'static str, path: PathBuf, source: std::io::Error },
    /// A directory others could write to: what weir puts there could be replaced.
    #[error(
        "{what} {path} is unsafe: {reason}; code running as User or EdgeUser could replace what weir writes there (make it owned by root and not writable by group or others)"
    )]
    Unsafe { what: &'static str, path: PathBuf, reason: String },
}

/// Who must not be able to write where weir keeps its runtime files.
#[derive(Debug, Clone, Copy)]
pub struct Untrusted {
    uids: [u32; 2],
    gids: [u32; 2],
}

impl Untrusted {
    /// The roles' identities, when weir runs as root; `None` when it runs as one user (then
    /// nothing is checked: every process is that user anyway).
    pub fn of(identities: Option<&Identities>) -> Option<Untrusted> {
        // Workers that run as root (UnsafeAllowUserRoot) own everything anyway: root's own
        // directories are not held against them, or nothing could be used.
        let unless_root = |uid: u32, edge: u32| if uid == 0 { edge } else { uid };
        identities.map(|ids| Untrusted {
            uids: [unless_root(ids.workers.uid.as_raw(), ids.edge.uid.as_raw()), ids.edge.uid.as_raw()],
            gids: [unless_root(ids.workers.gid.as_raw(), ids.edge.gid.as_raw()), ids.edge.gid.as_raw()],
        })
    }

    /// Why `meta` (of a directory) lets an untrusted identity create, rename or remove entries
    /// in it; `None` when it does not. A sticky directory (/tmp) lets no one rename or remove
    /// another's entry, so it is safe as an ancestor, never as the directory weir writes in
    /// (anyone may plant a file of their own there under the name weir will use).
    fn objection(&self, meta: &std::fs::Metadata, rule: DirRule) -> Option<String> {
        let mode = meta.mode();
        let sticky = mode & 0o1000 != 0 && rule == DirRule::Ancestor;
        if self.uids.contains(&meta.uid()) || (meta.uid() != 0 && rule == DirRule::RootOwned) {
            return Some(format!("it is owned by uid {}", meta.uid()));
        }
        if mode & 0o002 != 0 && !sticky {
            return Some("it is writable by others".to_string());
        }
        if mode & 0o020 != 0 && !sticky && (rule == DirRule::RootOwned || self.gids.contains(&meta.gid())) {
            return Some(format!("it is writable by group {}", meta.gid()));
        }
        None
    }

    /// Why an existing file root will append to could be written by others: owned by a role's
    /// identity, or writable by others or by a role's group.
    fn file_objection(&self, meta: &std::fs::Metadata) -> Option<String> {
        let mode = meta.mode();
        if self.uids.contains(&meta.uid()) {
            return Some(format!("it is owned by uid {}", meta.uid()));
        }
        if mode & 0o002 != 0 {
            return Some("it is writable by others".to_string());
        }
        if mode & 0o020 != 0 && self.gids.contains(&meta.gid()) {
            return Some(format!("it is writable by group {}", meta.gid()));
        }
        None
    }
}

/// How strictly a directory on a checked path is judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DirRule {
    /// A directory above: closed to the roles, a sticky one (/tmp) allowed.
    Ancestor,
    /// The directory a log is written in: closed to the roles, sticky or not; it may belong to
    /// another trusted account or group (Debian's /var/log is root:syslog, group-writable).
    Closed,
    /// RuntimeDir and PidFile's directory: root's own and closed to its group as well.
    RootOwned,
}

/// Creates RuntimeDir when missing (mode 0755; root-owned when weir runs as root) and, started
/// as root, checks that it and every directory above it are closed to the roles' identities.
pub fn prepare_runtime_dir(dir: &Path, untrusted: Option<Untrusted>) -> Result<(), RuntimeFileError> {
    let io = |source| RuntimeFileError::Io { what: "RuntimeDir", path: dir.to_path_buf(), source };
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(io)?;
    }
    if let Some(untrusted) = untrusted {
        check_directory_chain("RuntimeDir", dir, untrusted)?;
    }
    Ok(())
}

/// Checks an existing RuntimeDir and the directories above it.
pub fn check_runtime_dir(dir: &Path, untrusted: Untrusted) -> Result<(), RuntimeFileError> {
    check_directory_chain("RuntimeDir", dir, untrusted)
}

/// Checks an existing PidFile directory and the directories above it.
pub fn check_pid_dir(dir: &Path, untrusted: Untrusted) -> Result<(), RuntimeFileError> {
    check_directory_chain("PidFile's directory", dir, untrusted)
}

/// Checks the directory of a log file and those above it. A log's directory may belong to
/// another trusted account or group (Debian's /var/log is root:syslog, group-writable); what it
/// must not be is writable by the roles' identities, who could otherwise remove, replace or
/// plant files where root appends (the files themselves are opened without following symlinks
/// and without blocking, and only when they are regular files).
pub fn check_log_dir(what: &'static str, log: &Path, untrusted: Untrusted) -> Result<(), RuntimeFileError> {
    let dir = log.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    // The directory is created at open when missing; then its nearest existing ancestor decides.
    let existing = dir.ancestors().find(|d| d.exists()).unwrap_or(Path::new("/"));
    walk_directory_chain(what, existing, untrusted, DirRule::Closed)?;
    // A log already there that a role could write to: someone else's file, not weir's log.
    if let Ok(meta) = std::fs::symlink_metadata(log) {
        if let Some(reason) = untrusted.file_objection(&meta) {
            return Err(RuntimeFileError::Unsafe { what, path: log.to_path_buf(), reason });
        }
    }
    Ok(())
}

/// Checks `dir` and every directory above it (after resolving symlinks: the real path is what
/// the kernel walks).
fn check_directory_chain(
    what: &'static str,
    dir: &Path,
    untrusted: Untrusted,
) -> Result<(), RuntimeFileError> {
    walk_directory_chain(what, dir, untrusted, DirRule::RootOwned)
}

/// The walk behind both: `first` is the rule for `dir` itself; those above it are ancestors.
fn walk_directory_chain(
    what: &'static str,
    dir: &Path,
    untrusted: Untrusted,
    first: DirRule,
) -> Result<(), RuntimeFileError> {
    let real = std::fs::canonicalize(dir).map_err(|source| RuntimeFileError::Io {
        what,
        path: dir.to_path_buf(),
        source,
    })?;
    let mut current = Some(real.as_path());
    let mut rule = first;
    while let Some(path) = current {
        let meta = std::fs::metadata(path).map_err(|source| RuntimeFileError::Io {
            what,
            path: path.to_path_buf(),
            source,
        })?;
        if let Some(reason) = untrusted.objection(&meta, rule) {
            let reason = if path == real {
                reason
            } else {
                format!("the directory {} above it: {reason}", path.display())
            };
            return Err(RuntimeFileError::Unsafe { what, path: dir.to_path_buf(), reason });
        }
        rule = DirRule::Ancestor;
        current = path.parent();
    }
    Ok(())
}

/// PidFile, written and locked: the supervisor holds an exclusive lock on it for its whole life,
/// so `weir stop` can tell a live server from a stale file whose pid now names another process.
pub struct PidFile {
    /// Open only for the lock, which lasts as long as this descriptor (closed at exit).
    _locked: std::fs::File,
}

/// Writes PidFile and locks it: its directory is created when missing and, started as root,
/// checked like RuntimeDir's ancestors (PidFile is what `weir stop` will signal).
pub fn write_pid_file(path: &Path, untrusted: Option<Untrusted>) -> Result<PidFile, RuntimeFileError> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    if !dir.exists() {
        DirBuilder::new().recursive(true).mode(0o755).create(dir).map_err(|source| RuntimeFileError::Io {
            what: "PidFile",
            path: dir.to_path_buf(),
            source,
        })?;
    }
    if let Some(untrusted) = untrusted {
        check_directory_chain("PidFile's directory", dir, untrusted)?;
    }
    let io = |source| RuntimeFileError::Io { what: "PidFile", path: path.to_path_buf(), source };
    write_replacing(path, format!("{}\n", std::process::id()).as_bytes()).map_err(io)?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    if !try_lock(&file, libc::LOCK_EX) {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::AddrInUse,
            "another weir holds it (is one already running with this PidFile?)",
        )));
    }
    Ok(PidFile { _locked: file })
}

/// A non-blocking flock; `false` when another open file holds a conflicting lock.
fn try_lock(file: &std::fs::File, kind: libc::c_int) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: flock on a descriptor this process holds open.
    unsafe { libc::flock(file.as_raw_fd(), kind | libc::LOCK_NB) == 0 }
}

/// Writes `bytes` to `path` whole or not at all: under a fresh name in the same directory,
/// created exclusively and never through a symlink, then renamed over `path` (rename replaces
/// a symlink itself, never its target). Mode 0644.
pub fn write_replacing(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let name = path.file_name().ok_or(std::io::ErrorKind::InvalidInput)?.to_string_lossy();
    let partial = path.with_file_name(format!(".{name}.{}.partial", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&partial)?;
    let written = file.write_all(bytes).and_then(|()| file.sync_data());
    drop(file);
    match written.and_then(|()| std::fs::rename(&partial, path)) {
        Ok(()) => Ok(()),
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

/// What `weir stop` and `weir reload` check before they signal the pid in PidFile: the file is
/// owned by the user running the command (or root) and writable by no one else, and the
/// process it names runs as that same user. A PidFile that anyone else could have written is
/// not acted on.
pub fn trusted_pid(path: &Path) -> Result<i32, String> {
    let meta = std::fs::symlink_metadata(path).map_err(|e| format!("PidFile {}: {e}", path.display()))?;
    let me = nix::unistd::Uid::effective().as_raw();
    if !meta.file_type().is_file() {
        return Err(format!("PidFile {} is not a regular file; not acting on it", path.display()));
    }
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "PidFile {} is owned by uid {}, not by uid {me} or root; not acting on it",
            path.display(),
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!("PidFile {} is writable by group or others; not acting on it", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("PidFile {}: {e}", path.display()))?;
    let pid: i32 = text
        .trim()
        .parse()
        .ok()
        .filter(|pid| *pid > 1)
        .ok_or_else(|| format!("PidFile {} does not hold a process id", path.display()))?;
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| format!("PidFile {}: {e}", path.display()))?;
    if try_lock(&file, libc::LOCK_SH) {
        return Err(format!(
            "no weir holds PidFile {} (pid {pid} is not a running weir; the file is stale)",
            path.display()
        ));
    }
    let owner = std::fs::metadata(format!("/proc/{pid}"))
        .map_err(|_| format!("no process {pid} (from PidFile {})", path.display()))?
        .uid();
    if owner != meta.uid() {
        return Err(format!(
            "process {pid} in PidFile {} runs as uid {owner}, not as the file's owner uid {}; not signalling it",
            path.display(),
            meta.uid()
        ));
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn written_files_replace_symlinks_instead_of_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("weir.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_replacing(&link, b"42\n").unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert_eq!(std::fs::read_to_string(&link).unwrap(), "42\n");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    }

    #[test]
    fn directories_writable_by_the_roles_are_refused() {
        let untrusted = Untrusted { uids: [65534, 65533], gids: [65534, 65533] };
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("run");
        std::fs::create_dir(&run).unwrap();
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o777)).unwrap();
        let meta = std::fs::metadata(&run).unwrap();
        assert!(untrusted.objection(&meta, DirRule::RootOwned).is_some(), "world-writable");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let meta = std::fs::metadata(&run).unwrap();
        assert!(
            untrusted.objection(&meta, DirRule::RootOwned).is_some(),
            "sticky is not enough for RuntimeDir itself"
        );
        assert!(untrusted.objection(&meta, DirRule::Closed).is_some(), "nor for a log's directory (/tmp)");
        assert!(untrusted.objection(&meta, DirRule::Ancestor).is_none(), "a sticky ancestor (/tmp) is fine");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
        let meta = std::fs::metadata(&run).unwrap();
        if nix::unistd::Uid::effective().is_root() {
            assert!(untrusted.objection(&meta, DirRule::RootOwned).is_none());
        }
    }
}
