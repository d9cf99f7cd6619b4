//! Error-log lines an attacker can cause at will (a flood of refused connections, a full spill
//! space) go through a [`LogGate`]: at most one line a minute of each kind, saying how many were
//! held back, so a flood cannot fill the disk while the operator still learns of it.

use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// How often one kind of line may repeat.
pub const LOG_EVERY: Duration = Duration::from_secs(60);

/// A log line allowed at most once per [`LOG_EVERY`], counting the ones held back.
#[derive(Debug, Default)]
pub struct LogGate(Mutex<(Option<Instant>, u64)>);

impl LogGate {
    /// A gate with no line sent yet, for a `static`.
    pub const fn new() -> LogGate {
        LogGate(Mutex::new((None, 0)))
    }

    /// `Some(count held back since the last line)` when a line may go out now.
    pub fn due(&self) -> Option<u64> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gated_line_counts_what_it_held_back() {
        let line = LogGate::default();
        assert_eq!(line.due(), Some(0));
        assert_eq!(line.due(), None);
        assert_eq!(line.due(), None);
        *line.0.lock().unwrap() = (Some(Instant::now() - LOG_EVERY), 2);
        assert_eq!(line.due(), Some(2));
    }
}
