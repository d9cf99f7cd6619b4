//! Per-client limits checked before a connection costs anything: MaxConnections,
//! MaxConnectionsPerIP and RateLimit, both per source (an IPv4 address or an IPv6 /64, see
//! [`Source`]): a client that rotates through its /64 gets no fresh budget with each address.
//! The handshake stage (`handshake_stage`) bounds connections that have not yet proved themselves.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;
use weir_conf::edge::{ConnectionCap, RateLimit};

use crate::source::Source;

/// Open connections, globally and per source.
pub struct ConnectionLimits {
    max_total: usize,
    max_per_ip: usize,
    state: Mutex<Counts>,
    /// Wakes one h2 stream waiting because MaxConnections was reached, each time a place of any
    /// source comes free.
    freed_anywhere: Arc<Notify>,
}

#[derive(Default)]
struct Counts {
    total: usize,
    per_source: HashMap<Source, usize>,
    /// The h2 streams of a source waiting at its MaxConnectionsPerIP: one is woken per place the
    /// source frees, so a source with thousands waiting costs others nothing when theirs free.
    waiting: HashMap<Source, Waiting>,
}

/// A source's waiting streams.
struct Waiting {
    wake: Arc<Notify>,
    count: usize,
}

/// Descriptors the edge keeps besides client connections and the pool's: listeners, logs,
/// the runtime, certificate and document files being served.
const RESERVED_DESCRIPTORS: usize = 256;
/// Descriptors a request in the pool may hold besides its connection: the Unix socket to its
/// worker, a spilled body, a spooled response, and the watch for its client hanging up.
const DESCRIPTORS_PER_POOL_REQUEST: usize = 4;
/// Memory budgeted per connection for `MaxConnections auto`: an idle TLS connection costs the
/// edge about 10 KiB (benches/RESULTS.md), one in mid-request its TLS record and head buffers
/// too; 32 KiB each within a quarter of RAM leaves the rest to the pool's workers.
const BYTES_PER_CONNECTION: u64 = 32 << 10;
/// The smallest `auto` figure, however tight the descriptors.
const AUTO_FLOOR: usize = 64;

/// What `auto` is measured from.
#[derive(Debug, Clone, Copy)]
pub struct Capacity {
    /// The edge's RLIMIT_NOFILE (the supervisor has raised the soft limit to the hard one).
    pub descriptors: u64,
    /// MemTotal, if known.
    pub memory: Option<u64>,
    /// Each request in the pool holds up to [`DESCRIPTORS_PER_POOL_REQUEST`].
    pub max_request_workers: usize,
}

impl Capacity {
    /// This process's figures.
    pub fn of_this_process(max_request_workers: usize) -> Capacity {
        use nix::sys::resource::{getrlimit, Resource};
        let descriptors = getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft);
        let memory = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
        Capacity { descriptors, memory, max_request_workers }
    }

    /// `MaxConnections auto`: what the descriptors allow, and what a quarter of memory does.
    fn auto_total(&self) -> usize {
        let fds = (self.descriptors as usize)
            .saturating_sub(RESERVED_DESCRIPTORS + DESCRIPTORS_PER_POOL_REQUEST * self.max_request_workers);
        let memory = self.memory.map_or(usize::MAX, |m| (m / 4 / BYTES_PER_CONNECTION) as usize);
        fds.min(memory).max(AUTO_FLOOR)
    }
}

/// MaxConnections and MaxConnectionsPerIP as numbers (0: no limit), `auto` resolved. Per source,
/// `auto` is half of the total: one source can never take every place, and a site behind one
/// NAT address (a fleet of telemetry devices, say) still has thousands. Connections that have
/// not finished their handshake are kept fair by the handshake stage, not by this cap.
pub fn resolve(total: ConnectionCap, per_ip: ConnectionCap, capacity: &Capacity) -> (usize, usize) {
    let auto = capacity.auto_total();
    let total = match total {
        ConnectionCap::Auto => auto,
        ConnectionCap::Unlimited => 0,
        ConnectionCap::At(n) => n,
    };
    let per_ip = match per_ip {
        ConnectionCap::Auto => (if total > 0 { total } else { auto } / 2).max(1),
        ConnectionCap::Unlimited => 0,
        ConnectionCap::At(n) => n,
    };
    (total, per_ip)
}

/// Holds one connection's place (or an h2 stream's); released on drop.
pub struct ConnectionSlot {
    limits: Arc<ConnectionLimits>,
    source: Source,
}

/// A source's stream counted as waiting for a place; uncounted on drop.
struct WaitingGuard {
    limits: Arc<ConnectionLimits>,
    source: Source,
    wake: Arc<Notify>,
}

impl Drop for WaitingGuard {
    fn drop(&mut self) {
        let mut counts = self.limits.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(waiting) = counts.waiting.get_mut(&self.source) {
            waiting.count -= 1;
            if waiting.count == 0 {
                counts.waiting.remove(&self.source);
            }
        }
    }
}

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    Total,
    PerIp,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_ip: usize) -> Arc<ConnectionLimits> {
        Arc::new(ConnectionLimits {
            max_total,
            max_per_ip,
            state: Mutex::new(Counts::default()),
            freed_anywhere: Arc::default(),
        })
    }

    /// Takes a place for one more h2 stream of `source`, waiting up to `patience` for one to
    /// come free (answers finish all the time; a stream should not fail for a moment's peak).
    pub async fn wait_for_place(
        self: &Arc<Self>,
        source: Source,
        patience: Duration,
    ) -> Result<ConnectionSlot, Over> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut waiting: Option<WaitingGuard> = None;
        let mut woken_for_anyone = false;
        loop {
            let over = match self.take(source, true) {
                Ok(slot) => return Ok(slot),
                Err(over) => over,
            };
            if woken_for_anyone && over == Over::PerIp {
                // The place freed for anyone is not this source's to take: pass the wake on, or
                // another source's stream would wait beside a free place.
                self.freed_anywhere.notify_one();
            }
            // A wake-up sent between the attempt and the wait is kept by the Notify as a permit.
            let wake = match over {
                Over::PerIp => waiting.get_or_insert_with(|| self.register_waiter(source)).wake.clone(),
                Over::Total => self.freed_anywhere.clone(),
            };
            woken_for_anyone = over == Over::Total;
            if tokio::time::timeout_at(deadline, wake.notified()).await.is_err() {
                return Err(over);
            }
        }
    }

    /// Counts a stream of `source` as waiting until the guard drops.
    fn register_waiter(self: &Arc<Self>, source: Source) -> WaitingGuard {
        let mut counts = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let waiting =
            counts.waiting.entry(source).or_insert_with(|| Waiting { wake: Arc::default(), count: 0 });
        waiting.count += 1;
        WaitingGuard { limits: self.clone(), source, wake: waiting.wake.clone() }
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
        // The source's own cap first: a source at it waits for its own places, and evicts no
        // one's connection for a place it could not take anyway.
        let mine = counts.per_source.get(&source).copied().unwrap_or(0);
        if self.max_per_ip > 0 && mine >= self.max_per_ip {
            return Err(Over::PerIp);
        }
        if check_total && self.max_total > 0 && counts.total >= self.max_total {
            return Err(Over::Total);
        }
        counts.per_source.insert(source, mine + 1);
        counts.total += 1;
        Ok(ConnectionSlot { limits: self.clone(), source })
    }

    /// MaxConnections and MaxConnectionsPerIP in force (0: no limit).
    pub fn maxima(&self) -> (usize, usize) {
        (self.max_total, self.max_per_ip)
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
        let mut counts = self.limits.state.lock().unwrap_or_else(PoisonError::into_inner);
        counts.total = counts.total.saturating_sub(1);
        if let Some(n) = counts.per_source.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                counts.per_source.remove(&self.source);
            }
        }
        if let Some(waiting) = counts.waiting.get(&self.source) {
            waiting.wake.notify_one();
        }
        drop(counts);
        self.limits.freed_anywhere.notify_one();
    }
}

/// `RateLimit N/s burst=M`, keyed by source (governor's GCRA).
pub struct RequestRate {
    limiter: DefaultKeyedRateLimiter<Source>,
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

    /// `Ok` when the source of `ip` may make a request now; otherwise how long until it may.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        self.limiter
            .check_key(&Source::of(ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Forgets sources whose budget is full again, so memory does not grow with every source
    /// ever seen.
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

    #[tokio::test(start_paused = true)]
    async fn a_stream_waits_for_a_place_and_gets_one_when_it_comes_free() {
        let limits = ConnectionLimits::new(0, 2);
        let a = source("127.0.0.2");
        let first = limits.admit(a).unwrap();
        let _second = limits.admit(a).unwrap();
        // None comes free: refused once its patience is over, however long that is.
        let waited = tokio::time::Instant::now();
        assert_eq!(limits.wait_for_place(a, Duration::from_secs(5)).await.err(), Some(Over::PerIp));
        assert_eq!(waited.elapsed(), Duration::from_secs(5));
        // One comes free while it waits: it gets it then.
        let freeing = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            drop(first);
        });
        let waited = tokio::time::Instant::now();
        let third = limits.wait_for_place(a, Duration::from_secs(5)).await;
        assert!(third.is_ok());
        assert_eq!(waited.elapsed(), Duration::from_secs(1));
        freeing.await.unwrap();
        // Another source is not held up by this one's share.
        let other = limits.wait_for_place(source("127.0.0.3"), Duration::ZERO).await;
        assert!(other.is_ok());
        assert_eq!(limits.total(), 3);
        drop(other);
        assert_eq!(limits.total(), 2);
    }

    /// A place freed while everything is full went to the first stream woken, whose own source
    /// was at its cap: the next source's stream got 503 after 5 s beside a free place.
    #[tokio::test(start_paused = true)]
    async fn a_place_freed_for_anyone_reaches_a_source_that_may_take_it() {
        let limits = ConnectionLimits::new(5, 2);
        let (a, b, c) = (source("127.0.0.2"), source("127.0.0.3"), source("127.0.0.4"));
        let _c1 = limits.admit(c).unwrap();
        let _b = [limits.admit(b).unwrap(), limits.admit(b).unwrap()];
        let _a1 = limits.admit(a).unwrap();
        let a2 = limits.admit(a).unwrap();
        // B (at its cap) queues first, then C (under its cap, but everything is full).
        let b_waits = tokio::spawn({
            let limits = limits.clone();
            async move { limits.wait_for_place(b, Duration::from_secs(5)).await.map(drop) }
        });
        tokio::task::yield_now().await;
        let c_waits = tokio::spawn({
            let limits = limits.clone();
            async move {
                let started = tokio::time::Instant::now();
                limits.wait_for_place(c, Duration::from_secs(5)).await.map(|slot| (slot, started.elapsed()))
            }
        });
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_secs(1)).await;
        drop(a2);
        let (_slot, waited) = c_waits.await.unwrap().expect("C got the freed place");
        assert!(waited < Duration::from_secs(2), "C waited {waited:?}");
        assert_eq!(b_waits.await.unwrap().err(), Some(Over::PerIp));
    }

    #[test]
    fn auto_limits_follow_descriptors_and_memory() {
        let roomy = Capacity { descriptors: 20_000, memory: Some(24 << 30), max_request_workers: 150 };
        assert_eq!(resolve(ConnectionCap::Auto, ConnectionCap::Auto, &roomy), (19_144, 9_572));
        // A small appliance: a quarter of 1 GiB at 32 KiB a connection.
        let small = Capacity { descriptors: 1 << 20, memory: Some(1 << 30), max_request_workers: 150 };
        assert_eq!(resolve(ConnectionCap::Auto, ConnectionCap::Auto, &small), (8_192, 4_096));
        let tight = Capacity { descriptors: 256, memory: None, max_request_workers: 150 };
        assert_eq!(resolve(ConnectionCap::Auto, ConnectionCap::Auto, &tight), (64, 32));
        // Explicit figures win; the per-source auto follows an explicit total.
        assert_eq!(resolve(ConnectionCap::At(1_000), ConnectionCap::Auto, &roomy), (1_000, 500));
        assert_eq!(resolve(ConnectionCap::Unlimited, ConnectionCap::Auto, &roomy), (0, 9_572));
        assert_eq!(resolve(ConnectionCap::Unlimited, ConnectionCap::Unlimited, &roomy), (0, 0));
        assert_eq!(resolve(ConnectionCap::Auto, ConnectionCap::At(7), &roomy), (19_144, 7));
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

    #[test]
    fn rate_limit_per_ipv6_slash_64() {
        let rate = RequestRate::new(RateLimit { per_second: 1, burst: 2 }).unwrap();
        let at = |text: &str| -> IpAddr { text.parse().unwrap() };
        assert!(rate.check(at("2001:db8:5:6::1")).is_ok());
        assert!(rate.check(at("2001:db8:5:6::2")).is_ok());
        assert!(rate.check(at("2001:db8:5:6:ffff:1:2:3")).is_err(), "a new address of the same /64");
        assert!(rate.check(at("2001:db8:5:7::1")).is_ok(), "the next /64 has its own budget");
        // An IPv4 client on a dual-stack socket is the same source as over IPv4.
        assert!(rate.check(at("192.0.2.1")).is_ok());
        assert!(rate.check(at("::ffff:192.0.2.1")).is_ok());
        assert!(rate.check(at("192.0.2.1")).is_err());
    }
}
