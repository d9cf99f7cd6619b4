//! Request ids: the one a worker sees in `X-Request-Id` and the access log records.

use http::HeaderMap;

/// The request id the worker sees: the client's own `X-Request-Id` when it is a plain token (so
/// a device can use it as an idempotency key across retries), otherwise one made here.
pub fn request_id(headers: &HeaderMap) -> String {
    let client = headers.get("x-request-id").and_then(|v| v.to_str().ok()).filter(|id| {
        (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
    });
    match client {
        Some(id) => id.to_string(),
        None => new_request_id(),
    }
}

/// A new id: this edge's pid, the time and a counter, unique across the edges of one machine.
fn new_request_id() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let micros =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    // The pid, read once: a getpid() per request is a system call for a constant.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    format!("{:x}-{micros:x}-{n:x}", PID.get_or_init(std::process::id))
}
