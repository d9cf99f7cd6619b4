//! How `weir reload` learns what became of the reload it asked for: the supervisor rewrites
//! `RuntimeDir/reload-status` after its first start and after every reload attempt, and the
//! command waits for an attempt newer than the one it saw before it sent SIGHUP.
//!
//! One line: `ATTEMPT running GENERATION` while a reload is under way, then `ATTEMPT ok
//! GENERATION` or `ATTEMPT failed GENERATION REASON`, where GENERATION is the one serving. The file is written like PidFile (a fresh name, never through a
//! symlink, renamed into place) in the root-owned RuntimeDir, and the command believes it only
//! when it is a regular file owned by the supervisor's user and writable by no one else.
//! A reload already under way when the command looks may have read the file before it was
//! edited, so the command waits for the verdict of an attempt numbered after the one it saw.
//! Two SIGHUPs close together may be served by one reload: both commands then report it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The file's name in RuntimeDir.
const FILE: &str = "reload-status";

/// What the supervisor records.
pub enum Outcome<'a> {
    /// The first generation is serving (attempt 0).
    Started,
    /// A reload has begun.
    Running,
    /// A new generation took over.
    Reloaded,
    /// The reload failed; the generation that was serving still is.
    Failed(&'a str),
}

/// One attempt as the command reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub attempt: u64,
    /// Still under way: no verdict yet.
    pub running: bool,
    pub ok: bool,
    pub generation: u32,
    pub reason: String,
}

pub fn path(runtime_dir: &Path) -> PathBuf {
    runtime_dir.join(FILE)
}

/// In the supervisor: records attempt `attempt`, after which `generation` serves.
pub fn write(
    runtime_dir: &Path,
    attempt: u64,
    generation: u32,
    outcome: &Outcome<'_>,
) -> std::io::Result<()> {
    let line = match outcome {
        Outcome::Started | Outcome::Reloaded => format!("{attempt} ok {generation}\n"),
        Outcome::Running => format!("{attempt} running {generation}\n"),
        // One line: a reason never spans more (it is shown to the operator as is).
        Outcome::Failed(reason) => {
            let reason: String = reason.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
            format!("{attempt} failed {generation} {reason}\n")
        }
    };
    crate::runtime_files::write_replacing(&path(runtime_dir), line.as_bytes())
}

/// In `weir reload`: the last attempt recorded, if the file can be believed. `owner` is the uid
/// the supervisor runs as.
pub fn read(runtime_dir: &Path, owner: u32) -> Result<Option<Record>, String> {
    let path = path(runtime_dir);
    let meta = match std::fs::symlink_metadata(&path) {
        Ok(meta) => meta,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(format!("{}: {error}", path.display())),
    };
    if !meta.file_type().is_file() || meta.uid() != owner || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "{} is not a regular file owned by uid {owner} and writable only by it; not believing it",
            path.display()
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map(Some).ok_or_else(|| format!("{} holds no reload record", path.display()))
}

fn parse(text: &str) -> Option<Record> {
    let line = text.lines().next()?;
    let mut fields = line.splitn(4, ' ');
    let attempt = fields.next()?.parse().ok()?;
    let (running, ok) = match fields.next()? {
        "ok" => (false, true),
        "failed" => (false, false),
        "running" => (true, false),
        _ => return None,
    };
    let generation = fields.next()?.parse().ok()?;
    let reason = fields.next().unwrap_or("").to_string();
    Some(Record { attempt, running, ok, generation, reason })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_as_written() {
        let dir = tempfile::tempdir().unwrap();
        let me = nix::unistd::Uid::effective().as_raw();
        assert_eq!(read(dir.path(), me).unwrap(), None);
        write(dir.path(), 0, 1, &Outcome::Started).unwrap();
        assert_eq!(
            read(dir.path(), me).unwrap(),
            Some(Record { attempt: 0, running: false, ok: true, generation: 1, reason: String::new() })
        );
        write(dir.path(), 3, 1, &Outcome::Running).unwrap();
        assert!(read(dir.path(), me).unwrap().unwrap().running);
        write(dir.path(), 3, 2, &Outcome::Failed("User cannot change\non reload")).unwrap();
        let record = read(dir.path(), me).unwrap().unwrap();
        assert_eq!((record.attempt, record.ok, record.generation), (3, false, 2));
        assert_eq!(record.reason, "User cannot change on reload");
        // Someone else's file is not believed.
        assert!(read(dir.path(), me + 1).is_err());
    }
}
