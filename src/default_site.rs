//! The built-in default's site: what `weir run` with no `-f` serves, and where it keeps it.
//!
//! It never uses the current directory: started from `/` that made RuntimeDir `/run` and put
//! `certs/`, `htdocs/` and `cgi-bin/` at the root of the filesystem, and started anywhere it
//! served and wrote into whatever directories of those names it found there. Its state lives in
//! a directory of its own instead:
//!
//! - `$STATE_DIRECTORY/default` when set (systemd's `StateDirectory=`);
//! - as root, `/var/lib/weir/default` (reachable by the edge's unprivileged identity, which
//!   serves the documents; root's home is not);
//! - otherwise `$XDG_STATE_HOME/weir/default`, by default `~/.local/state/weir/default`.
//!
//! weir creates that directory and what it holds when missing, owned by the user running it and
//! closed to others' writes; an existing one (or one of its subdirectories) owned by someone
//! else or writable by group or others is an error that names it, never changed. Files are
//! created exclusively and without following symlinks, and a symlink where a file of the site
//! belongs is refused.

use std::fs::{DirBuilder, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use weir_conf::Config;

/// The bundled document root's index page, written when missing.
const DEFAULT_INDEX: &str = include_str!("../htdocs/index.html");
/// The bundled example CGI script, written when missing.
const DEFAULT_CGI: &str = include_str!("../cgi-bin/hello");

/// The directories of the site, relative to its home, as the built-in configuration names them.
const SUBDIRECTORIES: [&str; 4] = ["certs", "htdocs", "cgi-bin", "run"];

/// The files of the generated certificate, which the edge writes on first start.
const CERTIFICATE_FILES: [&str; 2] = ["certs/server.crt", "certs/server.key"];

/// Where the built-in default keeps its site (see the module doc); `Err` says why there is no
/// such place.
pub fn home() -> Result<PathBuf, String> {
    let absolute = |var: &str| {
        std::env::var_os(var).map(PathBuf::from).filter(|p| p.is_absolute() && p != Path::new(""))
    };
    // systemd may list several directories, separated by colons: the first is this one.
    if let Some(state) = std::env::var_os("STATE_DIRECTORY") {
        let first = state.to_string_lossy().split(':').next().map(PathBuf::from);
        if let Some(dir) = first.filter(|p| p.is_absolute()) {
            return Ok(dir.join("default"));
        }
    }
    if nix::unistd::Uid::effective().is_root() {
        return Ok(PathBuf::from("/var/lib/weir/default"));
    }
    if let Some(state) = absolute("XDG_STATE_HOME") {
        return Ok(state.join("weir/default"));
    }
    match absolute("HOME") {
        Some(home) if home != Path::new("/") => Ok(home.join(".local/state/weir/default")),
        _ => Err("the built-in default keeps its site under $XDG_STATE_HOME or $HOME, and neither is set \
                  to a directory of this user's; set one, or run with -f FILE"
            .to_string()),
    }
}

/// Checks what exists of the site: every directory a real one, owned by this user and not
/// writable by group or others; no symlink where a certificate file goes. What configtest says
/// and `weir run` refuses to start with.
pub fn check(home: &Path) -> Result<(), String> {
    for dir in std::iter::once(home.to_path_buf()).chain(SUBDIRECTORIES.iter().map(|d| home.join(d))) {
        if let Ok(meta) = std::fs::symlink_metadata(&dir) {
            judge_directory(&dir, &meta)?;
        }
    }
    for file in CERTIFICATE_FILES {
        let path = home.join(file);
        if let Ok(meta) = std::fs::symlink_metadata(&path) {
            if !meta.file_type().is_file() {
                return Err(format!(
                    "{} is not a regular file (a symlink?); the built-in default writes its certificate only as a new file of its own",
                    path.display()
                ));
            }
        }
    }
    Ok(())
}

/// Why a directory of the site cannot be used, if it cannot.
fn judge_directory(dir: &Path, meta: &std::fs::Metadata) -> Result<(), String> {
    let me = nix::unistd::Uid::effective().as_raw();
    let shown = dir.display();
    if !meta.file_type().is_dir() {
        return Err(format!(
            "{shown} is not a directory (a symlink?); the built-in default uses only directories of its own"
        ));
    }
    if meta.uid() != me {
        return Err(format!(
            "{shown} is owned by uid {}, not by uid {me} who runs weir; the built-in default uses only directories of its own and changes no other's (remove it or run with -f FILE)",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{shown} is writable by group or others (mode {:o}); the built-in default will not use it, nor change its mode",
            meta.mode() & 0o7777
        ));
    }
    Ok(())
}

/// Creates the site's missing directories (mode 0755) and its example files, never over
/// anything already there, then checks the whole of it.
pub fn materialize(config: &Config, home: &Path) -> std::io::Result<()> {
    if !home.exists() {
        DirBuilder::new().recursive(true).mode(0o755).create(home)?;
    }
    check(home).map_err(std::io::Error::other)?;
    for dir in SUBDIRECTORIES {
        create_missing_dir(&home.join(dir))?;
    }
    create_missing_file(&config.document_root.join("index.html"), DEFAULT_INDEX, 0o644)?;
    for alias in &config.script_aliases {
        create_missing_file(&alias.dir.join("hello"), DEFAULT_CGI, 0o755)?;
    }
    check(home).map_err(std::io::Error::other)
}

fn create_missing_dir(dir: &Path) -> std::io::Result<()> {
    match DirBuilder::new().mode(0o755).create(dir) {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}

/// Writes a new file, created exclusively and never through a symlink: one already there (or a
/// symlink by its name) is left as it is.
fn create_missing_file(path: &Path, text: &str, mode: u32) -> std::io::Result<()> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path);
    match file {
        Ok(mut file) => file.write_all(text.as_bytes()),
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn a_symlink_or_an_open_directory_in_the_site_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("default");
        std::fs::create_dir_all(home.join("certs")).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check(&home), Ok(()));
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), home.join("certs/server.crt")).unwrap();
        assert!(check(&home).unwrap_err().contains("server.crt"));
        std::fs::remove_file(home.join("certs/server.crt")).unwrap();
        std::fs::set_permissions(home.join("certs"), std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check(&home).unwrap_err().contains("writable by group or others"));
    }
}
