//! Disk space for bodies the edge does not keep in memory: request bodies waiting for a worker
//! and responses waiting for a slow client. Files are unnamed (`O_TMPFILE` where the file system
//! has it, else created and unlinked at once), so nothing is left behind whatever happens to the
//! process, and all of them together stay under `SpillLimit`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often the "SpillLimit reached" line may repeat.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The spill directory and its cap, shared by every request of the edge.
#[derive(Debug)]
pub struct SpillSpace {
    /// `SpillDir`; `None`: the system's temporary directory.
    dir: Option<PathBuf>,
    /// `SpillLimit`, bytes.
    limit: u64,
    /// Bytes reserved by live spill files now.
    used: AtomicU64,
    last_logged: Mutex<Option<Instant>>,
}

/// The cap is reached: nothing more may be spilled until some is released.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("SpillLimit reached")]
pub struct Full;

impl SpillSpace {
    pub fn new(dir: Option<PathBuf>, limit: u64) -> Arc<SpillSpace> {
        Arc::new(SpillSpace { dir, limit, used: AtomicU64::new(0), last_logged: Mutex::new(None) })
    }

    /// Bytes held in spill files now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Acquire)
    }

    /// A new, empty, unnamed file.
    pub fn file(self: &Arc<Self>) -> std::io::Result<SpillFile> {
        let file = match &self.dir {
            Some(dir) => tempfile::tempfile_in(dir)?,
            None => tempfile::tempfile()?,
        };
        Ok(SpillFile { file, reserved: 0, space: self.clone() })
    }

    fn reserve(&self, bytes: u64) -> Result<(), Full> {
        let mut used = self.used.load(Ordering::Acquire);
        loop {
            let next = used.checked_add(bytes).filter(|&n| n <= self.limit).ok_or(Full)?;
            match self.used.compare_exchange_weak(used, next, Ordering::AcqRel, Ordering::Acquire) {
                Ok(_) => return Ok(()),
                Err(now) => used = now,
            }
        }
    }

    fn release(&self, bytes: u64) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    /// The error-log line for a full spill space, at most once a minute.
    pub fn log_full(&self) {
        let mut last = self.last_logged.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::error!(
                limit = self.limit,
                "SpillLimit reached: request bodies are refused with 503 and responses wait for their clients; consider raising SpillLimit"
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
            self.space.reserve(end - self.reserved)?;
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
        self.space.release(self.reserved);
        self.reserved = 0;
        Ok(())
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        self.space.release(self.reserved);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_count_against_the_cap_until_dropped_or_cleared() {
        let space = SpillSpace::new(None, 100);
        let mut a = space.file().unwrap();
        a.write_at(&[1; 60], 0).unwrap();
        let mut b = space.file().unwrap();
        assert!(matches!(b.write_at(&[2; 50], 0), Err(SpillError::Full(_))));
        b.write_at(&[2; 40], 0).unwrap();
        assert_eq!(space.used(), 100);
        let mut back = [0u8; 40];
        assert_eq!(b.read_at(&mut back, 0).unwrap(), 40);
        assert_eq!(back, [2; 40]);
        a.clear().unwrap();
        assert_eq!(space.used(), 40);
        drop(b);
        assert_eq!(space.used(), 0);
    }
}
