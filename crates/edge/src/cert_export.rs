//! `SSLOptions +ExportCertData`: the certificates a script is given (SSL_SERVER_CERT,
//! SSL_CLIENT_CERT, SSL_CLIENT_CERT_CHAIN_n), sent to the worker as one-line base64 of their DER
//! in weir's internal fields ([`weir_wire::SSL_SERVER_CERT`] and its fellows), within
//! [`weir_wire::limits::CERT_DATA`].
//!
//! Cost is paid only where the option is on: the edge keeps a connection's client chain only
//! when some site exports it, and sends certificates only for requests of such a site that came
//! over TLS.

use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use weir_wire as wire;
use weir_wire::limits::CERT_DATA;

/// A site's server certificate, ready to send (a request extension on requests for the pool
/// of a site with `ExportCertData`).
#[derive(Debug, Clone)]
pub struct ExportCertData {
    /// The base64 of the leaf's DER.
    pub server_cert: Arc<str>,
}

/// The certificates a client sent, leaf first, kept for a connection when some site exports them.
pub type ClientChain = Arc<[CertificateDer<'static>]>;

/// The base64 of the first certificate of a PEM file: the site's own, read with its key.
pub fn server_cert(path: &Path) -> Option<Arc<str>> {
    let der = CertificateDer::pem_file_iter(path).ok()?.next()?.ok()?;
    Some(encode(der.as_ref()).into())
}

fn encode(der: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// Sets the certificate fields for a request of an exporting site: the server's certificate,
/// the client's, then the rest of its chain, as long as they fit in [`CERT_DATA`] together
/// (a chain that does not fit is left out whole, and logged).
pub fn set_fields(headers: &mut HeaderMap, export: &ExportCertData, client: Option<&ClientChain>) {
    let mut room = CERT_DATA;
    let mut put = |headers: &mut HeaderMap, name: &'static str, value: String| -> bool {
        if value.len() > room {
            return false;
        }
        // Base64 (and commas): always a valid field value.
        let Ok(value) = HeaderValue::from_str(&value) else {
            return false;
        };
        room -= value.len();
        headers.insert(HeaderName::from_static(name), value);
        true
    };
    if !put(headers, wire::SSL_SERVER_CERT, export.server_cert.to_string()) {
        tracing::warn!("the server certificate is too large to pass to scripts");
    }
    let Some((leaf, chain)) = client.and_then(|certs| certs.split_first()) else {
        return;
    };
    if !put(headers, wire::SSL_CLIENT_CERT, encode(leaf.as_ref())) {
        tracing::debug!("a client certificate too large to pass to scripts was left out");
        return;
    }
    if !chain.is_empty() {
        let joined = chain.iter().map(|cert| encode(cert.as_ref())).collect::<Vec<_>>().join(",");
        if !put(headers, wire::SSL_CLIENT_CERT_CHAIN, joined) {
            tracing::debug!(
                certificates = chain.len(),
                "a client certificate chain too large to pass to scripts was left out"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn export() -> ExportCertData {
        ExportCertData { server_cert: "U0VSVkVS".into() }
    }

    #[test]
    fn fields_for_a_client_with_a_chain() {
        let chain: ClientChain = vec![
            CertificateDer::from(b"leaf".to_vec()),
            CertificateDer::from(b"ca1".to_vec()),
            CertificateDer::from(b"ca2".to_vec()),
        ]
        .into();
        let mut headers = HeaderMap::new();
        set_fields(&mut headers, &export(), Some(&chain));
        assert_eq!(headers[wire::SSL_SERVER_CERT], "U0VSVkVS");
        assert_eq!(headers[wire::SSL_CLIENT_CERT], "bGVhZg==");
        assert_eq!(headers[wire::SSL_CLIENT_CERT_CHAIN], "Y2Ex,Y2Ey");
        let mut headers = HeaderMap::new();
        set_fields(&mut headers, &export(), None);
        assert_eq!(headers.len(), 1, "no client certificate: only the server's");
    }

    #[test]
    fn a_chain_beyond_the_bound_is_left_out_and_the_head_stays_within_it() {
        let big = vec![0u8; CERT_DATA / 2];
        let chain: ClientChain = vec![
            CertificateDer::from(b"leaf".to_vec()),
            CertificateDer::from(big.clone()),
            CertificateDer::from(big),
        ]
        .into();
        let mut headers = HeaderMap::new();
        set_fields(&mut headers, &export(), Some(&chain));
        assert!(headers.contains_key(wire::SSL_CLIENT_CERT));
        assert!(!headers.contains_key(wire::SSL_CLIENT_CERT_CHAIN));
        let total: usize = headers.values().map(|v| v.len()).sum();
        assert!(total <= CERT_DATA);
    }
}
