//! `weir cert`: certificates for a site and for an mTLS fleet, with rcgen. ECDSA P-256 keys,
//! written with mode 0600, and never over an existing file without `--force`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, KeyUsagePurpose,
};

/// Why a certificate could not be made.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{0} exists; pass --force to replace it")]
    Exists(PathBuf),
    #[error("could not write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("could not read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("certificate generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// `--cn` names the files too: one that is not a plain file name would put them elsewhere.
    #[error("--cn {0:?} cannot name a file in --out: use letters, digits, '-', '_', '.' and '@', not starting with '.'")]
    FileName(String),
}

/// Days a generated certificate is valid: servers one year less a day (what clients accept),
/// the CA ten years.
const SERVER_DAYS: i64 = 364;
const CA_DAYS: i64 = 3650;

fn validity(params: &mut CertificateParams, days: i64) {
    let start = time_now();
    params.not_before = start;
    params.not_after = start + time::Duration::days(days);
}

fn time_now() -> time::OffsetDateTime {
    time::OffsetDateTime::now_utc() - time::Duration::minutes(5)
}

/// A self-signed server certificate for `names` (DNS names or IP addresses).
pub fn selfsigned(out: &Path, names: &[String], force: bool) -> Result<Vec<PathBuf>, CertError> {
    let (cert, key) = (out.join("server.crt"), out.join("server.key"));
    refuse_overwrite(&[&cert, &key], force)?;
    let mut params = CertificateParams::new(names.to_vec())?;
    params.distinguished_name = name(names.first().map_or("localhost", String::as_str), None);
    validity(&mut params, SERVER_DAYS);
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let pair = KeyPair::generate()?;
    let certificate = params.self_signed(&pair)?;
    write_file(&cert, certificate.pem().as_bytes(), 0o644)?;
    write_file(&key, pair.serialize_pem().as_bytes(), 0o600)?;
    Ok(vec![cert, key])
}

/// A small CA for a fleet: `ca.crt` (give it to SSLCACertificateFile) and `ca.key`.
pub fn ca(out: &Path, common_name: &str, force: bool) -> Result<Vec<PathBuf>, CertError> {
    let (cert, key) = (out.join("ca.crt"), out.join("ca.key"));
    refuse_overwrite(&[&cert, &key], force)?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.distinguished_name = name(common_name, None);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    validity(&mut params, CA_DAYS);
    let pair = KeyPair::generate()?;
    let certificate = params.self_signed(&pair)?;
    write_file(&cert, certificate.pem().as_bytes(), 0o644)?;
    write_file(&key, pair.serialize_pem().as_bytes(), 0o600)?;
    Ok(vec![cert, key])
}

/// A certificate signed by the CA in `ca_dir`: a server's (`names`) or a device's (`client`).
pub fn signed(
    ca_dir: &Path,
    out: &Path,
    stem: &str,
    names: &[String],
    organization: Option<&str>,
    client: bool,
    force: bool,
) -> Result<Vec<PathBuf>, CertError> {
    if !is_plain_file_name(stem) {
        return Err(CertError::FileName(stem.to_string()));
    }
    let (cert, key) = (out.join(format!("{stem}.crt")), out.join(format!("{stem}.key")));
    refuse_overwrite(&[&cert, &key], force)?;
    let ca_pem = read(&ca_dir.join("ca.crt"))?;
    let ca_key = KeyPair::from_pem(&read(&ca_dir.join("ca.key"))?)?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
    let sans = if client { Vec::new() } else { names.to_vec() };
    let mut params = CertificateParams::new(sans)?;
    params.distinguished_name = name(names.first().map_or(stem, String::as_str), organization);
    params.extended_key_usages =
        vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
    validity(&mut params, SERVER_DAYS);
    let pair = KeyPair::generate()?;
    let certificate = params.signed_by(&pair, &issuer)?;
    write_file(&cert, certificate.pem().as_bytes(), 0o644)?;
    write_file(&key, pair.serialize_pem().as_bytes(), 0o600)?;
    Ok(vec![cert, key])
}

/// A name that stays in its directory as `NAME.crt`: no separator, no `..`, no hidden file, no
/// control or shell-special character (device names are host-name-like: `meter-0042`).
fn is_plain_file_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name.len() <= 200
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
}

fn name(common_name: &str, organization: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    if let Some(organization) = organization {
        dn.push(DnType::OrganizationName, organization);
    }
    dn
}

fn refuse_overwrite(paths: &[&Path], force: bool) -> Result<(), CertError> {
    if !force {
        if let Some(existing) = paths.iter().find(|p| p.exists()) {
            return Err(CertError::Exists(existing.to_path_buf()));
        }
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CertError> {
    std::fs::read_to_string(path).map_err(|source| CertError::Read { path: path.to_path_buf(), source })
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), CertError> {
    let fail = |source| CertError::Write { path: path.to_path_buf(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    // Replaced whole (with --force): a new file with the right mode from its first byte.
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(fail)?;
    file.write_all(bytes).map_err(fail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_must_stay_in_their_directory() {
        for good in ["meter-0042", "pump_7.site-a", "dev@plant"] {
            assert!(is_plain_file_name(good), "{good}");
        }
        for bad in ["", ".", "..", "../x", "a/b", ".hidden", "a\nb", "a b", "/abs"] {
            assert!(!is_plain_file_name(bad), "{bad:?}");
        }
    }
}
