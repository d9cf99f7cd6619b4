//! What an h2 connection knows about its streams: how many are in flight, how many of those the
//! edge is still working on (reading the body, waiting for the pool: bounded by the edge's own
//! timeouts), and when any of them last moved. hyper decides when a stream's data is sent; the
//! edge sees it only as the response body being polled for its next frame, which hyper does once
//! the client's flow-control window has room. So a stream moves when a response frame is taken,
//! a request body frame arrives, a response is ready, or a stream starts or ends. A connection
//! whose streams all wait on the client and do not move for longer than Timeout is a client that
//! withholds WINDOW_UPDATE (or a stalled peer), and is closed: nothing written means nothing for
//! a write timeout to see.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::body::{Body, Frame, SizeHint};
use tokio::time::Instant;

/// One connection's streams in flight and the time any of them last moved.
pub struct Activity {
    born: Instant,
    in_flight: AtomicUsize,
    /// Streams whose answer the edge is still making.
    in_service: AtomicUsize,
    /// Milliseconds after `born` when a stream last moved.
    moved_at_ms: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Activity> {
        Arc::new(Activity {
            born: Instant::now(),
            in_flight: AtomicUsize::new(0),
            in_service: AtomicUsize::new(0),
            moved_at_ms: AtomicU64::new(0),
        })
    }

    /// A stream moved now.
    pub fn touch(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.moved_at_ms.fetch_max(now, Ordering::Relaxed);
    }

    /// How long since any stream moved (or, with none ever, since the connection began).
    pub fn still_for(&self) -> Duration {
        let moved = Duration::from_millis(self.moved_at_ms.load(Ordering::Relaxed));
        self.born.elapsed().saturating_sub(moved)
    }

    pub fn streams(&self) -> usize {
        self.in_flight.load(Ordering::Acquire)
    }

    /// Whether streams are in flight and every one of them waits on the client (none is still
    /// being answered): only then can standing still be the client's doing.
    pub fn waiting_on_client(&self) -> bool {
        self.streams() > 0 && self.in_service.load(Ordering::Acquire) == 0
    }

    /// Counts a stream as in flight until the returned guard drops.
    pub fn stream(self: &Arc<Self>) -> StreamInFlight {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        self.touch();
        StreamInFlight { activity: self.clone() }
    }

    /// A request body whose every frame counts as movement.
    pub fn watch<B>(self: &Arc<Self>, body: B) -> Watched<B> {
        Watched { body, activity: self.clone(), _stream: None }
    }
}

/// A stream in flight: from its request until its response body has been sent or dropped, so a
/// long download is not an idle connection.
pub struct StreamInFlight {
    activity: Arc<Activity>,
}

/// A stream whose answer the edge is making (see [`StreamInFlight::in_service`]).
pub struct InService {
    activity: Arc<Activity>,
}

impl Drop for InService {
    fn drop(&mut self) {
        self.activity.in_service.fetch_sub(1, Ordering::AcqRel);
        self.activity.touch();
    }
}

impl StreamInFlight {
    /// Marks the stream as being answered until the guard drops: its waits are the edge's own
    /// (the body stage, QueueTimeout, Timeout), each bounded, not the client's.
    pub fn in_service(&self) -> InService {
        self.activity.in_service.fetch_add(1, Ordering::AcqRel);
        InService { activity: self.activity.clone() }
    }

    /// The response body, holding the stream in flight until it is done, each frame a movement.
    pub fn watch<B>(self, body: B) -> Watched<B> {
        self.activity.touch();
        Watched { body, activity: self.activity.clone(), _stream: Some(self) }
    }
}

impl Drop for StreamInFlight {
    fn drop(&mut self) {
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.activity.touch();
    }
}

/// A body passed through unchanged (its size hint too, so hyper still sends content-length),
/// marking the connection's activity on every frame.
pub struct Watched<B> {
    body: B,
    activity: Arc<Activity>,
    _stream: Option<StreamInFlight>,
}

impl<B: Body + Unpin> Body for Watched<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(Some(Ok(_))) = &polled {
            self.activity.touch();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
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
        assert_eq!(activity.still_for(), Duration::from_secs(3));
        let frame = body.frame().await.expect("a frame").expect("data");
        assert_eq!(frame.into_data().ok(), Some(Bytes::from_static(b"abc")));
        assert_eq!(activity.still_for(), Duration::ZERO);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(body.frame().await.is_none());
        assert_eq!(activity.still_for(), Duration::from_secs(2), "the end of a body is no frame");
        drop(body);
        assert_eq!((activity.streams(), activity.still_for()), (0, Duration::ZERO));
    }

    #[test]
    fn only_streams_past_their_service_wait_on_the_client() {
        let activity = Activity::new();
        assert!(!activity.waiting_on_client(), "no stream");
        let stream = activity.stream();
        let serving = stream.in_service();
        assert!(!activity.waiting_on_client(), "the edge is still answering");
        drop(serving);
        assert!(activity.waiting_on_client());
        drop(stream);
        assert!(!activity.waiting_on_client());
    }
}
