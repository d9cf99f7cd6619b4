//! The server's TLS configuration: certificate and key read here, in the edge, and nowhere else.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::ServerConfig;
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
    /// The self-signed pair could not be generated or written.
    #[error("could not create a self-signed certificate in {path}: {reason}")]
    Generate { path: String, reason: String },
}

/// Builds the rustls server configuration: TLS 1.2 and 1.3, ALPN h2 then http/1.1.
pub fn server_config(tls: &Tls) -> Result<Arc<ServerConfig>, TlsError> {
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
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|error| TlsError::Key {
        path: key_path.display().to_string(),
        reason: error.to_string(),
    })?;
    let mut config = ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Writes a self-signed ECDSA P-256 pair for localhost and 127.0.0.1, key mode 0600.
fn generate_self_signed(cert_path: &Path, key_path: &Path) -> Result<(), TlsError> {
    let fail = |reason: String| TlsError::Generate {
        path: cert_path.display().to_string(),
        reason,
    };
    let names = vec![
        "localhost".to_string(),
        "127.0.0.1".to_string(),
        "::1".to_string(),
    ];
    let pair = rcgen::generate_simple_self_signed(names).map_err(|e| fail(e.to_string()))?;
    if let Some(dir) = cert_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    if let Some(dir) = key_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| fail(e.to_string()))?;
    }
    write_private(key_path, pair.signing_key.serialize_pem().as_bytes())
        .map_err(|e| fail(e.to_string()))?;
    std::fs::write(cert_path, pair.cert.pem()).map_err(|e| fail(e.to_string()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate for localhost");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(bytes)
}
