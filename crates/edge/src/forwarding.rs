//! The forwarding policy: what of a client's request a worker sees. The edge owns the framing,
//! the forwarding headers and weir's internal ones; a client's copies of them, and every
//! hop-by-hop header, are removed before the request goes to the pool.

use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Request, Version};

use weir_wire as wire;

use crate::cert_export::ExportCertData;
use crate::client_facts::ClientFacts;
use crate::request_id::request_id;

/// Headers the edge sets itself; a client's copies are removed so none can be spoofed.
const EDGE_OWNED: [&str; 7] = [
    "x-request-id",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
];

/// Hop-by-hop headers (RFC 9110 7.6.1): they describe one connection and are never forwarded.
const HOP_BY_HOP: [HeaderName; 7] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// What the edge decided about a request's credentials (an extension of the pool request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwardAuth {
    /// The user Basic authentication proved, if it did.
    pub user: Option<String>,
    /// `CGIPassAuth On`: scripts may see `Authorization`. Off, and a password checked here,
    /// the header is not sent to the pool at all: code in workers never sees the password.
    pub pass_auth: bool,
}

/// Builds the request a worker sees: origin-form target, Host, exactly one Content-Length,
/// `Connection: keep-alive`, `Expect: 100-continue` for a body sent only after the worker's
/// 100 Continue, the forwarding headers, and none of the client's hop-by-hop headers.
pub(crate) fn normalize(
    parts: &http::request::Parts,
    body_len: u64,
    expect: bool,
    client: &ClientFacts,
) -> http::request::Parts {
    let target = parts.uri.path_and_query().map(|pq| pq.as_str()).unwrap_or("/").to_string();
    let host = parts
        .uri
        .authority()
        .map(|a| a.as_str().to_string())
        .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).map(str::to_string));
    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    for name in EDGE_OWNED {
        headers.remove(name);
    }
    remove_internal(&mut headers);
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::HOST);
    headers.remove(header::UPGRADE);
    headers.remove(header::EXPECT);
    // No standard header is named Proxy; as a CGI variable (HTTP_PROXY) it would redirect a
    // script's outgoing requests (httpoxy), and a Handler passing headers on could do the same.
    headers.remove("proxy");
    let proto = if client.tls.is_some() { "https" } else { "http" };
    let mut set = |name: &'static str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), value);
        }
    };
    if let Some(host) = &host {
        set("host", host.clone());
        set("x-forwarded-host", host.clone());
    }
    set("content-length", body_len.to_string());
    set("connection", "keep-alive".to_string());
    if expect {
        set("expect", "100-continue".to_string());
    }
    set("x-forwarded-for", client.peer.ip().to_string());
    set("x-forwarded-proto", proto.to_string());
    set("x-forwarded-port", client.local.port().to_string());
    set("forwarded", format!("for=\"{}\";proto={proto}", client.peer));
    set("x-request-id", request_id(&parts.headers));
    if let Some(site) = parts.extensions.get::<crate::hosts::SiteId>() {
        set(wire::VHOST, site.0.to_string());
    }
    if let Some(tls) = &client.tls {
        set(wire::SSL_PROTOCOL, tls.protocol.to_string());
        set(wire::SSL_CIPHER, tls.cipher.to_string());
        set(wire::SSL_CLIENT_VERIFY, tls.client_verify.to_string());
        if let Some(subject) = &tls.client_subject {
            set(wire::SSL_CLIENT_S_DN, subject.clone());
        }
    }
    if let Some(error) = parts.extensions.get::<crate::error_document::Redirected>() {
        set(wire::REDIRECT_STATUS, error.status.as_u16().to_string());
        set(wire::REDIRECT_URL, error.url.clone());
        set(wire::REDIRECT_QUERY, error.query.clone());
        set(wire::REDIRECT_METHOD, error.method.to_string());
    }
    if let Some(auth) = parts.extensions.get::<ForwardAuth>() {
        if let Some(user) = &auth.user {
            // A name from the password file, which holds no control character: obs-text at worst.
            if let Ok(value) = HeaderValue::from_bytes(user.as_bytes()) {
                headers.insert(HeaderName::from_static(wire::REMOTE_USER), value);
            }
            headers.insert(HeaderName::from_static(wire::AUTH_TYPE), HeaderValue::from_static("Basic"));
            if !auth.pass_auth {
                headers.remove(header::AUTHORIZATION);
            }
        }
        if auth.pass_auth {
            headers.insert(HeaderName::from_static(wire::CGI_PASS_AUTH), HeaderValue::from_static("on"));
        }
    }
    if let (Some(tls), Some(export)) = (&client.tls, parts.extensions.get::<ExportCertData>()) {
        crate::cert_export::set_fields(&mut headers, export, tls.client_chain.as_ref());
    }
    let mut request = Request::new(());
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = target.parse().unwrap_or_else(|_| http::Uri::from_static("/"));
    *request.version_mut() = Version::HTTP_11;
    *request.headers_mut() = headers;
    request.into_parts().0
}

/// Removes every `x-weir-*` header: they are weir's own, never a client's or a script's.
pub fn remove_internal(headers: &mut HeaderMap) {
    let internal: Vec<HeaderName> =
        headers.keys().filter(|name| wire::is_internal(name.as_str())).cloned().collect();
    for name in internal {
        headers.remove(name);
    }
}

/// Removes hop-by-hop headers, and every header the Connection header names.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(',').map(|n| n.trim().to_ascii_lowercase()))
        .filter(|n| !n.is_empty())
        .collect();
    for name in named {
        headers.remove(name.as_str());
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_facts::TlsInfo;

    #[test]
    fn normalized_request_owns_its_framing_and_forwarding() {
        let request = Request::builder()
            .method("POST")
            .uri("https://example.com/cgi-bin/x?y=1")
            .header("x-forwarded-for", "6.6.6.6")
            .header("connection", "x-secret, keep-alive")
            .header("x-secret", "1")
            .header("transfer-encoding", "chunked")
            .header("x-app", "kept")
            .header("x-weir-ssl-client-s-dn", "CN=forged")
            .header("x-weir-vhost", "7")
            .header("x-request-id", "device-42:retry.1")
            .body(())
            .unwrap();
        let (parts, ()) = request.into_parts();
        let client = ClientFacts {
            peer: "10.0.0.7:5555".parse().unwrap(),
            local: "127.0.0.1:8443".parse().unwrap(),
            tls: Some(TlsInfo {
                protocol: "TLSv1.3",
                cipher: "TLS_AES_128_GCM_SHA256",
                client_verify: "SUCCESS",
                client_subject: Some("CN=meter-7,O=Water".to_string()),
                sni: None,
                handshake_site: None,
                client_chain: None,
            }),
        };
        let mut parts = parts;
        parts.extensions.insert(crate::hosts::SiteId(2));
        let normalized = normalize(&parts, 3, false, &client);
        let h = &normalized.headers;
        assert_eq!(normalized.uri, "/cgi-bin/x?y=1");
        assert_eq!(h["host"], "example.com");
        assert_eq!(h["x-forwarded-for"], "10.0.0.7");
        assert_eq!(h["content-length"], "3");
        assert_eq!(h["connection"], "keep-alive");
        assert_eq!(h["forwarded"], "for=\"10.0.0.7:5555\";proto=https");
        assert_eq!(h["x-app"], "kept");
        assert!(h.get("x-secret").is_none());
        assert!(h.get("transfer-encoding").is_none());
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-weir-ssl-client-s-dn"], "CN=meter-7,O=Water", "the edge's, not the forged one");
        assert_eq!(h["x-weir-ssl-protocol"], "TLSv1.3");
        assert_eq!(
            h.get_all("x-weir-vhost").iter().collect::<Vec<_>>(),
            ["2"],
            "the edge's site, not the client's"
        );
        assert_eq!(h["x-request-id"], "device-42:retry.1");
        assert!(h.get(wire::REMOTE_USER).is_none());
        let mut bad = HeaderMap::new();
        bad.insert("x-request-id", HeaderValue::from_static("has space"));
        assert_ne!(request_id(&bad), "has space");
    }

    #[test]
    fn the_user_comes_from_the_edge_and_the_password_stays_here() {
        let request = Request::builder()
            .uri("/cgi-bin/x")
            .header("authorization", "Basic Ym9iOnNlY3JldA==")
            .header("x-weir-remote-user", "admin")
            .header("x-weir-auth-type", "Forged")
            .header("x-weir-cgi-pass-auth", "on")
            .body(())
            .unwrap();
        let (mut parts, ()) = request.into_parts();
        let client = ClientFacts {
            peer: "10.0.0.7:5555".parse().unwrap(),
            local: "127.0.0.1:80".parse().unwrap(),
            tls: None,
        };
        // No authentication here: the client's claims are gone, its Authorization stays for a
        // Handler (CGI's environment leaves it out).
        let h = normalize(&parts, 0, false, &client).headers;
        assert!(
            h.get(wire::REMOTE_USER).is_none()
                && h.get(wire::AUTH_TYPE).is_none()
                && h.get(wire::CGI_PASS_AUTH).is_none()
        );
        assert!(h.get("authorization").is_some());
        parts.extensions.insert(ForwardAuth { user: Some("bob".into()), pass_auth: false });
        let h = normalize(&parts, 0, false, &client).headers;
        assert_eq!(
            (&h[wire::REMOTE_USER], &h[wire::AUTH_TYPE]),
            (&HeaderValue::from_static("bob"), &HeaderValue::from_static("Basic"))
        );
        assert!(h.get("authorization").is_none(), "the checked password never reaches the pool");
        assert!(h.get(wire::CGI_PASS_AUTH).is_none());
        parts.extensions.insert(ForwardAuth { user: Some("bob".into()), pass_auth: true });
        let h = normalize(&parts, 0, false, &client).headers;
        assert_eq!(h["authorization"], "Basic Ym9iOnNlY3JldA==");
        assert_eq!(h[wire::CGI_PASS_AUTH], "on");
    }
}
