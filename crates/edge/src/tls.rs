//! The server's TLS configuration: certificate and key read here, in the edge, and nowhere else.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
use weir_conf::edge::{TlsOptions, VerifyClient};
use weir_conf::Tls;

/// Why the server's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// HTTPS is configured without a certificate or key path.
    #[error("an https listener needs SSLCertificateFile and SSLCertificateKeyFile")]
    NotConfigured,
    /// The certificate file is missing, unreadable or holds no PEM certificate.
    #[error("SSLCertificateFile {path}: {reason}")]
    Certificate { path: String, reason: String },
    /// The key file is missing, unreadable or holds no PEM private key.
    #[error("SSLCertificateKeyFile {path}: {reason}")]
    Key { path: String, reason: String },
    /// rustls refused the pair; usually the key does not belong to the certificate.
    #[error("the certificate and key cannot be used together: {0}")]
    Rejected(#[from] rustls::Error),
    /// SSLCACertificateFile is missing, unreadable or holds no usable CA certificate.
    #[error("SSLCACertificateFile {path}: {reason}")]
    ClientCa { path: String, reason: String },
    /// The self-signed pair could not be generated or written.
    #[error("could not create a self-signed certificate in {path}: {reason}")]
    Generate { path: String, reason: String },
}

/// Builds the rustls server configuration: the versions SSLProtocol allows (rustls offers only
/// forward-secret suites), client certificates per SSLVerifyClient, session tickets per
/// SSLSessionTickets, ALPN per Protocols.
pub fn server_config(tls: &Tls, options: &TlsOptions) -> Result<Arc<ServerConfig>, TlsError> {
    let (Some(cert_path), Some(key_path)) = (&tls.cert_file, &tls.key_file) else {
        return Err(TlsError::NotConfigured);
    };
    if tls.generate_self_signed && !cert_path.exists() && !key_path.exists() {
        generate_self_signed(cert_path, key_path)?;
    }
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_path)
        .and_then(|iter| iter.collect::<Result<_, _>>())
        .map_err(|error| TlsError::Certificate {
            path: cert_path.display().to_string(),
            reason: error.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Certificate {
            path: cert_path.display().to_string(),
            reason: "no PEM certificate in the file".to_string(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|error| TlsError::Key { path: key_path.display().to_string(), reason: error.to_string() })?;
    let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
    if options.versions.tls13 {
        versions.push(&rustls::version::TLS13);
    }
    if options.versions.tls12 {
        versions.push(&rustls::version::TLS12);
    }
    let builder = ServerConfig::builder_with_protocol_versions(&versions);
    let builder = match options.verify_client {
        VerifyClient::None => builder.with_no_client_auth(),
        mode => builder.with_client_cert_verifier(client_verifier(options, mode)?),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    config.alpn_protocols =
        if options.alpn_h2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    if options.session_tickets {
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    }
    Ok(Arc::new(config))
}

/// The verifier for client certificates chaining to SSLCACertificateFile.
fn client_verifier(
    options: &TlsOptions,
    mode: VerifyClient,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    let path = options.client_ca_file.as_ref().ok_or_else(|| TlsError::ClientCa {
        path: String::new(),
        reason: "SSLVerifyClient needs SSLCACertificateFile".to_string(),
    })?;
    let fail = |reason: String| TlsError::ClientCa { path: path.display().to_string(), reason };
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| fail(e.to_string()))?;
    for cert in certs {
        roots.add(cert).map_err(|e| fail(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(fail("no CA certificate in the file".to_string()));
    }
    let builder = rustls::server::WebPkiClientVerifier::builder(Arc::new(roots));
    let builder = if mode == VerifyClient::Optional { builder.allow_unauthenticated() } else { builder };
    builder.build().map_err(|e| fail(e.to_string()))
}

/// Writes a self-signed ECDSA P-256 pair for localhost and 127.0.0.1, key mode 0600.
fn generate_self_signed(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let fail = |reason: String| TlsError::Generate { path: cert_path.display().to_string(), reason };
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string(), "::1".to_string()];
    let pair = rcgen::generate_simple_self_signed(names).map_err(|e| fail(e.to_string()))?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    if let Some(dir) = key_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    write_private(key_path, pair.signing_key.serialize_pem().as_bytes()).map_err(|e| fail(e.to_string()))?;
    std::fs::write(cert_path, pair.cert.pem()).map_err(|e| fail(e.to_string()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate for localhost");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(bytes)
}

/// A certificate's subject as mod_ssl's SSL_CLIENT_S_DN gives it (RFC 2253 order and form).
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut parts = Vec::new();
    for rdn in certificate.subject().iter_rdn() {
        for attribute in rdn.iter() {
            let key =
                x509_parser::objects::oid2abbrev(attribute.attr_type(), x509_parser::objects::oid_registry())
                    .map(str::to_string)
                    .unwrap_or_else(|_| attribute.attr_type().to_id_string());
            let value = attribute.as_str().ok()?;
            parts.push(format!("{key}={}", escape_dn(value)));
        }
    }
    // RFC 2253 lists the most specific RDN first.
    parts.reverse();
    Some(parts.join(","))
}

fn escape_dn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == value.chars().count() && c == ' ');
        if edge || matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The subject and expiry of the first certificate in a PEM file, for the start-up summary.
/// Reads the certificate only, never the key.
pub fn certificate_summary(path: &Path) -> Option<(String, String)> {
    let der = CertificateDer::pem_file_iter(path).ok()?.next()?.ok()?;
    let subject = subject_dn(der.as_ref())?;
    let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let expiry = certificate.validity().not_after.to_rfc2822().unwrap_or_else(|_| "unknown".to_string());
    Some((subject, expiry))
}
