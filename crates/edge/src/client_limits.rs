//! Per-client limits checked before a connection costs anything: MaxConnections,
//! MaxConnectionsPerIP (per source: an IPv4 address or an IPv6 /64), and RateLimit per address.
//! The handshake stage (`handshake_stage`) bounds connections that have not yet proved themselves.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use weir_conf::edge::RateLimit;

use crate::source::Source;

/// Open connections, globally and per source.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_source: HashMap<Source, usize>,
}

/// Holds one connection's place; released on drop.
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    source: Source,
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Total,
    PerIp,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits { max_total, max_per_ip, state: Mutex::new(Counts::default()) })
    }

    /// Takes a place for a connection from `source`, or says which limit is reached.
    pub fn admit(self: &Arc<Self>, source: Source) -> Result<ConnectionSlot, Over> {
        self.take(source, true)
    }

    /// Takes a place although MaxConnections is reached, still within MaxConnectionsPerIP: for a
    /// connection for which another has just been evicted (its place comes free as soon as its
    /// task runs, so the overshoot is bounded by the evictions in flight).
    pub fn admit_in_place_of_evicted(self: &Arc<Self>, source: Source) -> Result<ConnectionSlot, Over> {
        self.take(source, false)
    }

    fn take(self: &Arc<Self>, source: Source, check_total: bool) -> Result<ConnectionSlot, Over> {
        let mut counts = self.state.lock().map_err(|_| Over::Total)?;
        if check_total && self.max_total > 0 && counts.total >= self.max_total {
            return Err(Over::Total);
        }
        let mine = counts.per_source.entry(source).or_insert(0);
        if self.max_per_ip > 0 && *mine >= self.max_per_ip {
            return Err(Over::PerIp);
        }
        *mine += 1;
        counts.total += 1;
        Ok(ConnectionSlot { limits: self.clone(), source })
    }

    /// Open connections now.
    pub fn total(&self) -> usize {
        self.state.lock().map_or(0, |c| c.total)
    }
}

impl ConnectionSlot {
    /// Moves the slot to another source: the real client named by a PROXY header.
    pub fn rekey(self, source: Source) -> Result<ConnectionSlot, Over> {
        if source == self.source {
            return Ok(self);
        }
        let limits = self.limits.clone();
        drop(self);
        limits.admit(source)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.limits.state.lock() {
            counts.total = counts.total.saturating_sub(1);
            if let Some(n) = counts.per_source.get_mut(&self.source) {
                *n -= 1;
                if *n == 0 {
                    counts.per_source.remove(&self.source);
                }
            }
        }
    }
}

/// `RateLimit N/s burst=M`, keyed by client address (governor's GCRA).
pub struct RequestRate {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    clock: DefaultClock,
}

impl RequestRate {
    pub fn new(rate: RateLimit) -> Option<RequestRate> {
        let per_second = NonZeroU32::new(rate.per_second)?;
        let burst = NonZeroU32::new(rate.burst)?;
        Some(RequestRate {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            clock: DefaultClock::default(),
        })
    }

    /// `Ok` when `ip` may make a request now; otherwise how long until it may.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter.check_key(&ip).map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets addresses whose budget is full again, so memory does not grow with every
    /// address ever seen.
    pub fn forget_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(text: &str) -> Source {
        Source::of(text.parse().unwrap())
    }

    #[test]
    fn per_ip_and_total() {
        let limits = ConnectionLimits::new(3, 2);
        let a = source("127.0.0.1");
        let b = source("127.0.0.2");
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Over::PerIp));
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Over::Total));
        drop(a1);
        assert!(limits.admit(a).is_ok());
    }

    #[test]
    fn per_ip_counts_an_ipv6_slash_64_as_one() {
        let limits = ConnectionLimits::new(0, 2);
        let _one = limits.admit(source("2001:db8:5:6::1")).unwrap();
        let _two = limits.admit(source("2001:db8:5:6::abcd")).unwrap();
        assert_eq!(limits.admit(source("2001:db8:5:6:1:2:3:4")).err(), Some(Over::PerIp));
        assert!(limits.admit(source("2001:db8:5:7::1")).is_ok(), "the next /64 has its own share");
    }

    #[test]
    fn a_place_taken_for_an_evicted_connection_still_respects_the_per_source_cap() {
        let limits = ConnectionLimits::new(1, 1);
        let _a = limits.admit(source("127.0.0.2")).unwrap();
        assert_eq!(limits.admit(source("127.0.0.3")).err(), Some(Over::Total));
        let _b = limits.admit_in_place_of_evicted(source("127.0.0.3")).unwrap();
        assert_eq!(limits.total(), 2);
        assert_eq!(limits.admit_in_place_of_evicted(source("127.0.0.2")).err(), Some(Over::PerIp));
    }

    #[test]
    fn rate_limit_per_address() {
        let rate = RequestRate::new(RateLimit { per_second: 5, burst: 5 }).unwrap();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        for _ in 0..5 {
            assert!(rate.check(a).is_ok());
        }
        let wait = rate.check(a).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(200), "{wait:?}");
        assert!(rate.check("127.0.0.2".parse().unwrap()).is_ok());
    }
}
