//! A worker's response on its way to the client: the worker side writes as fast as the worker
//! answers, the client side reads at the client's pace, and the worker is released as soon as
//! the whole response is in, whatever the client's speed.
//!
//! Up to [`MEMORY`] bytes wait in memory; beyond that they go to a spill file (counted against
//! SpillLimit), which is emptied each time the client catches up; memory counts against the
//! edge's memory budget, and a response past it spills at once. When the spill space is full
//! the writer waits for the client (backpressure), so memory stays bounded either way, but only
//! for [`CUT_AFTER`] without the client reading: then the response is cut and the worker freed.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::Notify;

use crate::source::Source;
use crate::spill::{MemoryHold, SpillError, SpillFile, SpillSpace, CUT_AFTER};

/// Bytes of a response held in memory before it spills: 256 KiB covers most responses whole
/// (so they never touch the disk) and is what a client connection's socket and TLS buffers
/// hold anyway; a thousand slow readers then cost at most 256 MiB, bounded by MaxConnections.
pub const MEMORY: usize = 256 * 1024;

/// Bytes read back from the spill file per frame to the client.
const FILE_READ: usize = 64 * 1024;

/// How often a writer blocked on a full spill space looks again: space freed by other
/// responses wakes nobody here.
const FULL_RETRY: Duration = Duration::from_millis(50);

struct State {
    memory: VecDeque<Bytes>,
    memory_len: usize,
    /// `memory_len`, counted against the edge's memory budget.
    hold: MemoryHold,
    file: Option<SpillFile>,
    /// Bytes written to the file, and read back from it, since it was last emptied.
    file_written: u64,
    file_read: u64,
    /// Set when the writer is done: `Ok` for a whole response, `Err` for one cut short.
    finished: Option<Result<(), String>>,
    /// The cut was reported to the reader.
    error_taken: bool,
    reader: Option<Waker>,
    reader_gone: bool,
}

struct Shared {
    state: Mutex<State>,
    /// The reader took something (or went away).
    progress: Notify,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The worker's side.
pub struct SpoolWriter {
    shared: Arc<Shared>,
    space: Arc<SpillSpace>,
    /// The client, whose share of the spill space its slow reading uses.
    owner: Source,
    done: bool,
}

/// The client's side: a response body.
pub struct SpoolBody {
    shared: Arc<Shared>,
}

/// The client went away; nothing more is wanted.
#[derive(Debug)]
pub struct ReaderGone;

/// A new spool, spilling into `space` on `owner`'s share.
pub fn spool(space: Arc<SpillSpace>, owner: Source) -> (SpoolWriter, SpoolBody) {
    let state = State {
        memory: VecDeque::new(),
        memory_len: 0,
        hold: space.memory_hold(owner),
        file: None,
        file_written: 0,
        file_read: 0,
        finished: None,
        error_taken: false,
        reader: None,
        reader_gone: false,
    };
    let shared = Arc::new(Shared { state: Mutex::new(state), progress: Notify::new() });
    (SpoolWriter { shared: shared.clone(), space, owner, done: false }, SpoolBody { shared })
}

impl SpoolWriter {
    /// Resolves once the client's side of the response has been dropped (its client gone), so
    /// a producer waiting on a slow worker can stop waiting.
    pub async fn reader_gone(&self) {
        loop {
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            if self.shared.lock().reader_gone {
                return;
            }
            progress.await;
        }
    }

    /// Queues bytes for the client, waiting while both memory and the spill space are full; if
    /// the client reads nothing for [`CUT_AFTER`] meanwhile, its response is cut and this fails
    /// as for a client gone.
    pub async fn write(&mut self, bytes: &[u8]) -> Result<(), ReaderGone> {
        if bytes.is_empty() {
            return Ok(());
        }
        let mut blocked_since: Option<Instant> = None;
        let mut why = "SpillDir failing";
        loop {
            // Registered before the state is checked, so progress made in between is not lost.
            let progress = self.shared.progress.notified();
            tokio::pin!(progress);
            progress.as_mut().enable();
            {
                let mut state = self.shared.lock();
                if state.reader_gone {
                    return Err(ReaderGone);
                }
                let spilled = state.file_written > state.file_read;
                if !spilled && state.memory_len + bytes.len() <= MEMORY && state.hold.grow(bytes.len()) {
                    state.memory_len += bytes.len();
                    state.memory.push_back(Bytes::copy_from_slice(bytes));
                    wake(&mut state);
                    return Ok(());
                }
                if state.file.is_none() {
                    match self.space.file(self.owner) {
                        Ok(file) => state.file = Some(file),
                        // Rate-limited: this is retried for every chunk until the client reads.
                        Err(error) => self.space.log_io(&error),
                    }
                }
                let offset = state.file_written;
                if let Some(file) = state.file.as_mut() {
                    match file.write_at(bytes, offset) {
                        Ok(()) => {
                            state.file_written += bytes.len() as u64;
                            wake(&mut state);
                            return Ok(());
                        }
                        Err(SpillError::Full(full)) => {
                            self.space.log_full(full, self.owner);
                            why = match full {
                                crate::spill::Full::Total => "SpillLimit reached",
                                crate::spill::Full::Source => "SpillLimitPerSource reached",
                            };
                        }
                        Err(SpillError::Io(error)) => self.space.log_io(&error),
                    }
                }
                if blocked_since.get_or_insert_with(Instant::now).elapsed() >= CUT_AFTER {
                    // Dropped rather than kept for a client that reads nothing: the memory and
                    // the share go back at once, and the client sees a cut, never a whole body.
                    state.memory.clear();
                    state.memory_len = 0;
                    state.hold.clear();
                    if let Some(file) = state.file.as_mut() {
                        let _ = file.clear();
                    }
                    state.file_read = 0;
                    state.file_written = 0;
                    state.finished = Some(Err(format!("response cut: it could not be spilled ({why})")));
                    wake(&mut state);
                    drop(state);
                    self.done = true;
                    self.space.log_cut(self.owner, why);
                    return Err(ReaderGone);
                }
            }
            if tokio::time::timeout(FULL_RETRY, progress).await.is_ok() {
                // The client read something: it is draining, not stalled.
                blocked_since = None;
            }
        }
    }

    /// The whole response is in.
    pub fn finish(mut self) {
        self.end(Ok(()));
    }

    /// The response was cut short: the client's copy must end in an error, not look whole.
    pub fn fail(mut self, why: String) {
        self.end(Err(why));
    }

    fn end(&mut self, result: Result<(), String>) {
        self.done = true;
        let mut state = self.shared.lock();
        state.finished = Some(result);
        wake(&mut state);
    }
}

impl Drop for SpoolWriter {
    fn drop(&mut self) {
        if !self.done {
            self.end(Err("the response was abandoned".to_string()));
        }
    }
}

fn wake(state: &mut State) {
    if let Some(waker) = state.reader.take() {
        waker.wake();
    }
}

impl Body for SpoolBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let shared = &self.shared;
        let mut state = shared.lock();
        if let Some(bytes) = state.memory.pop_front() {
            state.memory_len -= bytes.len();
            state.hold.shrink(bytes.len());
            drop(state);
            shared.progress.notify_one();
            return Poll::Ready(Some(Ok(Frame::data(bytes))));
        }
        if state.file_read < state.file_written {
            let want =
                usize::try_from(state.file_written - state.file_read).unwrap_or(FILE_READ).min(FILE_READ);
            let mut chunk = vec![0u8; want];
            let offset = state.file_read;
            let read = match state.file.as_ref() {
                Some(file) => file.read_at(&mut chunk, offset),
                None => Err(std::io::ErrorKind::NotFound.into()),
            };
            let n = match read {
                Ok(0) => return Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into()))),
                Ok(n) => n,
                Err(error) => return Poll::Ready(Some(Err(error))),
            };
            chunk.truncate(n);
            state.file_read += n as u64;
            if state.file_read == state.file_written {
                // Caught up: the file's space goes back to the cap.
                if let Some(file) = state.file.as_mut() {
                    if let Err(error) = file.clear() {
                        return Poll::Ready(Some(Err(error)));
                    }
                }
                state.file_read = 0;
                state.file_written = 0;
            }
            drop(state);
            shared.progress.notify_one();
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(chunk)))));
        }
        match &state.finished {
            Some(Ok(())) => Poll::Ready(None),
            Some(Err(_)) if state.error_taken => Poll::Ready(None),
            Some(Err(why)) => {
                let error = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, why.clone());
                state.error_taken = true;
                Poll::Ready(Some(Err(error)))
            }
            None => {
                state.reader = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        let state = self.shared.lock();
        state.memory.is_empty()
            && state.file_read == state.file_written
            && matches!(state.finished, Some(Ok(())))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

impl Drop for SpoolBody {
    fn drop(&mut self) {
        self.shared.lock().reader_gone = true;
        self.shared.progress.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn me() -> Source {
        Source::of([192, 0, 2, 1].into())
    }

    #[tokio::test]
    async fn spills_past_memory_and_waits_at_the_cap() {
        let space = SpillSpace::new(None, 100_000, 100_000);
        let (mut writer, mut body) = spool(space.clone(), me());
        let piece = vec![5u8; 16 * 1024];
        let total = MEMORY + 96 * 1024;
        let producer = tokio::spawn(async move {
            for _ in 0..total / piece.len() {
                writer.write(&piece).await.unwrap();
            }
            writer.finish();
        });
        // The writer fills memory and the capped file, then waits for this reader.
        while space.used() < 80_000 {
            tokio::task::yield_now().await;
        }
        assert!(space.used() <= 100_000);
        let mut got = 0;
        while let Some(frame) = body.frame().await {
            got += frame.unwrap().into_data().unwrap().len();
        }
        producer.await.unwrap();
        assert_eq!(got, total);
        assert_eq!(space.used(), 0);
    }

    #[tokio::test]
    async fn a_cut_response_ends_in_an_error_and_a_gone_reader_stops_the_writer() {
        let (mut writer, mut body) = spool(SpillSpace::new(None, 0, 0), me());
        writer.write(b"abc").await.unwrap();
        writer.fail("worker died".into());
        assert_eq!(body.frame().await.unwrap().unwrap().into_data().unwrap(), "abc");
        assert!(body.frame().await.unwrap().is_err());
        let (mut writer, body) = spool(SpillSpace::new(None, 0, 0), me());
        drop(body);
        assert!(writer.write(b"x").await.is_err());
    }
}
