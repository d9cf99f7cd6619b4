//! weir-wire: the contract between the edge and the workers, defined once because the edge
//! writes it and the workers read it: the request target both route by ([`target`]), how a URL
//! path names a script ([`script_path`]), how requests are routed to the pool, the heads on the
//! pool socket and their syntax ([`request`], [`response`], [`fields`]), the limits both sides
//! hold them to ([`limits`]), and the few header names by which the edge tells a worker what
//! only the edge can know, and a worker asks the edge for an internal redirect.
//!
//! The edge removes every `x-weir-*` header a client sends, and every one a worker answers with,
//! so none can be forged from outside or leak out; a worker writes none that code gave it.
//!
//! Used by the edge (async, threaded) and by workers (single-threaded, forked): nothing here
//! starts a thread, forks, or allocates before it is called.

pub mod fields;
pub mod limits;
pub mod request;
pub mod response;
pub mod script_path;
pub mod target;

/// Prefix of every internal header.
pub const PREFIX: &str = "x-weir-";
/// TLS version as mod_ssl names it (`TLSv1.3`).
pub const SSL_PROTOCOL: &str = "x-weir-ssl-protocol";
/// Cipher suite, OpenSSL's name as mod_ssl gives it.
pub const SSL_CIPHER: &str = "x-weir-ssl-cipher";
/// `SUCCESS`, `NONE` or `FAILED:reason`, as mod_ssl's SSL_CLIENT_VERIFY.
pub const SSL_CLIENT_VERIFY: &str = "x-weir-ssl-client-verify";
/// The verified client certificate's subject DN.
pub const SSL_CLIENT_S_DN: &str = "x-weir-ssl-client-s-dn";
/// `SSLOptions +ExportCertData`: the server's certificate, as the base64 of its DER on one line
/// ([`cert_pem`] makes it PEM again). Sent only where the option is on.
pub const SSL_SERVER_CERT: &str = "x-weir-ssl-server-cert";
/// The client's certificate, likewise (SSL_CLIENT_CERT).
pub const SSL_CLIENT_CERT: &str = "x-weir-ssl-client-cert";
/// The rest of the chain the client sent, each certificate's base64 in order, separated by
/// commas (SSL_CLIENT_CERT_CHAIN_0, _1 …).
pub const SSL_CLIENT_CERT_CHAIN: &str = "x-weir-ssl-client-cert-chain";
/// The site that routed the request, by number: 0 the main server, n the n-th
/// `<VirtualHost>`. The worker resolves scripts, DOCUMENT_ROOT, SERVER_NAME and SERVER_ADMIN
/// with that site's settings; like every internal header, a client's copy never gets through.
pub const VHOST: &str = "x-weir-vhost";
/// The user the edge authenticated (CGI's REMOTE_USER). Only the edge sets it: a client's
/// copy is removed with every other `x-weir-*` header, so no request can claim a user.
pub const REMOTE_USER: &str = "x-weir-remote-user";
/// How that user was authenticated: `Basic` (CGI's AUTH_TYPE).
pub const AUTH_TYPE: &str = "x-weir-auth-type";
/// Present when `CGIPassAuth On` applies: scripts see the `Authorization` header as
/// HTTP_AUTHORIZATION, which they otherwise never do (RFC 3875 4.1.18, and Apache).
pub const CGI_PASS_AUTH: &str = "x-weir-cgi-pass-auth";
/// Set when the request fetches an `ErrorDocument` (Apache's internal redirect for an error):
/// the error's status, the URL path that had it, its query and method. Scripts get them as
/// REDIRECT_STATUS, REDIRECT_URL, REDIRECT_QUERY_STRING and REDIRECT_REQUEST_METHOD.
pub const REDIRECT_STATUS: &str = "x-weir-redirect-status";
/// See [`REDIRECT_STATUS`].
pub const REDIRECT_URL: &str = "x-weir-redirect-url";
/// See [`REDIRECT_STATUS`].
pub const REDIRECT_QUERY: &str = "x-weir-redirect-query";
/// See [`REDIRECT_STATUS`].
pub const REDIRECT_METHOD: &str = "x-weir-redirect-method";
/// Sent by a worker on its own 404 or 403 for a script that is not there or may not run (no
/// code chose it): the edge may answer it with the site's `ErrorDocument`.
pub const REFUSAL: &str = "x-weir-refusal";
/// Sent by a worker on every response: its pid, for the access log.
pub const WORKER_PID: &str = "x-weir-worker-pid";
/// Sent by a worker instead of a body: the edge answers with a GET of this local URL
/// (RFC 3875 6.2.2 local redirect).
pub const LOCAL_REDIRECT: &str = "x-weir-local-redirect";

/// Largest request body the edge sends together with its head. A larger body is announced with
/// `Expect: 100-continue` and sent only after the worker's `HTTP/1.1 100 Continue`, which the
/// worker writes once it has taken the request and before it acts on it. So a connection that
/// closes before any response byte means the request was not acted on (it may go to another
/// worker), and a body is never sent to a worker that will refuse it. The edge reads the
/// response while it sends the body, so a script may answer before it has read its stdin; a
/// worker that has sent a whole response may close without reading the rest of the body.
pub const INLINE_BODY: u64 = 64 * 1024;

/// How long a worker that answered with `Connection: keep-alive` waits for the edge's next
/// request on that connection before closing it and going back to `accept()`. The edge reuses a
/// connection only well within this time.
pub const WORKER_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(1);

/// A certificate in PEM, from the one-line base64 of its DER that the edge sends: 64 characters
/// a line, as mod_ssl (OpenSSL) writes it. `None` for text that is not base64, which the edge
/// never sends.
pub fn cert_pem(base64: &str) -> Option<String> {
    let valid = !base64.is_empty()
        && base64.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
    if !valid {
        return None;
    }
    let mut pem = String::with_capacity(base64.len() + base64.len() / 64 + 64);
    pem.push_str("-----BEGIN CERTIFICATE-----\n");
    // ASCII only (checked above), so every 64-byte chunk is whole characters.
    for line in base64.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).ok()?);
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    Some(pem)
}

/// Whether a header name is one of weir's internal ones.
pub fn is_internal(name: &str) -> bool {
    // By bytes: a name from code may be any string, and a slice by chars could split one.
    name.as_bytes().get(..PREFIX.len()).is_some_and(|start| start.eq_ignore_ascii_case(PREFIX.as_bytes()))
}

/// Whether `target` is a local path a CGI local redirect may name (RFC 3875 6.2.2): an
/// origin-form path and query, which `//host/…` (a URL for another host) is not.
pub fn is_local_path(target: &str) -> bool {
    target.starts_with('/') && !target.starts_with("//") && fields::is_target(target.as_bytes())
}

/// Whether a handler registered on `route` answers `path`: the path itself, or anything below
/// it (`/ingest` answers `/ingest` and `/ingest/count`, not `/ingestion`). The edge routes by
/// this rule and the worker dispatches by it, so the two always agree.
pub fn route_matches(route: &str, path: &str) -> bool {
    let route = route.trim_end_matches('/');
    route.is_empty() || path == route || path.strip_prefix(route).is_some_and(|rest| rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_becomes_pem_again() {
        let base64 = "A".repeat(100);
        let pem = cert_pem(&base64).unwrap();
        let lines: Vec<&str> = pem.lines().collect();
        assert_eq!(lines[0], "-----BEGIN CERTIFICATE-----");
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 36);
        assert_eq!(lines[3], "-----END CERTIFICATE-----");
        for bad in ["", "abc def", "a\nb", "x,y", "-----BEGIN"] {
            assert_eq!(cert_pem(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn routes_match_on_segment_boundaries() {
        assert!(route_matches("/ingest", "/ingest"));
        assert!(route_matches("/ingest", "/ingest/count"));
        assert!(route_matches("/ingest/", "/ingest/count"));
        assert!(!route_matches("/ingest", "/ingestion"));
        assert!(route_matches("/", "/anything"));
    }

    #[test]
    fn local_paths() {
        assert!(is_local_path("/a?b=c") && is_local_path("/"));
        for not in ["//evil.example/x", "https://example.com/", "a/b", "", "/a b", "/a\r\nX: 1"] {
            assert!(!is_local_path(not), "{not:?}");
        }
    }

    #[test]
    fn internal_names() {
        assert!(is_internal("X-Weir-SSL-Cipher"));
        assert!(!is_internal("x-forwarded-for"));
        assert!(!is_internal("x-wei\u{e9}r-a") && !is_internal("\u{e9}\u{e9}\u{e9}\u{e9}"));
    }
}
