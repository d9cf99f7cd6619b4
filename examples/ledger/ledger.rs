//! The ledger handler. Every worker has its own copy; they share the file, serialised by an
//! exclusive `flock`, and each keeps an index of the ids it has read, brought up to date from the
//! file under the lock before every decision.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;

use weir::{Handler, Request, Response};

/// One record per line: `id<TAB>hex(body)\n`. Hex keeps any body on one line.
pub struct Ledger {
    path: PathBuf,
    /// Opened in each worker by `init`.
    file: Option<File>,
    /// Ids of the records read so far.
    seen: HashSet<String>,
    /// How far into the file `seen` reflects.
    read_up_to: u64,
}

impl Ledger {
    pub fn new(path: PathBuf) -> Ledger {
        Ledger { path, file: None, seen: HashSet::new(), read_up_to: 0 }
    }

    fn ingest(&mut self, request: &Request) -> Response {
        let Some(id) = request.request_id().map(str::to_string) else {
            return Response::text(400, "X-Request-Id is required\n");
        };
        if id.contains(['\t', '\n']) {
            return Response::text(400, "bad X-Request-Id\n");
        }
        let Some(file) = self.file.as_ref() else {
            return Response::text(503, "ledger unavailable\n");
        };
        let _lock = match Lock::exclusive(file) {
            Ok(lock) => lock,
            Err(error) => return Response::text(503, format!("ledger lock failed: {error}\n")),
        };
        if let Err(error) = self.catch_up() {
            return Response::text(500, format!("ledger unreadable: {error}\n"));
        }
        if self.seen.contains(&id) {
            return Response::text(200, "already recorded\n");
        }
        let mut line = Vec::with_capacity(id.len() + 2 + request.body.len() * 2);
        line.extend_from_slice(id.as_bytes());
        line.push(b'\t');
        for byte in &request.body {
            line.extend_from_slice(format!("{byte:02x}").as_bytes());
        }
        line.push(b'\n');
        let Some(mut file) = self.file.as_ref() else {
            return Response::text(503, "ledger unavailable\n");
        };
        // Durable before acknowledged: a 201 means the record is on disk.
        if let Err(error) = file.write_all(&line).and_then(|()| file.sync_data()) {
            return Response::text(500, format!("ledger write failed: {error}\n"));
        }
        self.read_up_to += line.len() as u64;
        self.seen.insert(id);
        Response::text(201, "recorded\n")
    }

    fn count(&mut self) -> Response {
        let Some(file) = self.file.as_ref() else {
            return Response::text(503, "ledger unavailable\n");
        };
        let _lock = match Lock::exclusive(file) {
            Ok(lock) => lock,
            Err(error) => return Response::text(503, format!("ledger lock failed: {error}\n")),
        };
        match self.catch_up() {
            Ok(()) => Response::text(200, format!("{}\n", self.seen.len())),
            Err(error) => Response::text(500, format!("ledger unreadable: {error}\n")),
        }
    }

    /// Reads records other workers appended since this one last looked. A last line without its
    /// newline is a write cut short by a crash; it was never acknowledged, so it is cut off.
    fn catch_up(&mut self) -> std::io::Result<()> {
        let Some(mut file) = self.file.as_ref() else {
            return Ok(());
        };
        let end = file.seek(SeekFrom::End(0))?;
        if end < self.read_up_to {
            // Truncated behind our back: read it all again.
            self.seen.clear();
            self.read_up_to = 0;
        }
        file.seek(SeekFrom::Start(self.read_up_to))?;
        let mut fresh = Vec::new();
        file.read_to_end(&mut fresh)?;
        let complete = fresh.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        for line in fresh[..complete].split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            if let Some(tab) = line.iter().position(|&b| b == b'\t') {
                self.seen.insert(String::from_utf8_lossy(&line[..tab]).into_owned());
            }
        }
        self.read_up_to += complete as u64;
        if complete < fresh.len() {
            file.set_len(self.read_up_to)?;
        }
        Ok(())
    }
}

impl Handler for Ledger {
    fn init(&mut self) {
        match std::fs::OpenOptions::new().read(true).append(true).create(true).open(&self.path) {
            Ok(file) => self.file = Some(file),
            Err(error) => eprintln!("ledger: cannot open {}: {error}", self.path.display()),
        }
    }

    fn handle(&mut self, request: &Request) -> Response {
        match (request.method.as_str(), request.path()) {
            ("POST", "/ingest") => self.ingest(request),
            ("GET", "/ingest/count") => self.count(),
            (_, "/ingest") | (_, "/ingest/count") => Response::text(405, "method not allowed\n"),
            _ => Response::text(404, "not found\n"),
        }
    }
}

/// An exclusive `flock` on the ledger, released on drop (and by the kernel if the worker dies).
/// Holds the descriptor number, not a borrow: the file stays open in the handler meanwhile.
struct Lock(RawFd);

impl Lock {
    fn exclusive(file: &File) -> std::io::Result<Lock> {
        // SAFETY: flock on a descriptor the handler keeps open for as long as the lock lives.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Lock(file.as_raw_fd()))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        // SAFETY: as above.
        unsafe { libc::flock(self.0, libc::LOCK_UN) };
    }
}
