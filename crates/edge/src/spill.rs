//! Disk space for bodies the edge does not keep in memory: request bodies waiting for a worker
//! and responses waiting for a slow client. Files are unnamed (`O_TMPFILE` where the file system
//! has it, else created and unlinked at once), so nothing is left behind whatever happens to the
//! process, and all of them together stay under `SpillLimit`.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use crate::log_gate::LogGate;
use crate::source::Source;

/// How long a response that can be neither kept in memory nor spilled waits for its client
/// to read before it is cut: meanwhile it holds a worker, and a source at its spill share with
/// a few never-reading connections otherwise held as many workers for the whole Timeout.
pub const CUT_AFTER: Duration = Duration::from_secs(2);

/// Body bytes the edge keeps in memory at once, across all requests: request bodies being read
/// and responses waiting for their clients. Each body may keep up to 256 KiB in memory, but
/// nothing bounded how many did: one address with ten h2 connections of 100 streams each took
/// the edge from 12 MB to 281 MB. 64 MiB is 256 bodies held whole in memory, a small part of
/// an appliance's RAM; past it bodies go to spill files at once (disk, under SpillLimit).
pub const MEMORY_BUDGET: u64 = 64 * 1024 * 1024;

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
    /// Body bytes in memory now, in all and per source, under [`MEMORY_BUDGET`] and a quarter
    /// of it per source (as the spill share), so one source cannot crowd out the others.
    memory: Mutex<Held>,
    memory_limit: u64,
    memory_share: u64,
    /// The error-log lines, each at most once a minute: a full space, a source at its share,
    /// and a SpillDir that cannot be written (which otherwise logged once per response chunk).
    full_log: LogGate,
    share_log: LogGate,
    io_log: LogGate,
    cut_log: LogGate,
}

#[derive(Debug, Default)]
struct Held {
    total: u64,
    /// Only sources holding something: an entry goes when its count is back to zero.
    by_source: HashMap<Source, u64>,
}

impl Held {
    fn reserve(&mut self, owner: Source, bytes: u64, limit: u64, share: u64) -> Result<(), Full> {
        let total = self.total.checked_add(bytes).filter(|&n| n <= limit).ok_or(Full::Total)?;
        let mine = self.by_source.get(&owner).copied().unwrap_or(0);
        let mine = mine.checked_add(bytes).filter(|&n| n <= share).ok_or(Full::Source)?;
        self.total = total;
        self.by_source.insert(owner, mine);
        Ok(())
    }

    fn release(&mut self, owner: Source, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.total = self.total.saturating_sub(bytes);
        if let Some(mine) = self.by_source.get_mut(&owner) {
            *mine = mine.saturating_sub(bytes);
            if *mine == 0 {
                self.by_source.remove(&owner);
            }
        }
    }
}

/// Body bytes one body keeps in memory, counted against the edge's memory budget until they
/// are given back or the hold is dropped.
#[derive(Debug)]
pub struct MemoryHold {
    space: Arc<SpillSpace>,
    owner: Source,
    bytes: u64,
}

impl MemoryHold {
    /// Counts `bytes` more; false (and nothing counted) when the budget or the owner's share
    /// of it would be passed: the body must then go to a spill file.
    pub fn grow(&mut self, bytes: usize) -> bool {
        let space = &self.space;
        let mut memory = space.memory.lock().unwrap_or_else(PoisonError::into_inner);
        let fits = memory.reserve(self.owner, bytes as u64, space.memory_limit, space.memory_share).is_ok();
        if fits {
            self.bytes += bytes as u64;
        }
        fits
    }

    /// Gives back `bytes` (no more than held).
    pub fn shrink(&mut self, bytes: usize) {
        let bytes = (bytes as u64).min(self.bytes);
        self.bytes -= bytes;
        self.space.memory.lock().unwrap_or_else(PoisonError::into_inner).release(self.owner, bytes);
    }

    /// Gives back everything.
    pub fn clear(&mut self) {
        self.shrink(usize::try_from(self.bytes).unwrap_or(usize::MAX));
    }
}

impl Drop for MemoryHold {
    fn drop(&mut self) {
        self.clear();
    }
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
        SpillSpace::with_memory(dir, limit, share, MEMORY_BUDGET)
    }

    /// As [`SpillSpace::new`], with `memory` bytes of bodies in memory at most (a quarter per
    /// source).
    pub fn with_memory(dir: Option<PathBuf>, limit: u64, share: u64, memory: u64) -> Arc<SpillSpace> {
        Arc::new(SpillSpace {
            dir,
            limit,
            share: share.min(limit),
            held: Mutex::new(Held::default()),
            memory: Mutex::new(Held::default()),
            memory_limit: memory,
            memory_share: memory / 4,
            full_log: LogGate::default(),
            share_log: LogGate::default(),
            io_log: LogGate::default(),
            cut_log: LogGate::default(),
        })
    }

    fn held(&self) -> MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A hold on memory for one body, empty until it grows.
    pub fn memory_hold(self: &Arc<Self>, owner: Source) -> MemoryHold {
        MemoryHold { space: self.clone(), owner, bytes: 0 }
    }

    /// Body bytes held in memory now.
    pub fn memory_used(&self) -> u64 {
        self.memory.lock().unwrap_or_else(PoisonError::into_inner).total
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
        self.held().reserve(owner, bytes, self.limit, self.share)
    }

    fn release(&self, owner: Source, bytes: u64) {
        self.held().release(owner, bytes);
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

    /// The error-log line for a response cut because it could be neither kept nor spilled
    /// while its client read nothing, at most once a minute, with how many went unlogged.
    pub fn log_cut(&self, source: Source, why: &str) {
        if let Some(unlogged) = self.cut_log.due() {
            tracing::warn!(
                %source,
                unlogged,
                "a response to {source} was cut: it could not be spilled ({why}) and its client read nothing for {}s; its worker is free ({unlogged} more since the last such line)",
                CUT_AFTER.as_secs()
            );
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
}
