//! How large a head may be on each side of the pool socket, computed in one place so that the
//! edge never admits a request a worker would refuse.
//!
//! The edge takes a client's head within `LimitRequestLine`, `LimitRequestFieldSize` and
//! `LimitRequestFields`, and sends the worker that head re-written: the target in its canonical
//! encoding, the client's fields less those the edge owns, and the fields only the edge can
//! write (Host, Content-Length, the forwarding fields, the TLS facts). [`HeadLimits`] bounds that
//! re-written head from the configured limits; the worker reads any head within the bound, and
//! the edge refuses to send (414 or 431) one beyond it, which only a client over the limits, or a
//! client certificate with a subject of kilobytes, can cause.

/// Most fields the edge adds to a client's head, certificates aside (it writes 18: Host,
/// Content-Length, Connection, Expect, X-Forwarded-For, -Host, -Proto and -Port, Forwarded,
/// X-Request-Id, four TLS facts, and the four of an ErrorDocument's fetch), with room for two
/// more.
pub const ADDED_FIELDS: usize = 20;
/// The certificate fields of `SSLOptions +ExportCertData`: the server's, the client's and the
/// client's chain.
pub const CERT_FIELDS: usize = 3;
/// Most bytes of certificate data (base64) in those fields together: 48 KiB, room for a leaf
/// and a chain of several intermediates. The edge leaves out the chain (then the client's
/// certificate) rather than send more, so no client can make a head the worker refuses.
pub const CERT_DATA: usize = 48 * 1024;
/// Longest name of a field the edge adds.
pub const ADDED_NAME: usize = 32;
/// Longest value of a field the edge adds that is not the client's own host: a client
/// certificate's subject is the only one that can be long.
pub const ADDED_VALUE: usize = 8192;
/// How much longer than the client's request line the worker's may be: the canonical encoding
/// writes a byte the client sent raw as `%XX`.
pub const TARGET_GROWTH: usize = 3;

/// The configured limits on a client's request head, Apache's directives of the same names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// `LimitRequestLine`: longest request line, without its CRLF.
    pub request_line: usize,
    /// `LimitRequestFieldSize`: longest field line (name, colon and value), without its CRLF.
    pub field_size: usize,
    /// `LimitRequestFields`: most field lines.
    pub fields: usize,
}

impl Default for HeadLimits {
    /// Apache's defaults.
    fn default() -> Self {
        HeadLimits { request_line: 8190, field_size: 8190, fields: 100 }
    }
}

impl HeadLimits {
    /// Longest request line the worker reads, without its CRLF: the client's whole line
    /// (method, target, version), its target grown by the canonical encoding.
    pub fn max_line(&self) -> usize {
        self.request_line.saturating_mul(TARGET_GROWTH)
    }

    /// Most field lines in a worker's head: the client's, and those the edge adds.
    pub fn max_fields(&self) -> usize {
        self.fields.saturating_add(ADDED_FIELDS + CERT_FIELDS)
    }

    /// Longest head, blank line included, the worker reads: the request line, every field the
    /// client may send at its longest, and every field the edge adds at the longest of its own
    /// values and the client's host (which comes from a field or from the request line).
    pub fn max_head(&self) -> usize {
        let client = self.fields.saturating_mul(self.field_size.saturating_add(2));
        let added_value = ADDED_VALUE.max(self.field_size).max(self.request_line);
        let added = ADDED_FIELDS.saturating_mul(added_value.saturating_add(ADDED_NAME + 4));
        let certs = CERT_DATA + CERT_FIELDS * (ADDED_NAME + 4);
        self.max_line()
            .saturating_add(2)
            .saturating_add(client)
            .saturating_add(added)
            .saturating_add(certs)
            .saturating_add(2)
    }
}

/// Longest response head (status line, fields, blank line) a worker writes and the edge reads.
pub const MAX_RESPONSE_HEAD: usize = 64 * 1024;
/// Most field lines in a worker's response head, the worker's own included.
pub const MAX_RESPONSE_FIELDS: usize = 128;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_bound_holds_a_full_client_head_and_the_edges_fields() {
        let limits = HeadLimits::default();
        assert_eq!(limits.max_fields(), 123);
        // 100 field lines of 8190 bytes alone are 819,200 bytes: the 128 KiB of old was short.
        assert!(limits.max_head() > 100 * 8192 + 3 * 8190 + 18 * (32 + 8192) + CERT_DATA);
        // What a worker may have to hold of one head: under 1.1 MiB.
        assert!(limits.max_head() < 1100 << 10, "{}", limits.max_head());
    }

    #[test]
    fn the_largest_limits_do_not_overflow() {
        let limits = HeadLimits { request_line: usize::MAX, field_size: usize::MAX, fields: usize::MAX };
        assert_eq!(limits.max_head(), usize::MAX);
        assert_eq!(limits.max_fields(), usize::MAX);
    }
}
