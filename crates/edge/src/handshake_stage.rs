//! The handshake stage: a connection is in it from accept until it has shown it is a client, that
//! is, until its TLS handshake completes (with the PROXY header before it on proxy-protocol
//! listeners), or on plain-http listeners until the first byte of its first request arrives.
//!
//! Threat: connections that cost the attacker nothing (a silent TCP connection, a ClientHello
//! sent a few bytes at a time) but occupy the edge for the whole `handshake=` budget. A stage with
//! a fixed number of places that refuses newcomers when full lets one address lock everyone out
//! with about a thousand of them. So a full stage never refuses: it makes room by evicting, from
//! the source that holds the most places, the connection that has sent the fewest bytes (nothing
//! at all first, the oldest on ties). A client from any other source then always gets in, and an
//! attacker's new connections only push out its own.
//!
//! Cost: entering, leaving and evicting are O(log n) under one short lock, never held across an
//! await; memory is bounded by the capacity (evictions happen before an entry, so the stage never
//! holds more). Bytes are counted by [`Staged`], a wrapper around the stream, only while the
//! connection is in the stage.

use std::collections::{BTreeSet, HashMap};
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::source::Source;

/// Places in the stage. A place costs a task and, once a ClientHello starts, rustls's state (a
/// few KiB): 1,024 places bound that to a few MiB, and a legitimate client stays in the stage for
/// about one round trip, so this is far more than concurrent honest handshakes need.
pub const CAPACITY: usize = 1024;

/// How often the notice that evictions are happening may be logged.
const NOTICE_EVERY: Duration = Duration::from_secs(60);

/// The stage shared by every listener of the edge.
pub struct HandshakeStage {
    capacity: usize,
    members: Mutex<Members<CancellationToken>>,
    /// When the last notice was logged, and evictions since.
    notice: Mutex<(Option<Instant>, u64)>,
}

/// What an eviction removed, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evicted {
    pub source: Source,
    /// Bytes it had sent.
    pub bytes: u64,
    /// How long it had been in the stage.
    pub age: Duration,
    /// Connections its source still holds in the stage.
    pub source_left: usize,
}

impl HandshakeStage {
    pub fn new(capacity: usize) -> Arc<HandshakeStage> {
        Arc::new(HandshakeStage {
            capacity: capacity.max(1),
            members: Mutex::new(Members::default()),
            notice: Mutex::new((None, 0)),
        })
    }

    /// Enters a connection from `source`, evicting one first when the stage is full.
    pub fn enter(self: &Arc<Self>, source: Source) -> (Ticket, Option<Evicted>) {
        let evicted = CancellationToken::new();
        let (id, victim) = {
            let mut members = self.lock();
            let victim = if members.len() >= self.capacity { members.evict(Instant::now()) } else { None };
            (members.insert(source, Instant::now(), evicted.clone()), victim)
        };
        let made_room = victim.map(|(token, gone)| {
            token.cancel();
            self.note(&gone);
            gone
        });
        (Ticket { stage: self.clone(), id, evicted }, made_room)
    }

    /// Evicts one connection (as a full stage would) to make room elsewhere: when all connections
    /// together are at MaxConnections, those that have not finished a handshake give way first.
    pub fn evict_one(&self) -> Option<Evicted> {
        let (token, gone) = self.lock().evict(Instant::now())?;
        token.cancel();
        self.note(&gone);
        Some(gone)
    }

    /// Connections in the stage now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> MutexGuard<'_, Members<CancellationToken>> {
        // Nothing under this lock can panic midway, so a poisoned lock still holds whole data.
        self.members.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One debug line per eviction; a notice when evictions start, then at most one a minute while
    /// they go on, so an operator sees an attack without a line per connection.
    fn note(&self, gone: &Evicted) {
        tracing::debug!(
            source = %gone.source,
            bytes = gone.bytes,
            age_ms = gone.age.as_millis() as u64,
            "handshake stage full: evicted the connection that had sent the least"
        );
        let mut notice = self.notice.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        notice.1 += 1;
        if notice.0.is_none_or(|at| at.elapsed() >= NOTICE_EVERY) {
            tracing::info!(
                source = %gone.source,
                held = gone.source_left + 1,
                evicted = notice.1,
                "handshake stage full: evicting idle connections from {}, the source with the most \
                 ({} evicted since the last notice)",
                gone.source,
                notice.1
            );
            *notice = (Some(Instant::now()), 0);
        }
    }
}

/// A connection's place in the stage; leaving it (drop) frees the place.
pub struct Ticket {
    stage: Arc<HandshakeStage>,
    id: u64,
    evicted: CancellationToken,
}

impl Ticket {
    /// Cancelled when this connection is evicted.
    pub fn evicted(&self) -> CancellationToken {
        self.evicted.clone()
    }

    fn received(&self, bytes: usize) {
        self.stage.lock().received(self.id, bytes as u64);
    }

    fn rekey(&self, source: Source) {
        self.stage.lock().rekey(self.id, source);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.stage.lock().remove(self.id);
    }
}

/// A stream in the stage: counts the bytes it receives there, for the eviction choice.
pub struct Staged<S> {
    inner: S,
    ticket: Option<Ticket>,
    /// Plain HTTP: the first byte of a request ends the stage.
    until_first_byte: bool,
}

impl<S> Staged<S> {
    pub fn new(inner: S, ticket: Ticket, until_first_byte: bool) -> Staged<S> {
        Staged { inner, ticket: Some(ticket), until_first_byte }
    }

    /// The connection has proved itself: it leaves the stage.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    pub fn leave(&mut self) {
        self.ticket = None;
    }

    /// From now on the first byte received ends the stage (plain HTTP, once a PROXY header is
    /// read).
    pub fn end_at_first_byte(&mut self) {
        self.until_first_byte = true;
    }

    /// The PROXY header named the real client: its share is that client's.
    pub fn rekey(&self, source: Source) {
        if let Some(ticket) = &self.ticket {
            ticket.rekey(source);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Staged<S> {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let poll = Pin::new(&mut this.inner).poll_read(cx, buf);
        let received = buf.filled().len() - before;
        if received > 0 {
            if this.until_first_byte {
                this.ticket = None;
            } else if let Some(ticket) = &this.ticket {
                ticket.received(received);
            }
        }
        poll
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Staged<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// The stage's bookkeeping, apart from locking and waking so it can be tested as data.
/// `T` is what an eviction hands back (the connection's wake-up).
struct Members<T> {
    next_id: u64,
    all: HashMap<u64, Member<T>>,
    /// Per source, its members by (bytes received, id): the first is the one to evict. Ids grow
    /// with time, so among equal byte counts the oldest comes first.
    by_source: HashMap<Source, BTreeSet<(u64, u64)>>,
    /// Sources by (members, source): the last holds the most.
    by_size: BTreeSet<(usize, Source)>,
}

struct Member<T> {
    source: Source,
    bytes: u64,
    entered: Instant,
    wake: T,
}

impl<T> Default for Members<T> {
    fn default() -> Self {
        Members { next_id: 0, all: HashMap::new(), by_source: HashMap::new(), by_size: BTreeSet::new() }
    }
}

impl<T> Members<T> {
    fn len(&self) -> usize {
        self.all.len()
    }

    fn insert(&mut self, source: Source, entered: Instant, wake: T) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.all.insert(id, Member { source, bytes: 0, entered, wake });
        self.join(source, 0, id);
        id
    }

    fn remove(&mut self, id: u64) -> Option<Member<T>> {
        let member = self.all.remove(&id)?;
        self.part(member.source, member.bytes, id);
        Some(member)
    }

    fn received(&mut self, id: u64, bytes: u64) {
        let Some(member) = self.all.get_mut(&id) else {
            return;
        };
        let (source, before) = (member.source, member.bytes);
        member.bytes = before.saturating_add(bytes);
        if let Some(set) = self.by_source.get_mut(&source) {
            set.remove(&(before, id));
            set.insert((member.bytes, id));
        }
    }

    fn rekey(&mut self, id: u64, source: Source) {
        let Some(member) = self.all.get_mut(&id) else {
            return;
        };
        let (old, bytes) = (member.source, member.bytes);
        if old == source {
            return;
        }
        member.source = source;
        self.part(old, bytes, id);
        self.join(source, bytes, id);
    }

    /// Removes the member that has sent the least from the source that holds the most.
    fn evict(&mut self, now: Instant) -> Option<(T, Evicted)> {
        let &(_, source) = self.by_size.last()?;
        let &(_, id) = self.by_source.get(&source)?.first()?;
        let member = self.remove(id)?;
        let source_left = self.by_source.get(&source).map_or(0, BTreeSet::len);
        let gone = Evicted {
            source,
            bytes: member.bytes,
            age: now.saturating_duration_since(member.entered),
            source_left,
        };
        Some((member.wake, gone))
    }

    fn join(&mut self, source: Source, bytes: u64, id: u64) {
        let set = self.by_source.entry(source).or_default();
        let before = set.len();
        set.insert((bytes, id));
        if before > 0 {
            self.by_size.remove(&(before, source));
        }
        self.by_size.insert((before + 1, source));
    }

    fn part(&mut self, source: Source, bytes: u64, id: u64) {
        let Some(set) = self.by_source.get_mut(&source) else {
            return;
        };
        let before = set.len();
        if !set.remove(&(bytes, id)) {
            return;
        }
        self.by_size.remove(&(before, source));
        if set.is_empty() {
            self.by_source.remove(&source);
        } else {
            self.by_size.insert((before - 1, source));
        }
    }
}

#[cfg(test)]
mod tests;
