//! Disk space for bodies the edge does not keep in memory: request bodies waiting for a worker
//! and responses waiting for a slow client. Files are unnamed (`O_TMPFILE` where the file system
//! has it, else created and unlinked at once), so nothing is left behind whatever happens to the
//! process, and all of them together stay under `SpillLimit`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::source::Source;

/// How often each kind of spill-space error line may repeat.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The spill directory and its caps, shared by every request of the edge.
#[derive(Debug)]
pub struct SpillSpace {
    /// `SpillDir`; `None`: the system's temporary directory.
    dir: Option<PathBuf>,
    /// `SpillLimit`, bytes.
    limit: u64,
    /// Most bytes one source may hold (SpillLimitPerSource, by default a quarter of the
    /// limit): without it one address with a few slow uploads holds the whole space and every
    /// other client's body gets 503.
    share: u64,
    /// Bytes reserved by live spill files now, in all and per source.
    held: Mutex<Held>,
    /// The error-log lines, each at most once a minute: a full space, a source at its share,
    /// and a SpillDir that cannot be written (which otherwise logged once per response chunk).
    full_log: RateLimited,
    share_log: RateLimited,
    io_log: RateLimited,
}

#[derive(Debug, Default)]
struct Held {
    total: u64,
    /// Only sources holding something: an entry goes when its count is back to zero.
    by_source: HashMap<Source, u64>,
}

/// Why nothing more may be spilled until some is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Full {
    #[error("SpillLimit reached")]
    Total,
    #[error("SpillLimitPerSource reached")]
    Source,
}

impl SpillSpace {
    /// `share`: the most one source may hold (clamped to `limit`).
    pub fn new(dir: Option<PathBuf>, limit: u64, share: u64) -> Arc<SpillSpace> {
        Arc::new(SpillSpace {
            dir,
            limit,
            share: share.min(limit),
            held: Mutex::new(Held::default()),
            full_log: RateLimited::default(),
            share_log: RateLimited::default(),
            io_log: RateLimited::default(),
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes held in spill files now.
    pub fn used(&self) -> u64 {
        self.held().total
    }

    /// Bytes one source holds now.
    pub fn used_by(&self, source: Source) -> u64 {
        self.held().by_source.get(&source).copied().unwrap_or(0)
    }

    /// The most one source may hold.
    pub fn share(&self) -> u64 {
        self.share
    }

    /// Where spill files go, for messages.
    pub fn dir_name(&self) -> String {
        self.dir
            .as_ref()
            .map_or_else(|| std::env::temp_dir().display().to_string(), |d| d.display().to_string())
    }

    /// A new, empty, unnamed file whose bytes count against `owner`'s share.
    pub fn file(self: &Arc<Self>, owner: Source) -> std::io::Result<SpillFile> {
        let file = match &self.dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        Ok(SpillFile { file, reserved: 0, owner, space: self.clone() })
    }

    fn reserve(&self, owner: Source, bytes: u64) -> Result<(), Full> {
        let mut held = self.held();
        let total = held.total.checked_add(bytes).filter(|&n| n <= self.limit).ok_or(Full::Total)?;
        let mine = held.by_source.get(&owner).copied().unwrap_or(0);
        let mine = mine.checked_add(bytes).filter(|&n| n <= self.share).ok_or(Full::Source)?;
        held.total = total;
        held.by_source.insert(owner, mine);
        Ok(())
    }

    fn release(&self, owner: Source, bytes: u64) {
        if bytes == 0 {
            return;
        }
        let mut held = self.held();
        held.total = held.total.saturating_sub(bytes);
        if let Some(mine) = held.by_source.get_mut(&owner) {
            *mine = mine.saturating_sub(bytes);
            if *mine == 0 {
                held.by_source.remove(&owner);
            }
        }
    }

    /// The error-log line for a full spill space or a source at its share, at most once a
    /// minute each, with how many went unlogged since.
    pub fn log_full(&self, full: Full, source: Source) {
        match full {
            Full::Total => {
                if let Some(unlogged) = self.full_log.due() {
                    tracing::error!(
                        limit = self.limit,
                        unlogged,
                        "SpillLimit reached: request bodies are refused with 503 and responses wait for their clients; consider raising SpillLimit ({unlogged} more since the last such line)"
                    );
                }
            }
            Full::Source => {
                if let Some(unlogged) = self.share_log.due() {
                    tracing::warn!(
                        %source,
                        share = self.share,
                        unlogged,
                        "SpillLimitPerSource reached by {source}: its request bodies are refused with 503 and its responses wait for it; others are unaffected ({unlogged} more since the last such line)"
                    );
                }
            }
        }
    }

    /// The error-log line for a spill file that could not be made or written, at most once a
    /// minute, with how many failed unlogged since.
    pub fn log_io(&self, error: &std::io::Error) {
        if let Some(unlogged) = self.io_log.due() {
            tracing::error!(
                %error,
                dir = %self.dir_name(),
                unlogged,
                "could not create or write a spill file in SpillDir {}: {error}; request bodies that need one get 503 and responses wait for their clients ({unlogged} more since the last such line)",
                self.dir_name()
            );
        }
    }
}

/// A log line allowed at most once per [`LOG_EVERY`], counting the ones held back.
#[derive(Debug, Default)]
struct RateLimited(Mutex<(Option<Instant>, u64)>);

impl RateLimited {
    /// `Some(count held back since the last line)` when a line may go out now.
    fn due(&self) -> Option<u64> {
        let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let (last, held_back) = &mut *state;
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            Some(std::mem::take(held_back))
        } else {
            *held_back += 1;
            None
        }
    }
}

/// An unnamed file whose bytes count against the spill space until it is dropped or emptied.
#[derive(Debug)]
pub struct SpillFile {
    file: std::fs::File,
    /// Bytes of the cap this file holds: its length.
    reserved: u64,
    /// The source whose share the bytes count against.
    owner: Source,
    space: Arc<SpillSpace>,
}

/// Why bytes could not be written to a spill file.
#[derive(Debug, thiserror::Error)]
pub enum SpillError {
    #[error(transparent)]
    Full(#[from] Full),
    #[error("could not write a spill file: {0}")]
    Io(#[from] std::io::Error),
}

impl SpillFile {
    /// Writes `bytes` at `offset` (the file's end), counting them against the cap first.
    /// Synchronous: page-cache writes of a few KiB do not stall the runtime noticeably.
    pub fn write_at(&mut self, bytes: &[u8], offset: u64) -> Result<(), SpillError> {
        use std::os::unix::fs::FileExt;
        let end = offset + bytes.len() as u64;
        if end > self.reserved {
            self.space.reserve(self.owner, end - self.reserved)?;
            self.reserved = end;
        }
        self.file.write_all_at(bytes, offset)?;
        Ok(())
    }

    /// Reads at `offset` into `buffer`; the count read.
    pub fn read_at(&self, buffer: &mut [u8], offset: u64) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        self.file.read_at(buffer, offset)
    }

    /// Empties the file and gives its bytes back to the cap.
    pub fn clear(&mut self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        self.space.release(self.owner, self.reserved);
        self.reserved = 0;
        Ok(())
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        self.space.release(self.owner, self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source::of(text.parse().unwrap())
    }

    #[test]
    fn files_count_against_the_cap_until_dropped_or_cleared() {
        let space = SpillSpace::new(None, 100, 100);
        let me = source("192.0.2.1");
        let mut a = space.file(me).unwrap();
        a.write_at(&[1; 60], 0).unwrap();
        let mut b = space.file(me).unwrap();
        assert!(matches!(b.write_at(&[2; 50], 0), Err(SpillError::Full(Full::Total))));
        b.write_at(&[2; 40], 0).unwrap();
        assert_eq!(space.used(), 100);
        let mut back = [0u8; 40];
        assert_eq!(b.read_at(&mut back, 0).unwrap(), 40);
        assert_eq!(back, [2; 40]);
        a.clear().unwrap();
        assert_eq!(space.used(), 40);
        drop(b);
        assert_eq!(space.used(), 0);
        assert_eq!(space.used_by(me), 0);
    }

    #[test]
    fn one_source_holds_at_most_its_share_and_others_are_unaffected() {
        let space = SpillSpace::new(None, 100, 25);
        let hog = source("192.0.2.2");
        let other = source("192.0.2.3");
        let mut files = Vec::new();
        for _ in 0..4 {
            files.push(space.file(hog).unwrap());
        }
        files[0].write_at(&[0; 20], 0).unwrap();
        assert!(matches!(files[1].write_at(&[0; 10], 0), Err(SpillError::Full(Full::Source))));
        files[1].write_at(&[0; 5], 0).unwrap();
        assert_eq!(space.used_by(hog), 25);
        let mut mine = space.file(other).unwrap();
        mine.write_at(&[1; 25], 0).unwrap();
        assert_eq!(space.used(), 50);
        drop(files);
        assert_eq!(space.used_by(hog), 0);
        assert_eq!(space.used(), 25);
    }

    #[test]
    fn a_rate_limited_line_counts_what_it_held_back() {
        let line = RateLimited::default();
        assert_eq!(line.due(), Some(0));
        assert_eq!(line.due(), None);
        assert_eq!(line.due(), None);
        *line.0.lock().unwrap() = (Some(Instant::now() - LOG_EVERY), 2);
        assert_eq!(line.due(), Some(2));
    }
}
