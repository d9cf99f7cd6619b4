//! How a URL path names a CGI script, written once for the two processes that decide it: the
//! edge, which refuses a request for a script that is not there before it reads the body, and
//! the worker, which runs the script. Sharing the rules keeps their answers the same. Both
//! apply them to the normalised, decoded path of [`crate::target`], never to a raw one.

use std::path::Path;

/// A `ScriptAlias` path split into its script's name and what follows it.
#[derive(Debug, PartialEq, Eq)]
pub struct AliasedScript<'a> {
    /// The script's file name: one plain name, never a path.
    pub name: &'a str,
    /// The rest of the path after the name (PATH_INFO).
    pub info: &'a str,
}

/// The script named by `rest`, the normalised, decoded path ([`crate::target`]) after a
/// ScriptAlias prefix: its first segment. `None`: no plain file name (the prefix's directory
/// itself), which no file in the directory can answer: 404.
pub fn in_alias(rest: &str) -> Option<AliasedScript<'_>> {
    let rest = rest.trim_start_matches('/');
    let (name, info) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, ""),
    };
    plain_name(name).then_some(AliasedScript { name, info })
}

/// What a script directory's file makes of a request for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A script that can run.
    Run,
    /// No such file: 404.
    NotFound,
    /// There, but not something to run: not a regular file, or neither executable nor meant
    /// for a `CGIInterpreter`: 403.
    Forbidden,
    /// The file could not be looked at (permissions, I/O): the worker decides.
    Unknown,
}

/// Who runs scripts: the workers' uid and gid (they keep no supplementary groups).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Runner {
    pub uid: u32,
    pub gid: u32,
}

impl Default for Runner {
    fn default() -> Runner {
        Runner::current()
    }
}

impl Runner {
    /// This process's own effective identity (a worker's, once it has dropped root).
    pub fn current() -> Runner {
        // SAFETY: geteuid and getegid take no arguments and cannot fail.
        unsafe { Runner { uid: libc::geteuid(), gid: libc::getegid() } }
    }

    /// Whether the permission bits of `meta` grant `bits` (r=4, x=1) to this runner, as the
    /// kernel decides: the owner's bits for the owner, else the group's for the group, else
    /// everyone's. Root may execute a file that anyone may.
    fn may(&self, meta: &std::fs::Metadata, bits: u32) -> bool {
        use std::os::unix::fs::MetadataExt;
        let mode = meta.mode();
        if self.uid == 0 {
            return bits != 1 || mode & 0o111 != 0;
        }
        let granted = if meta.uid() == self.uid {
            mode >> 6
        } else if meta.gid() == self.gid {
            mode >> 3
        } else {
            mode
        };
        granted & bits == bits
    }
}

/// Looks at `file` (a name under a script directory, found by [`in_alias`]) for `runner`;
/// `interpreted`: its extension has a CGIInterpreter, so it must be readable by the runner
/// rather than executable.
pub fn alias_verdict(file: &Path, interpreted: bool, runner: Runner) -> Verdict {
    match std::fs::metadata(file) {
        Ok(meta) if !meta.is_file() => Verdict::Forbidden,
        Ok(meta) if !runner.may(&meta, if interpreted { 4 } else { 1 }) => Verdict::Forbidden,
        Ok(_) => Verdict::Run,
        Err(error) if missing(&error) => Verdict::NotFound,
        Err(_) => Verdict::Unknown,
    }
}

/// The script a `ScriptAliasMatch` path names: `segments` (plain names) under `dir` are walked
/// as Apache's directory walk does, and the first that is not a directory is the script (its
/// index); what follows it is PATH_INFO. `Err`: no script (a name missing, `NotFound`; only
/// directories, `Forbidden`; a name that could not be looked at, `Unknown`).
pub fn locate(dir: &Path, segments: &[&str]) -> Result<usize, Verdict> {
    let mut path = dir.to_path_buf();
    for (index, segment) in segments.iter().enumerate() {
        if !plain_name(segment) {
            return Err(Verdict::NotFound);
        }
        path.push(segment);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => continue,
            Ok(_) => return Ok(index),
            Err(error) if missing(&error) => return Err(Verdict::NotFound),
            Err(_) => return Err(Verdict::Unknown),
        }
    }
    Err(Verdict::Forbidden)
}

/// An error that says the file is not there (rather than that it could not be looked at).
pub fn missing(error: &std::io::Error) -> bool {
    matches!(error.kind(), std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory)
}

/// Whether a file name has one of the `CGIInterpreter` extensions (with their dot), in any case.
pub fn has_extension<'e>(name: &str, mut extensions: impl Iterator<Item = &'e str>) -> bool {
    extensions.any(|ext| {
        name.len() > ext.len()
            && name.is_char_boundary(name.len() - ext.len())
            && name[name.len() - ext.len()..].eq_ignore_ascii_case(ext)
    })
}

/// A single path segment that names a file in its directory and nothing else.
pub fn plain_name(name: &str) -> bool {
    !(name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']))
}

/// The non-empty segments of a normalised, decoded path; `None` if any is not a plain name
/// (which a normalised path never has).
pub fn segments(path: &str) -> Option<Vec<&str>> {
    path.split('/').filter(|s| !s.is_empty()).map(|s| plain_name(s).then_some(s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_is_the_first_segment_and_only_a_plain_name() {
        let found = in_alias("run.sh/a b/c").unwrap();
        assert_eq!((found.name, found.info), ("run.sh", "/a b/c"));
        assert_eq!(in_alias("/x").unwrap().name, "x");
        for bad in ["", "/", "..", ".", "a\\b"] {
            assert_eq!(in_alias(bad), None, "{bad}");
        }
    }

    #[test]
    fn verdicts_from_the_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("weir-script-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("run"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(dir.join("run"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(dir.join("plain.php"), "<?php").unwrap();
        std::fs::set_permissions(dir.join("plain.php"), std::fs::Permissions::from_mode(0o644)).unwrap();
        let me = Runner::current();
        assert_eq!(alias_verdict(&dir.join("run"), false, me), Verdict::Run);
        assert_eq!(alias_verdict(&dir.join("plain.php"), false, me), Verdict::Forbidden);
        assert_eq!(alias_verdict(&dir.join("plain.php"), true, me), Verdict::Run);
        assert_eq!(alias_verdict(&dir.join("sub"), false, me), Verdict::Forbidden);
        assert_eq!(alias_verdict(&dir.join("nope"), false, me), Verdict::NotFound);
        assert_eq!(alias_verdict(&dir.join("run/below"), false, me), Verdict::NotFound);
        // Executable by its owner only: not by another account, nor by one in another group.
        let owner_only = dir.join("owner-only");
        std::fs::write(&owner_only, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&owner_only, std::fs::Permissions::from_mode(0o700)).unwrap();
        let stranger = Runner { uid: 65534, gid: 65534 };
        let verdict = alias_verdict(&owner_only, false, stranger);
        if me.uid != 65534 {
            assert_eq!(verdict, Verdict::Forbidden);
        }
        assert_eq!(alias_verdict(&owner_only, false, Runner { uid: 0, gid: 0 }), Verdict::Run);
        assert_eq!(locate(&dir, &["sub", "..", "run"]), Err(Verdict::NotFound));
        assert_eq!(locate(&dir, &["run", "x", "y"]), Ok(0));
        assert_eq!(locate(&dir, &["sub"]), Err(Verdict::Forbidden));
        assert_eq!(locate(&dir, &[]), Err(Verdict::Forbidden));
        assert_eq!(locate(&dir, &["sub", "nope"]), Err(Verdict::NotFound));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn extensions_match_in_any_case_and_never_the_whole_name() {
        let exts = [".php"];
        assert!(has_extension("index.PHP", exts.iter().copied()));
        assert!(!has_extension(".php", exts.iter().copied()));
        assert!(!has_extension("a.txt", exts.iter().copied()));
        assert!(!has_extension("é.php".trim_end_matches(".php"), exts.iter().copied()));
    }
}
