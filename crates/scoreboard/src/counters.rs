//! Server-wide figures the edge keeps in the shared mapping, so they survive a reload (a new
//! edge generation) as Apache's survive a graceful restart, and server-status can show them.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Why the edge answered (or dropped) a request itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Reject {
    /// Malformed or ambiguous request (400, 414, 417, 431, 505).
    Malformed,
    /// RequestReadTimeout expired (408 or a close).
    Timeout,
    /// LimitRequestBody (413).
    TooLarge,
    /// RateLimit (429).
    RateLimited,
    /// MaxConnections / MaxConnectionsPerIP (connection refused).
    ConnectionLimit,
    /// No worker in time (503).
    QueueFull,
    /// No valid PROXY protocol header, or a connection to a proxy-protocol listener from a peer
    /// not in RemoteIPTrustedProxy.
    ProxyHeader,
    /// TLS handshake failed or timed out.
    Handshake,
    /// Evicted from a full handshake stage (it had sent the least, from the source holding the
    /// most connections in the stage).
    HandshakeEvicted,
}

impl Reject {
    pub const ALL: [Reject; 9] = [
        Reject::Malformed,
        Reject::Timeout,
        Reject::TooLarge,
        Reject::RateLimited,
        Reject::ConnectionLimit,
        Reject::QueueFull,
        Reject::ProxyHeader,
        Reject::Handshake,
        Reject::HandshakeEvicted,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Reject::Malformed => "Malformed",
            Reject::Timeout => "Timeout",
            Reject::TooLarge => "TooLarge",
            Reject::RateLimited => "RateLimited",
            Reject::ConnectionLimit => "ConnectionLimit",
            Reject::QueueFull => "QueueFull",
            Reject::ProxyHeader => "ProxyHeader",
            Reject::Handshake => "Handshake",
            Reject::HandshakeEvicted => "HandshakeEvicted",
        }
    }
}

/// Why a worker was replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Recycle {
    /// MaxConnectionsPerChild.
    Connections,
    /// MaxMemoryPerChild.
    Memory,
    /// Busy past Timeout.
    Hung,
    /// Died by a signal or an unexpected exit.
    Crash,
    /// Retired while idle above MaxSpareServers.
    Spare,
}

impl Recycle {
    pub const ALL: [Recycle; 5] =
        [Recycle::Connections, Recycle::Memory, Recycle::Hung, Recycle::Crash, Recycle::Spare];

    pub fn name(self) -> &'static str {
        match self {
            Recycle::Connections => "MaxConnectionsPerChild",
            Recycle::Memory => "MaxMemoryPerChild",
            Recycle::Hung => "Timeout",
            Recycle::Crash => "Crash",
            Recycle::Spare => "Spare",
        }
    }
}

/// The figures. `repr(C)`, atomics only: it lives in shared memory.
#[repr(C)]
pub struct Counters {
    /// When the server started (microseconds since the epoch).
    pub started_us: AtomicU64,
    /// Configuration generation: 1 at start, +1 per reload.
    pub generation: AtomicU32,
    pub accesses: AtomicU64,
    pub bytes: AtomicU64,
    /// Sum of request durations, microseconds.
    pub duration_us: AtomicU64,
    pub handshakes: AtomicU64,
    /// Requests that had to wait for a worker, and the time they waited.
    pub queued: AtomicU64,
    pub queue_wait_us: AtomicU64,
    /// Requests waiting for a worker now.
    pub queue_length: AtomicU64,
    rejects: [AtomicU64; Reject::ALL.len()],
    recycles: [AtomicU64; 5],
}

impl Counters {
    pub fn reject(&self, why: Reject) {
        self.rejects[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn rejects(&self, why: Reject) -> u64 {
        self.rejects[why as usize].load(Ordering::Relaxed)
    }

    pub fn recycle(&self, why: Recycle) {
        self.recycles[why as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn recycles(&self, why: Recycle) -> u64 {
        self.recycles[why as usize].load(Ordering::Relaxed)
    }

    /// Counts one finished request.
    pub fn served(&self, bytes: u64, duration_us: u64) {
        self.accesses.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.duration_us.fetch_add(duration_us, Ordering::Relaxed);
    }
}
