//! mod_reqtimeout's arithmetic: a stage (handshake, header, body) has a deadline that starts at
//! `timeout` and, with MinRate, moves later by one second for every `rate` bytes received, never
//! past `maxtimeout`. Only bytes the stage really received count (decrypted request bytes: TLS
//! records, h2 PING or empty DATA frames never move a deadline).

use std::time::Duration;

use tokio::time::Instant;
use weir_conf::edge::StageTimeout;

/// Which stage a deadline belongs to, for the log line an expiry writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Handshake,
    Header,
    Body,
}

impl Stage {
    pub fn name(self) -> &'static str {
        match self {
            Stage::Handshake => "handshake",
            Stage::Header => "header",
            Stage::Body => "body",
        }
    }
}

/// The running deadline of one stage.
#[derive(Debug, Clone)]
pub struct StageClock {
    pub stage: Stage,
    started: Instant,
    initial: Duration,
    /// The latest the deadline may move to; `None` without MinRate (the deadline is fixed).
    cap: Option<Duration>,
    /// Microseconds of extension per byte (1 s / MinRate).
    per_byte_us: u64,
    /// Bytes received in this stage.
    pub bytes: u64,
}

impl StageClock {
    /// Starts a stage now; `None` when the stage is turned off (timeout 0).
    pub fn start(stage: Stage, config: &StageTimeout) -> Option<StageClock> {
        Self::start_at(stage, config, Instant::now())
    }

    pub fn start_at(stage: Stage, config: &StageTimeout, now: Instant) -> Option<StageClock> {
        if !config.is_on() {
            return None;
        }
        let (cap, per_byte_us) = match config.min_rate {
            // Without a maximum, MinRate may extend the deadline without bound (as in
            // mod_reqtimeout), which is what a slow but steady device needs.
            Some(rate) => (Some(config.max.unwrap_or(Duration::MAX)), 1_000_000 / rate.max(1)),
            None => (None, 0),
        };
        Some(StageClock { stage, started: now, initial: config.initial, cap, per_byte_us, bytes: 0 })
    }

    /// Counts bytes received in this stage.
    pub fn received(&mut self, bytes: usize) {
        self.bytes = self.bytes.saturating_add(bytes as u64);
    }

    /// The current deadline.
    pub fn deadline(&self) -> Instant {
        let allowed = match self.cap {
            None => self.initial,
            Some(cap) => {
                let extension = Duration::from_micros(self.bytes.saturating_mul(self.per_byte_us));
                self.initial.saturating_add(extension).min(cap)
            }
        };
        self.started.checked_add(allowed).unwrap_or_else(far_future)
    }

    /// How long the stage has run.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(86_400 * 365)
}

/// The info-level line an expiry writes: enough to tell an attack from a slow cellular link.
pub fn log_expiry(clock: &StageClock, client: std::net::SocketAddr) {
    tracing::info!(
        client = %client,
        stage = clock.stage.name(),
        bytes = clock.bytes,
        elapsed_ms = clock.elapsed().as_millis() as u64,
        "AH01382: Request {} read timeout: {} bytes in {:.1} s from {}",
        clock.stage.name(),
        clock.bytes,
        clock.elapsed().as_secs_f64(),
        client.ip()
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(initial: u64, max: u64, rate: u64) -> StageTimeout {
        StageTimeout {
            initial: Duration::from_secs(initial),
            max: Some(Duration::from_secs(max)),
            min_rate: Some(rate),
        }
    }

    #[test]
    fn deadlines_follow_mod_reqtimeout() {
        let now = Instant::now();
        let mut clock = StageClock::start_at(Stage::Header, &header(2, 6, 100), now).unwrap();
        assert_eq!(clock.deadline() - now, Duration::from_secs(2));
        clock.received(100);
        assert_eq!(clock.deadline() - now, Duration::from_secs(3));
        clock.received(50);
        assert_eq!(clock.deadline() - now, Duration::from_millis(3500));
        clock.received(10_000);
        assert_eq!(clock.deadline() - now, Duration::from_secs(6), "never past the maximum");
    }

    #[test]
    fn trickling_clients_meet_their_deadline_where_the_issue_says() {
        // 50 bytes/s against 2-6,MinRate=100: deadline 2 + 0.5 t reaches t at t = 4 s.
        let cut_at = |rate_bytes_per_s: u64| {
            let now = Instant::now();
            let mut clock = StageClock::start_at(Stage::Header, &header(2, 6, 100), now).unwrap();
            for second in 1..=10u64 {
                clock.received(rate_bytes_per_s as usize);
                if clock.deadline() <= now + Duration::from_secs(second) {
                    return second;
                }
            }
            99
        };
        assert_eq!(cut_at(0), 2);
        assert_eq!(cut_at(50), 4);
        assert_eq!(cut_at(150), 6);
    }

    #[test]
    fn fixed_and_off_stages() {
        let now = Instant::now();
        let clock = StageClock::start_at(Stage::Handshake, &StageTimeout::fixed(10), now).unwrap();
        assert_eq!(clock.deadline() - now, Duration::from_secs(10));
        assert!(StageClock::start_at(Stage::Body, &StageTimeout::fixed(0), now).is_none());
        let mut unbounded = StageClock::start_at(
            Stage::Body,
            &StageTimeout { initial: Duration::from_secs(20), max: None, min_rate: Some(500) },
            now,
        )
        .unwrap();
        unbounded.received(500 * 100);
        assert_eq!(unbounded.deadline() - now, Duration::from_secs(120));
    }
}
