//! What the edge knows of a client's connection that a worker can learn only from the edge: the
//! addresses, and the TLS session in mod_ssl's terms.

use std::net::SocketAddr;

/// Facts about the client connection that the worker must learn from the edge alone.
#[derive(Debug, Clone)]
pub struct ClientFacts {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    /// The TLS session, on https listeners.
    pub tls: Option<TlsInfo>,
}

/// A TLS session in mod_ssl's terms.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// `TLSv1.2` or `TLSv1.3`.
    pub protocol: &'static str,
    /// OpenSSL's name for the suite, as mod_ssl's SSL_CIPHER gives it.
    pub cipher: &'static str,
    /// mod_ssl's SSL_CLIENT_VERIFY: `SUCCESS` with a verified client certificate, else `NONE`.
    pub client_verify: &'static str,
    /// The verified client certificate's subject, RFC 2253 style (SSL_CLIENT_S_DN).
    pub client_subject: Option<String>,
    /// The name the client sent by SNI, when sites have certificates of their own.
    pub sni: Option<String>,
    /// The site whose certificate the handshake showed, when sites have certificates of
    /// their own (see [`crate::hosts::Hosts::misdirected`]).
    pub handshake_site: Option<usize>,
    /// The certificates the client sent, leaf first: kept only when some site exports them to
    /// scripts (`SSLOptions +ExportCertData`).
    pub client_chain: Option<crate::cert_export::ClientChain>,
}

impl TlsInfo {
    pub fn of(connection: &rustls::ServerConnection) -> TlsInfo {
        let protocol = match connection.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "unknown",
        };
        let cipher =
            connection.negotiated_cipher_suite().map_or("unknown", |suite| openssl_name(suite.suite()));
        let client_subject = connection
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| crate::tls::subject_dn(leaf.as_ref()));
        TlsInfo {
            protocol,
            cipher,
            client_verify: if client_subject.is_some() { "SUCCESS" } else { "NONE" },
            client_subject,
            // Kept only where sites have certificates of their own (set by the handshake).
            sni: None,
            handshake_site: None,
            client_chain: None,
        }
    }
}

/// OpenSSL's names for the suites rustls offers: what mod_ssl puts in SSL_CIPHER, and what
/// scripts written for Apache compare against.
fn openssl_name(suite: rustls::CipherSuite) -> &'static str {
    use rustls::CipherSuite as S;
    match suite {
        S::TLS13_AES_128_GCM_SHA256 => "TLS_AES_128_GCM_SHA256",
        S::TLS13_AES_256_GCM_SHA384 => "TLS_AES_256_GCM_SHA384",
        S::TLS13_CHACHA20_POLY1305_SHA256 => "TLS_CHACHA20_POLY1305_SHA256",
        S::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 => "ECDHE-ECDSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 => "ECDHE-ECDSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-ECDSA-CHACHA20-POLY1305",
        S::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => "ECDHE-RSA-AES128-GCM-SHA256",
        S::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => "ECDHE-RSA-AES256-GCM-SHA384",
        S::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => "ECDHE-RSA-CHACHA20-POLY1305",
        _ => "unknown",
    }
}
