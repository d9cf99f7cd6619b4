//! h2 streams count against MaxConnections and MaxConnectionsPerIP.
//!
//! One h2 connection carries up to 100 streams, and a stream whose answer is in flight costs the
//! edge what an HTTP/1.1 connection in mid-answer costs: a descriptor for the file or spool it is
//! sent from, and buffers (110 KiB measured for one whose client reads nothing). Counted as one
//! connection, one source could hold a hundred times its share: six connections of 99 stalled
//! streams took an edge with 400 descriptors to its limit, and accept() then failed for every
//! client. So, as nginx counts each stream against worker_connections, every stream beyond the
//! first in flight on its connection takes a place of the source's MaxConnectionsPerIP (and of
//! MaxConnections) until its answer is over: an h2 client has as many answers in flight as it
//! could have HTTP/1.1 connections, no more and no fewer. The first is free, so a connection
//! always makes progress whatever the limits; a stream that finds no place waits a moment
//! (answers end all the time; each freed place wakes one waiting stream of its source), then is
//! answered 503 without opening anything.

use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderValue, Response, StatusCode};

use crate::body::{self, Body};
use crate::client_limits::{ConnectionLimits, Over};
use crate::h2_activity::StreamInFlight;
use crate::log_gate::LogGate;
use crate::source::Source;

/// Longest a stream waits for a place before its 503.
const PATIENCE: Duration = Duration::from_secs(5);

/// At most one error-log line a minute for refused streams, however many there are.
static REFUSALS: LogGate = LogGate::new();

/// The places a connection's streams take, and whose they are.
pub struct StreamPlaces {
    pub limits: Arc<ConnectionLimits>,
    pub source: Source,
}

impl StreamPlaces {
    /// Lets `stream` go on, holding a place if its connection has other streams in flight;
    /// `Err` is the 503 to answer when none came free within [`PATIENCE`].
    pub async fn admit(&self, stream: &mut StreamInFlight) -> Result<(), Response<Body>> {
        if stream.take_connection_place() {
            return Ok(());
        }
        match self.limits.wait_for_place(self.source, PATIENCE).await {
            Ok(place) => {
                stream.hold(place);
                Ok(())
            }
            Err(over) => {
                if let Some(held_back) = REFUSALS.due() {
                    let limit = match over {
                        Over::Total => "MaxConnections",
                        Over::PerIp => "MaxConnectionsPerIP",
                    };
                    tracing::error!(
                        source = %self.source,
                        held_back,
                        "{limit} reached: h2 streams refused with 503 (a stream beyond the first of a connection takes a place while its answer is in flight)"
                    );
                }
                let mut response = body::error_page(StatusCode::SERVICE_UNAVAILABLE);
                response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
                Err(response)
            }
        }
    }
}
