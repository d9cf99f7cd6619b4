//! One worker's slot: its state with Apache's characters, counts, and the request in hand.

use std::sync::atomic::{AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Bytes of the current request line kept per slot, as Apache's 64.
pub const REQUEST_LINE: usize = 64;

/// A worker's state, with Apache's scoreboard characters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// `.`: no worker in this slot.
    Open = b'.',
    /// `S`: forked, not yet accepting.
    Starting = b'S',
    /// `_`: waiting in `accept()`.
    Waiting = b'_',
    /// `R`: reading the request from the edge.
    Reading = b'R',
    /// `W`: running the handler and sending the reply.
    Sending = b'W',
    /// `K`: keep-alive: waiting for the edge's next request on the connection it kept.
    KeepAlive = b'K',
    /// `L`: logging.
    Logging = b'L',
    /// `G`: told to stop, finishing its current request.
    Graceful = b'G',
    /// `I`: exiting after being retired while idle.
    IdleCleanup = b'I',
}

impl State {
    fn from_byte(byte: u8) -> State {
        match byte {
            b'S' => State::Starting,
            b'_' => State::Waiting,
            b'R' => State::Reading,
            b'W' => State::Sending,
            b'K' => State::KeepAlive,
            b'L' => State::Logging,
            b'G' => State::Graceful,
            b'I' => State::IdleCleanup,
            _ => State::Open,
        }
    }

    /// The character server-status shows.
    pub fn char(self) -> char {
        self as u8 as char
    }

    /// Busy in Apache's sense: serving a request.
    pub fn is_busy(self) -> bool {
        matches!(self, State::Reading | State::Sending | State::KeepAlive | State::Logging | State::Graceful)
    }
}

/// One worker's slot. `repr(C)` and atomics only: it lives in memory shared between processes.
#[repr(C)]
pub struct Slot {
    pid: AtomicI32,
    generation: AtomicU32,
    /// The pool master that claimed the slot, by the tag the supervisor gave it (unique per
    /// pool master, restarts included): when that master dies, the supervisor frees its
    /// workers' slots, since no one else would.
    owner: AtomicU32,
    pub(crate) state: AtomicU8,
    /// Set by the master: finish the current request, then exit.
    retire: AtomicU8,
    /// Set by the worker: it has reached MaxConnectionsPerChild and wants a replacement.
    wants_recycle: AtomicU8,
    /// Set by the master once the replacement is forked: the worker may now exit.
    recycle_granted: AtomicU8,
    requests: AtomicU64,
    bytes: AtomicU64,
    /// Microseconds since the epoch when the current request began; 0 when idle.
    request_started_us: AtomicU64,
    /// Microseconds since the epoch when the last request ended.
    last_request_us: AtomicU64,
    /// The worker's resident and proportional set sizes in bytes, as it last read them itself
    /// (0: not yet): a worker is not dumpable, so no other process of its uid can read its /proc
    /// files. Untrusted: a worker can only misreport itself.
    rss: AtomicU64,
    pss: AtomicU64,
    /// Seqlock over `line`: odd while it is being written.
    line_seq: AtomicU32,
    line_len: AtomicU32,
    line: [AtomicU8; REQUEST_LINE],
}

/// A copy of a slot, read consistently enough for monitoring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotView {
    pub pid: i32,
    pub generation: u32,
    pub state: State,
    pub requests: u64,
    pub bytes: u64,
    pub request_started_us: u64,
    pub last_request_us: u64,
    pub request_line: String,
    pub retiring: bool,
    /// The worker's own figures, when it has published them.
    pub rss: Option<u64>,
    pub pss: Option<u64>,
}

/// Microseconds since the epoch, now.
pub fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

impl Slot {
    pub fn pid(&self) -> i32 {
        self.pid.load(Ordering::Acquire)
    }

    /// The tag of the pool master that claimed the slot (see `owner`).
    pub fn owner(&self) -> u32 {
        self.owner.load(Ordering::Acquire)
    }

    pub fn state(&self) -> State {
        State::from_byte(self.state.load(Ordering::Acquire))
    }

    /// Takes an open slot, atomically: `false` if another master took it first. A slot never
    /// used is still zeroed (its pages untouched), which reads as Open too.
    pub(crate) fn try_open_claim(&self) -> bool {
        let current = self.state.load(Ordering::Acquire);
        self.pid() == 0
            && State::from_byte(current) == State::Open
            && self
                .state
                .compare_exchange(current, State::Starting as u8, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Claims the slot for a new worker (master, before fork; the child writes its pid too, so
    /// the slot is right whichever runs first).
    pub fn claim(&self, generation: u32, owner: u32) {
        self.retire.store(0, Ordering::Release);
        self.wants_recycle.store(0, Ordering::Release);
        self.recycle_granted.store(0, Ordering::Release);
        self.requests.store(0, Ordering::Release);
        self.bytes.store(0, Ordering::Release);
        self.request_started_us.store(0, Ordering::Release);
        self.last_request_us.store(0, Ordering::Release);
        self.line_len.store(0, Ordering::Release);
        self.rss.store(0, Ordering::Release);
        self.pss.store(0, Ordering::Release);
        self.generation.store(generation, Ordering::Release);
        self.owner.store(owner, Ordering::Release);
        self.state.store(State::Starting as u8, Ordering::Release);
    }

    pub fn set_pid(&self, pid: i32) {
        self.pid.store(pid, Ordering::Release);
    }

    /// Frees the slot after its worker has been reaped.
    pub fn release(&self) {
        self.state.store(State::Open as u8, Ordering::Release);
        self.request_started_us.store(0, Ordering::Release);
        self.pid.store(0, Ordering::Release);
    }

    pub fn set_state(&self, state: State) {
        self.state.store(state as u8, Ordering::Release);
    }

    /// A request begins: its start time and line.
    pub fn begin_request(&self, line: &str) {
        let seq = self.line_seq.fetch_add(1, Ordering::AcqRel);
        let bytes = line.as_bytes();
        let n = bytes.len().min(REQUEST_LINE);
        for (cell, byte) in self.line.iter().zip(&bytes[..n]) {
            cell.store(*byte, Ordering::Relaxed);
        }
        self.line_len.store(n as u32, Ordering::Relaxed);
        self.line_seq.store(seq.wrapping_add(2) & !1, Ordering::Release);
        self.request_started_us.store(now_us(), Ordering::Release);
        self.state.store(State::Sending as u8, Ordering::Release);
    }

    /// A request ends, having sent `bytes`.
    pub fn end_request(&self, bytes: u64) {
        self.requests.fetch_add(1, Ordering::AcqRel);
        self.bytes.fetch_add(bytes, Ordering::AcqRel);
        self.request_started_us.store(0, Ordering::Release);
        self.last_request_us.store(now_us(), Ordering::Release);
    }

    /// Publishes this worker's memory figures (bytes).
    pub fn publish_memory(&self, rss: u64, pss: u64) {
        self.rss.store(rss, Ordering::Release);
        self.pss.store(pss, Ordering::Release);
    }

    /// The proportional set size the worker last published.
    pub fn pss(&self) -> Option<u64> {
        Some(self.pss.load(Ordering::Acquire)).filter(|&b| b > 0)
    }

    pub fn request_retire(&self) {
        self.retire.store(1, Ordering::Release);
    }

    pub fn retire_requested(&self) -> bool {
        self.retire.load(Ordering::Acquire) != 0
    }

    pub fn ask_recycle(&self) {
        self.wants_recycle.store(1, Ordering::Release);
    }

    pub fn wants_recycle(&self) -> bool {
        self.wants_recycle.load(Ordering::Acquire) != 0 && self.recycle_granted.load(Ordering::Acquire) == 0
    }

    pub fn grant_recycle(&self) {
        self.recycle_granted.store(1, Ordering::Release);
    }

    pub fn recycle_granted(&self) -> bool {
        self.recycle_granted.load(Ordering::Acquire) != 0
    }

    pub fn request_started_us(&self) -> u64 {
        self.request_started_us.load(Ordering::Acquire)
    }

    /// A consistent copy of the slot.
    pub fn view(&self) -> SlotView {
        let mut line = String::new();
        for _ in 0..4 {
            let before = self.line_seq.load(Ordering::Acquire);
            let len = (self.line_len.load(Ordering::Relaxed) as usize).min(REQUEST_LINE);
            let bytes: Vec<u8> = self.line[..len].iter().map(|c| c.load(Ordering::Relaxed)).collect();
            let after = self.line_seq.load(Ordering::Acquire);
            if before == after && before % 2 == 0 {
                line = String::from_utf8_lossy(&bytes).into_owned();
                break;
            }
        }
        SlotView {
            pid: self.pid(),
            generation: self.generation.load(Ordering::Acquire),
            state: self.state(),
            requests: self.requests.load(Ordering::Acquire),
            bytes: self.bytes.load(Ordering::Acquire),
            request_started_us: self.request_started_us(),
            last_request_us: self.last_request_us.load(Ordering::Acquire),
            request_line: line,
            retiring: self.retire_requested(),
            rss: Some(self.rss.load(Ordering::Acquire)).filter(|&b| b > 0),
            pss: self.pss(),
        }
    }
}
