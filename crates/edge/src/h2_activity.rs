//! What an h2 connection knows about its streams: which are in flight, which of those the edge is
//! still answering (reading the body, waiting for the pool: bounded by the edge's own timeouts),
//! and when each last moved.
//!
//! hyper decides when a stream's data is sent; the edge sees it only as the response body being
//! polled for its next frame, which hyper does once h2 has sent what it holds and the client's
//! window has room for more. So the body is handed over in pieces of at most [`PIECE`] bytes (the
//! largest DATA frame a client must accept), each piece taken being a movement of its stream; and
//! the last byte of a body whose length is known is held back as a piece of its own, so the
//! stream stays in flight (and watched) until h2 could send everything before it, instead of
//! ending while its last piece still waits in h2's buffer.
//!
//! A stream the edge has answered that does not move for longer than Timeout belongs to a client
//! that withholds WINDOW_UPDATE (or reads slower than a piece per Timeout), and its connection is
//! closed: nothing written means nothing for a write timeout to see. Each stream is judged on its
//! own movement, so other streams that do move cannot keep a stalled one alive.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

use crate::client_limits::ConnectionSlot;

/// The most bytes of a response body handed to hyper at a time: h2's default largest frame.
pub const PIECE: usize = 16 * 1024;

/// One connection's streams in flight.
pub struct Activity {
    born: Instant,
    streams: Mutex<Vec<Arc<StreamState>>>,
    /// Milliseconds after `born` when anything on the connection last moved (for idleness).
    moved_at_ms: AtomicU64,
    /// Whether a stream holds the connection's own place ([`crate::h2_places`]).
    own_place_taken: AtomicBool,
}

/// One stream: when it last moved, and whether the edge is still making its answer.
struct StreamState {
    moved_at_ms: AtomicU64,
    in_service: AtomicBool,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            streams: Mutex::new(Vec::new()),
            moved_at_ms: AtomicU64::new(0),
            own_place_taken: AtomicBool::new(false),
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Something on the connection moved now.
    pub fn touch(&self) {
        self.moved_at_ms.fetch_max(self.now_ms(), Ordering::Relaxed);
    }

    /// How long since anything on the connection moved (or since it began).
    pub fn still_for(&self) -> Duration {
        Duration::from_millis(self.now_ms().saturating_sub(self.moved_at_ms.load(Ordering::Relaxed)))
    }

    pub fn streams(&self) -> usize {
        self.streams.lock().map_or(0, |streams| streams.len())
    }

    /// The longest any answered stream has stood still, waiting on its client; `None` when no
    /// stream waits on the client.
    pub fn longest_stall(&self) -> Option<Duration> {
        let now = self.now_ms();
        let streams = self.streams.lock().ok()?;
        streams
            .iter()
            .filter(|s| !s.in_service.load(Ordering::Acquire))
            .map(|s| Duration::from_millis(now.saturating_sub(s.moved_at_ms.load(Ordering::Relaxed))))
            .max()
    }

    fn stream_moved(&self, state: &StreamState) {
        let now = self.now_ms();
        state.moved_at_ms.fetch_max(now, Ordering::Relaxed);
        self.moved_at_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// Counts a stream as in flight until the returned guard drops.
    pub fn stream(self: &Arc<Self>) -> StreamInFlight {
        let state = Arc::new(StreamState {
            moved_at_ms: AtomicU64::new(self.now_ms()),
            in_service: AtomicBool::new(false),
        });
        if let Ok(mut streams) = self.streams.lock() {
            streams.push(state.clone());
        }
        self.touch();
        StreamInFlight { activity: self.clone(), state, place: None }
    }

    /// A request body whose every frame counts as movement of the connection.
    pub fn watch<B>(self: &Arc<Self>, body: B) -> Watched<B> {
        Watched { body, activity: self.clone(), stream: None, pending: None, left: None }
    }
}

/// A stream in flight: from its request until its response body has been handed over whole (or
/// dropped), so a long download is not an idle connection.
pub struct StreamInFlight {
    activity: Arc<Activity>,
    state: Arc<StreamState>,
    /// The place the stream holds while in flight: the connection's own, or one of its source's
    /// ([`crate::h2_places`]).
    place: Option<Place>,
}

/// Where a stream's place comes from.
enum Place {
    Connection,
    /// Held for its drop, which gives the place back.
    Source {
        _slot: ConnectionSlot,
    },
}

/// A stream whose answer the edge is making (see [`StreamInFlight::in_service`]).
pub struct InService {
    activity: Arc<Activity>,
    state: Arc<StreamState>,
}

impl Drop for InService {
    fn drop(&mut self) {
        self.state.in_service.store(false, Ordering::Release);
        self.activity.stream_moved(&self.state);
    }
}

impl StreamInFlight {
    /// Marks the stream as being answered until the guard drops: its waits are the edge's own
    /// (the body stage, QueueTimeout, Timeout), each bounded, not the client's.
    pub fn in_service(&self) -> InService {
        self.state.in_service.store(true, Ordering::Release);
        InService { activity: self.activity.clone(), state: self.state.clone() }
    }

    /// Takes the connection's own place for this stream, if no other stream holds it.
    pub fn take_connection_place(&mut self) -> bool {
        let free =
            self.activity.own_place_taken.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire);
        if free.is_ok() {
            self.place = Some(Place::Connection);
        }
        free.is_ok()
    }

    /// Keeps a place of the source until the stream is over.
    pub fn hold(&mut self, place: ConnectionSlot) {
        self.place = Some(Place::Source { _slot: place });
    }

    fn moved(&self) {
        self.activity.stream_moved(&self.state);
    }

    /// The response body, handed over in pieces (see the module's comment), holding the stream
    /// in flight until it is done.
    pub fn watch<B: Body>(self, body: B) -> Watched<B> {
        self.moved();
        let left = body.size_hint().exact();
        Watched { body, activity: self.activity.clone(), stream: Some(self), pending: None, left }
    }
}

impl Drop for StreamInFlight {
    fn drop(&mut self) {
        if matches!(self.place, Some(Place::Connection)) {
            self.activity.own_place_taken.store(false, Ordering::Release);
        }
        if let Ok(mut streams) = self.activity.streams.lock() {
            streams.retain(|s| !Arc::ptr_eq(s, &self.state));
        }
        self.activity.touch();
    }
}

/// A body passed through (its size hint too, so hyper still sends content-length), marking
/// movement on every frame; a response body is also cut into pieces.
pub struct Watched<B> {
    body: B,
    activity: Arc<Activity>,
    /// Set for a response body: its stream.
    stream: Option<StreamInFlight>,
    /// Bytes taken from the body and not yet handed over.
    pending: Option<Bytes>,
    /// Bytes of a body of known length not yet handed over.
    left: Option<u64>,
}

impl<B> Watched<B> {
    /// The next piece of `data`; the rest waits in `pending`.
    fn piece(&mut self, mut data: Bytes) -> Bytes {
        let mut piece = data.split_to(data.len().min(PIECE));
        if !data.is_empty() {
            self.pending = Some(data);
        } else if self.left == Some(piece.len() as u64) && piece.len() > 1 {
            // The body's last piece: its last byte goes on its own (see the module's comment).
            self.pending = Some(piece.split_off(piece.len() - 1));
        }
        self.left = self.left.map(|left| left.saturating_sub(piece.len() as u64));
        piece
    }

    fn moved(&self) {
        match &self.stream {
            Some(stream) => stream.moved(),
            None => self.activity.touch(),
        }
    }
}

impl<B: Body<Data = Bytes> + Unpin> Body for Watched<B> {
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Some(rest) = self.pending.take() {
            self.moved();
            let piece = self.piece(rest);
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        match polled {
            Poll::Ready(Some(Ok(frame))) => {
                self.moved();
                if self.stream.is_none() {
                    return Poll::Ready(Some(Ok(frame)));
                }
                match frame.into_data() {
                    Ok(data) => {
                        let piece = self.piece(data);
                        Poll::Ready(Some(Ok(Frame::data(piece))))
                    }
                    Err(frame) => Poll::Ready(Some(Ok(frame))),
                }
            }
            other => other,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pending.is_none() && self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let hint = self.body.size_hint();
        let Some(pending) = &self.pending else { return hint };
        let n = pending.len() as u64;
        let mut more = SizeHint::new();
        more.set_lower(hint.lower().saturating_add(n));
        if let Some(upper) = hint.upper() {
            more.set_upper(upper.saturating_add(n));
        }
        more
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};

    #[tokio::test(start_paused = true)]
    async fn streams_are_counted_and_frames_are_movement() {
        let activity = Activity::new();
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(activity.still_for(), Duration::from_secs(5));
        let stream = activity.stream();
        assert_eq!((activity.streams(), activity.still_for()), (1, Duration::ZERO));
        let mut body = stream.watch(Full::new(Bytes::from_static(b"abc")));
        assert_eq!(body.size_hint().exact(), Some(3), "the size hint passes through");
        tokio::time::advance(Duration::from_secs(3)).await;
        assert_eq!(activity.longest_stall(), Some(Duration::from_secs(3)));
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"ab")), "the last byte is held back");
        assert!(!body.is_end_stream());
        assert_eq!(activity.longest_stall(), Some(Duration::ZERO));
        tokio::time::advance(Duration::from_secs(2)).await;
        let last = body.frame().await.expect("a frame").expect("data");
        assert_eq!(last.into_data().ok(), Some(Bytes::from_static(b"c")));
        assert!(body.is_end_stream());
        assert!(body.frame().await.is_none());
        drop(body);
        assert_eq!(
            (activity.streams(), activity.still_for(), activity.longest_stall()),
            (0, Duration::ZERO, None)
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_stream_is_seen_whatever_its_neighbours_do() {
        let activity = Activity::new();
        let stalled = activity.stream().watch(Full::new(Bytes::from_static(b"abc")));
        for _ in 0..5 {
            tokio::time::advance(Duration::from_secs(2)).await;
            // A neighbour that starts and ends moves the connection, not the stalled stream.
            drop(activity.stream());
        }
        assert_eq!(activity.still_for(), Duration::ZERO);
        assert_eq!(activity.longest_stall(), Some(Duration::from_secs(10)));
        drop(stalled);
    }

    #[tokio::test]
    async fn large_bodies_go_in_pieces_and_arrive_whole() {
        let activity = Activity::new();
        let data: Vec<u8> = (0..50_000u32).map(|i| i as u8).collect();
        let mut body = activity.stream().watch(Full::new(Bytes::from(data.clone())));
        let mut sizes = Vec::new();
        let mut all = Vec::new();
        while let Some(frame) = body.frame().await {
            let piece = frame.expect("data").into_data().expect("data");
            sizes.push(piece.len());
            all.extend_from_slice(&piece);
        }
        assert_eq!(sizes, [PIECE, PIECE, PIECE, 50_000 - 3 * PIECE - 1, 1]);
        assert_eq!(all, data);
    }

    #[test]
    fn only_streams_past_their_service_wait_on_the_client() {
        let activity = Activity::new();
        assert_eq!(activity.longest_stall(), None, "no stream");
        let stream = activity.stream();
        let serving = stream.in_service();
        assert_eq!(activity.longest_stall(), None, "the edge is still answering");
        drop(serving);
        assert!(activity.longest_stall().is_some());
        drop(stream);
        assert_eq!(activity.longest_stall(), None);
    }
}
