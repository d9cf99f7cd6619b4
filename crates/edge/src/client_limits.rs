//! Per-client limits checked before a connection costs anything: MaxConnections,
//! MaxConnectionsPerIP, a bound on TLS handshakes in progress, and RateLimit per address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use weir_conf::edge::RateLimit;

/// TLS handshakes allowed in progress at once: they cost CPU, and a flood of them must not
/// starve connections that are already established.
pub const MAX_HANDSHAKES: usize = 1024;

/// Open connections, globally and per client address.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

/// Holds one connection's place; released on drop.
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    ip: IpAddr,
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

    /// Takes a place for a connection from `ip`, or says which limit is reached.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<ConnectionSlot, Over> {
        let mut counts = self.state.lock().map_err(|_| Over::Total)?;
        if self.max_total > 0 && counts.total >= self.max_total {
            return Err(Over::Total);
        }
        let mine = counts.per_ip.entry(ip).or_insert(0);
        if self.max_per_ip > 0 && *mine >= self.max_per_ip {
            return Err(Over::PerIp);
        }
        *mine += 1;
        counts.total += 1;
        Ok(ConnectionSlot { limits: self.clone(), ip })
    }

    /// Open connections now.
    pub fn total(&self) -> usize {
        self.state.lock().map_or(0, |c| c.total)
    }
}

impl ConnectionSlot {
    /// Moves the slot to another address: the real client named by a PROXY header.
    pub fn rekey(self, ip: IpAddr) -> Result<ConnectionSlot, Over> {
        if ip == self.ip {
            return Ok(self);
        }
        let limits = self.limits.clone();
        drop(self);
        limits.admit(ip)
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.limits.state.lock() {
            counts.total = counts.total.saturating_sub(1);
            if let Some(n) = counts.per_ip.get_mut(&self.ip) {
                *n -= 1;
                if *n == 0 {
                    counts.per_ip.remove(&self.ip);
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

    #[test]
    fn per_ip_and_total() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let a1 = limits.admit(a).unwrap();
        let _a2 = limits.admit(a).unwrap();
        assert_eq!(limits.admit(a).err(), Some(Over::PerIp));
        let _b1 = limits.admit(b).unwrap();
        assert_eq!(limits.admit(b).err(), Some(Over::Total));
        drop(a1);
        assert!(limits.admit(a).is_ok());
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
