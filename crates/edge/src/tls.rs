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
    let builder =
        ServerConfig::builder_with_provider(Arc::new(provider(options))).with_protocol_versions(&versions)?;
    let builder = match options.verify_client {
        VerifyClient::None => builder.with_no_client_auth(),
        mode => builder.with_client_cert_verifier(client_verifier(options, mode)?),
    };
    let mut config = builder.with_single_cert(certs, key)?;
    // SSLHonorCipherOrder: the first suite of ours the client offers, not the client's favourite.
    config.ignore_client_order = options.honor_cipher_order;
    config.alpn_protocols =
        if options.alpn_h2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    if options.session_tickets {
        config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new()?;
    }
    Ok(Arc::new(config))
}

/// The crypto provider with only the suites SSLCipherSuite allows, in its order (TLS 1.3 first:
/// the version decides before the suite does).
fn provider(options: &TlsOptions) -> rustls::crypto::CryptoProvider {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    let available = std::mem::take(&mut provider.cipher_suites);
    provider.cipher_suites = options
        .tls13_suites
        .iter()
        .chain(&options.tls12_suites)
        .filter_map(|code| available.iter().find(|suite| u16::from(suite.suite()) == *code).copied())
        .collect();
    provider
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
    write_new(cert_path, pair.cert.pem().as_bytes(), 0o644).map_err(|e| fail(e.to_string()))?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed certificate for localhost");
    Ok(())
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_new(path, bytes, 0o600)
}

/// A new file, created exclusively and never through a symlink (this runs as root): a file or a
/// dangling symlink already there by that name is an error, not a target.
fn write_new(path: &Path, bytes: &[u8], mode: u32) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)?;
    file.write_all(bytes)
}

/// A certificate's subject as SSL_CLIENT_S_DN, in RFC 4514's string form: the most specific RDN
/// first, `+` between the attributes of one RDN. Every subject of a certificate rustls accepted
/// has one: strings of any ASN.1 string type are decoded, other values (and attributes known
/// only by number) are written as `#` and their DER in hex, and control characters are
/// escaped (`\0D`), so nothing in a subject can break the line it is passed on.
pub fn subject_dn(der: &[u8]) -> Option<String> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der).ok()?;
    let mut rdns = Vec::new();
    for rdn in certificate.subject().iter_rdn() {
        let attributes: Vec<String> = rdn
            .iter()
            .map(|attribute| {
                let name = x509_parser::objects::oid2abbrev(
                    attribute.attr_type(),
                    x509_parser::objects::oid_registry(),
                )
                .ok();
                let value = attribute.attr_value();
                match (name, dn_string(value)) {
                    (Some(name), Some(text)) => format!("{name}={}", escape_dn(&text)),
                    _ => format!(
                        "{}=#{}",
                        name.map_or_else(|| attribute.attr_type().to_id_string(), str::to_string),
                        hex(&der_of(value))
                    ),
                }
            })
            .collect();
        rdns.push(attributes.join("+"));
    }
    // RFC 4514 lists the most specific RDN first.
    rdns.reverse();
    Some(rdns.join(","))
}

/// The text of a string-typed attribute value; `None` for any other type, or bytes its type
/// does not allow.
fn dn_string(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> Option<String> {
    use x509_parser::der_parser::asn1_rs::Tag;
    let data = value.data;
    match value.header.tag() {
        Tag::Utf8String | Tag::PrintableString | Tag::Ia5String | Tag::NumericString | Tag::VisibleString => {
            std::str::from_utf8(data).ok().map(str::to_string)
        }
        // T.61 as Latin-1, the way OpenSSL reads it.
        Tag::TeletexString => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString if data.len() % 2 == 0 => {
            let units = data.chunks_exact(2).map(|pair| u16::from_be_bytes([pair[0], pair[1]]));
            char::decode_utf16(units).collect::<Result<String, _>>().ok()
        }
        Tag::UniversalString if data.len() % 4 == 0 => data
            .chunks_exact(4)
            .map(|quad| char::from_u32(u32::from_be_bytes([quad[0], quad[1], quad[2], quad[3]])))
            .collect(),
        _ => None,
    }
}

/// The DER encoding of a value: its tag, definite length and contents.
fn der_of(value: &x509_parser::der_parser::asn1_rs::Any<'_>) -> Vec<u8> {
    let mut out = match value.header.raw_tag() {
        Some(raw) => raw.to_vec(),
        None => {
            let class = (value.header.class() as u8) << 6;
            let constructed = if value.header.is_constructed() { 0x20 } else { 0 };
            vec![class | constructed | (value.header.tag().0 as u8 & 0x1f)]
        }
    };
    let len = value.data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|&b| b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(value.data);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// RFC 4514's escaping: the special characters with a backslash, a leading space or `#` and a
/// trailing space too; control characters (NUL, CR, LF…) as `\` and the hex of their bytes.
fn escape_dn(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let count = value.chars().count();
    for (i, c) in value.chars().enumerate() {
        let edge = (i == 0 && (c == ' ' || c == '#')) || (i + 1 == count && c == ' ');
        if c.is_control() {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                out.push_str(&format!("\\{byte:02X}"));
            }
            continue;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_the_configuration_names_is_in_the_provider() {
        let options = TlsOptions::default();
        let suites = provider(&options).cipher_suites;
        let codes: Vec<u16> = suites.iter().map(|s| u16::from(s.suite())).collect();
        let mut expected = options.tls13_suites.clone();
        expected.extend(&options.tls12_suites);
        assert_eq!(codes, expected);
        assert_eq!(codes.len(), 9);
    }

    fn subject_of(dn: rcgen::DistinguishedName) -> Option<String> {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name = dn;
        let key = rcgen::KeyPair::generate().unwrap();
        subject_dn(params.self_signed(&key).unwrap().der())
    }

    #[test]
    fn every_subject_has_an_rfc_4514_form() {
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, "a,b\r\n#x ");
        let bmp = rcgen::string::BmpString::try_from("Wässer").unwrap();
        dn.push(rcgen::DnType::OrganizationName, rcgen::DnValue::BmpString(bmp));
        dn.push(rcgen::DnType::CustomDnType(vec![1, 3, 6, 1, 4, 1, 99999, 1]), "id");
        assert_eq!(subject_of(dn).unwrap(), "1.3.6.1.4.1.99999.1=#0c026964,O=Wässer,CN=a\\,b\\0D\\0A#x\\ ");
    }
}
