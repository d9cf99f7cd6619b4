//! Connections to workers that offered to take another request, kept for the next one.
//!
//! A new Unix connection per request costs both processes a socket, a `connect()`/`accept()`
//! pair, two epoll registrations and two closes, and often a second wake-up of the worker (it
//! leaves `accept()` before the request is written). Reusing one costs a write and a read.
//!
//! A worker waits [`weir_wire::WORKER_KEEPALIVE`] for the next request, then closes and
//! goes back to `accept()`; the edge reuses a connection only within `REUSE_WITHIN` of its
//! last response, well inside that wait, so the two ends rarely disagree about whether it is
//! open. When they do (the worker was retired or stopped in between), the worker closes with
//! the request unread and the edge sends it again on another connection: see
//! [`crate::pool_client::PoolClient::send`].

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::net::UnixStream;

/// How long after its last response the edge still reuses a connection: half a second less than
/// the worker waits, a margin no scheduling delay on a loaded machine comes near.
const REUSE_WITHIN: Duration = weir_wire::WORKER_KEEPALIVE.saturating_sub(Duration::from_millis(500));

/// Idle connections, newest last, at most `most` of them: each holds a worker out of `accept()`,
/// and the pool never runs more requests at once than MaxRequestWorkers, so more than that
/// would never be reused.
pub struct IdleWorkers {
    idle: Mutex<VecDeque<(UnixStream, Instant)>>,
    most: usize,
    /// Requests on new connections, which need a worker in `accept()`.
    connecting: AtomicUsize,
    /// Where workers say whether they wait in `accept()`.
    scoreboard: Option<weir_scoreboard::Scoreboard>,
}

impl std::fmt::Debug for IdleWorkers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleWorkers").field("most", &self.most).field("connecting", &self.connecting).finish()
    }
}

/// Held by a request on a new connection until its answer is in.
pub struct Connecting<'a>(&'a AtomicUsize);

impl Drop for Connecting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl IdleWorkers {
    /// `scoreboard`: the pool's, to see whether any worker waits in `accept()` (without one,
    /// connections are kept only while no request needs a new one).
    pub fn new(most: usize, scoreboard: Option<weir_scoreboard::Scoreboard>) -> IdleWorkers {
        IdleWorkers { idle: Mutex::new(VecDeque::new()), most, connecting: AtomicUsize::new(0), scoreboard }
    }

    /// Marks a request as needing a worker in `accept()`. While one does and no worker waits
    /// there, no connection is kept, so the next worker to finish goes back to `accept()`:
    /// otherwise a pool at MaxRequestWorkers whose workers were all reused back to back would
    /// leave that request in the listen backlog until Timeout.
    pub fn connecting(&self) -> Connecting<'_> {
        self.connecting.fetch_add(1, Ordering::AcqRel);
        Connecting(&self.connecting)
    }

    /// The connection whose worker answered most recently, if one is still fresh and open.
    pub fn take(&self) -> Option<UnixStream> {
        let mut stale = Vec::new();
        let found = {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            loop {
                let Some((stream, since)) = idle.pop_back() else { break None };
                if since.elapsed() >= REUSE_WITHIN {
                    // The newest is too old, so are all below it.
                    stale.push(stream);
                    stale.extend(idle.drain(..).map(|(stream, _)| stream));
                    break None;
                }
                if still_open(&stream) {
                    break Some(stream);
                }
                stale.push(stream);
            }
        };
        // Closed outside the lock.
        drop(stale);
        found
    }

    /// Keeps a connection whose worker offered another request, and lets go of those too old
    /// to be reused (their workers have gone back to `accept()` or soon will).
    pub fn put(&self, stream: UnixStream) {
        if self.connecting.load(Ordering::Acquire) > 0 && !self.a_worker_accepts() {
            return;
        }
        let mut stale = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
            while idle.front().is_some_and(|(_, since)| since.elapsed() >= REUSE_WITHIN) {
                stale.extend(idle.pop_front().map(|(stream, _)| stream));
            }
            if idle.len() < self.most {
                idle.push_back((stream, Instant::now()));
            }
        }
        drop(stale);
    }
}

impl IdleWorkers {
    fn a_worker_accepts(&self) -> bool {
        self.scoreboard
            .is_some_and(|board| board.slots().any(|slot| slot.state() == weir_scoreboard::State::Waiting))
    }
}

/// Whether a kept connection is still open: the worker has neither closed it (retired, stopped,
/// timed out) nor sent anything unasked. Costs no system call while tokio has seen no event.
fn still_open(stream: &UnixStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(error) if error.kind() == std::io::ErrorKind::WouldBlock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_closed_or_stale_connection_is_never_handed_out() {
        let idle = IdleWorkers::new(2, None);
        let (open, _open_peer) = UnixStream::pair().unwrap();
        let (closed, closed_peer) = UnixStream::pair().unwrap();
        drop(closed_peer);
        closed.readable().await.unwrap();
        idle.put(open);
        idle.put(closed);
        let (extra, _extra_peer) = UnixStream::pair().unwrap();
        idle.put(extra);
        assert!(idle.take().is_some(), "the open one, below the closed one");
        assert!(idle.take().is_none(), "the closed one was dropped, the third never kept");

        let waiting = idle.connecting();
        let (while_waiting, _peer) = UnixStream::pair().unwrap();
        idle.put(while_waiting);
        drop(waiting);
        assert!(idle.take().is_none(), "kept while a request waited for accept()");

        let (aging, _aging_peer) = UnixStream::pair().unwrap();
        idle.put(aging);
        std::thread::sleep(REUSE_WITHIN);
        assert!(idle.take().is_none(), "too old to trust");
    }
}
