//! Admission to the pool: at most MaxRequestWorkers requests in the pool at once; the rest wait
//! in a bounded FIFO queue for at most QueueTimeout, then get 503 with Retry-After.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use weir_scoreboard::Counters;

/// How often Apache's "reached MaxRequestWorkers" line may repeat.
const LOG_EVERY: Duration = Duration::from_secs(60);

/// The gate in front of the pool.
pub struct Admission {
    /// One permit per worker a request may occupy. tokio's semaphore is fair: waiters are
    /// served first come, first served.
    permits: Arc<Semaphore>,
    /// Requests waiting now.
    waiting: AtomicUsize,
    /// Most requests allowed to wait.
    queue_limit: usize,
    queue_timeout: Duration,
    last_logged: Mutex<Option<Instant>>,
}

/// Why a request was not admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The queue was full on arrival.
    QueueFull,
    /// QueueTimeout passed in the queue.
    Timeout,
}

impl Admission {
    pub fn new(max_request_workers: usize, queue_timeout: Duration) -> Admission {
        let workers = max_request_workers.max(1);
        Admission {
            permits: Arc::new(Semaphore::new(workers)),
            waiting: AtomicUsize::new(0),
            // A queue a few times the pool deep absorbs bursts without letting a flood pile up.
            queue_limit: (workers * 4).max(64),
            queue_timeout,
            last_logged: Mutex::new(None),
        }
    }

    /// Waits for a place in the pool, keeping the queue's figures in `counters`.
    pub async fn admit(&self, counters: &Counters) -> Result<OwnedSemaphorePermit, Refused> {
        if let Ok(permit) = self.permits.clone().try_acquire_owned() {
            return Ok(permit);
        }
        self.log_full();
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue_limit {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Refused::QueueFull);
        }
        counters.queued.fetch_add(1, Ordering::Relaxed);
        counters.queue_length.fetch_add(1, Ordering::Relaxed);
        let waited = Instant::now();
        let result = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned()).await;
        counters.queue_length.fetch_sub(1, Ordering::Relaxed);
        counters.queue_wait_us.fetch_add(waited.elapsed().as_micros() as u64, Ordering::Relaxed);
        self.waiting.fetch_sub(1, Ordering::AcqRel);
        match result {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refused::Timeout),
        }
    }

    /// Requests in the queue now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Seconds a refused client should wait before retrying.
    pub fn retry_after(&self) -> u64 {
        self.queue_timeout.as_secs().clamp(1, 30)
    }

    fn log_full(&self) {
        let Ok(mut last) = self.last_logged.lock() else {
            return;
        };
        if last.is_none_or(|at| at.elapsed() >= LOG_EVERY) {
            *last = Some(Instant::now());
            tracing::error!(
                "AH00161: server reached MaxRequestWorkers setting, consider raising the MaxRequestWorkers setting"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn queue_then_timeout() {
        let board = weir_scoreboard::Scoreboard::create(1).unwrap();
        let counters = board.counters();
        let admission = Admission::new(1, Duration::from_secs(2));
        let first = admission.admit(counters).await.unwrap();
        let started = Instant::now();
        assert_eq!(admission.admit(counters).await.unwrap_err(), Refused::Timeout);
        assert!(started.elapsed() >= Duration::from_secs(2));
        assert_eq!(counters.queued.load(Ordering::Relaxed), 1);
        drop(first);
        assert!(admission.admit(counters).await.is_ok());
    }
}
