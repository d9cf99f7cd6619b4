//! `SSLOptions +ExportCertData`: scripts of a site with the option get SSL_SERVER_CERT and, from
//! a client with a certificate, SSL_CLIENT_CERT and SSL_CLIENT_CERT_CHAIN_n in PEM, as mod_ssl
//! gives them, over HTTP/1.1 and h2; a site without it gets none; no request header of any
//! spelling can set them.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};

use crate::support::raw;
use crate::support::{Site, Weir};

/// Prints each certificate variable between markers.
const SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
    printf 'server=[%s]\\n' \"$SSL_SERVER_CERT\"\nprintf 'client=[%s]\\n' \"$SSL_CLIENT_CERT\"\n\
    printf 'chain0=[%s]\\n' \"$SSL_CLIENT_CERT_CHAIN_0\"\nprintf 'chain1=[%s]\\n' \"$SSL_CLIENT_CERT_CHAIN_1\"\n\
    printf 'dn=[%s]\\n' \"$SSL_CLIENT_S_DN\"\n";

type Issuer = rcgen::Issuer<'static, rcgen::KeyPair>;

fn ca_params(name: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    params
}

/// A root CA (its PEM), an intermediate it signed (its DER), and a client certificate the
/// intermediate signed, with its key.
fn client_chain() -> (String, CertificateDer<'static>, CertificateDer<'static>, PrivateKeyDer<'static>) {
    let root_key = rcgen::KeyPair::generate().unwrap();
    let root_params = ca_params("Meter Root CA");
    let root = root_params.self_signed(&root_key).unwrap();
    let root_issuer = Issuer::new(root_params, root_key);
    let mid_key = rcgen::KeyPair::generate().unwrap();
    let mid_params = ca_params("Meter Issuing CA");
    let mid = mid_params.signed_by(&mid_key, &root_issuer).unwrap();
    let mid_issuer = Issuer::new(mid_params, mid_key);
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(rcgen::DnType::CommonName, "meter-0042");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
    let key = rcgen::KeyPair::generate().unwrap();
    let leaf = params.signed_by(&key, &mid_issuer).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    (root.pem(), leaf.der().clone(), mid.der().clone(), key)
}

/// The text between `name=[` and `]` in a script's output.
fn value<'a>(text: &'a str, name: &str) -> &'a str {
    let start = format!("{name}=[");
    let from = text.find(&start).map(|i| i + start.len()).unwrap_or(text.len());
    let rest = &text[from..];
    &rest[..rest.find(']').unwrap_or(rest.len())]
}

/// The DER of a PEM certificate a script printed, or `None`.
fn der_of(pem: &str) -> Option<Vec<u8>> {
    CertificateDer::from_pem_slice(pem.as_bytes()).ok().map(|c| c.as_ref().to_vec())
}

fn h1(weir: &Weir, config: &Arc<rustls::ClientConfig>, host: &str, extra: &str) -> String {
    let request = format!("GET /cgi-bin/certs HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n");
    let exchange =
        raw::exchange(weir.addr(), config.clone(), b"", request.as_bytes(), Duration::from_secs(30));
    let responses = raw::responses(&exchange.bytes).unwrap_or_else(|e| panic!("{e}\n{}", weir.logs()));
    assert_eq!(responses[0].status, 200, "{}", responses[0].text());
    responses[0].text()
}

fn h2(weir: &Weir, config: &Arc<rustls::ClientConfig>, host: &str, forged: &[(&str, &str)]) -> String {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let tcp = tokio::net::TcpStream::connect(weir.addr()).await.unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let stream = tokio_rustls::TlsConnector::from(config.clone()).connect(name, tcp).await.unwrap();
            assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
            let (mut sender, conn) = hyper::client::conn::http2::handshake(
                hyper_util::rt::TokioExecutor::new(),
                TokioIo::new(stream),
            )
            .await
            .unwrap();
            tokio::spawn(conn);
            let mut request = http::Request::builder().uri(format!("https://{host}/cgi-bin/certs"));
            for (name, value) in forged {
                request = request.header(*name, *value);
            }
            let response = sender.send_request(request.body(Empty::<Bytes>::new()).unwrap()).await.unwrap();
            assert_eq!(response.status(), 200);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            String::from_utf8_lossy(&body).into_owned()
        })
        .await
        .expect("h2 exchange in time")
    })
}

#[test]
fn scripts_get_the_certificates_where_the_option_is_on_and_nowhere_else() {
    let site = Site::new();
    let (root_pem, leaf, mid, key) = client_chain();
    let ca_path = site.path().join("client-ca.pem");
    std::fs::write(&ca_path, &root_pem).unwrap();
    site.script("certs", SCRIPT);
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "SSLVerifyClient optional\nSSLCACertificateFile {}\n\
         <VirtualHost *:*>\nServerName plain.test\nDocumentRoot {d}/htdocs\n</VirtualHost>\n\
         <VirtualHost *:*>\nServerName localhost\nDocumentRoot {d}/htdocs\nSSLOptions +StdEnvVars +ExportCertData\n</VirtualHost>\n",
        ca_path.display()
    ));
    let server_der = der_of(&weir.cert_pem).unwrap();
    let with_cert = |alpn: &[u8]| {
        raw::tls_config(&weir.cert_pem, &[alpn], Some((vec![leaf.clone(), mid.clone()], key.clone_key())))
    };
    let forged = [
        ("ssl-client-cert", "FORGED"),
        ("SSL_CLIENT_CERT", "FORGED"),
        ("x-weir-ssl-client-cert", "Rk9SR0VE"),
        ("X-Weir-Ssl-Server-Cert", "Rk9SR0VE"),
        ("x-weir-ssl-client-cert-chain", "Rk9SR0VE,Rk9SR0VE"),
    ];
    let forged_h1: String = forged.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();

    // The exporting site, with a client certificate and its intermediate: every variable, each
    // the certificate itself.
    let h1_text = h1(&weir, &with_cert(b"http/1.1"), "localhost", &forged_h1);
    let h2_text = h2(&weir, &with_cert(b"h2"), "localhost", &forged);
    for text in [&h1_text, &h2_text] {
        assert_eq!(der_of(value(text, "server")), Some(server_der.clone()), "{text}");
        assert!(value(text, "server").starts_with("-----BEGIN CERTIFICATE-----\n"), "{text}");
        assert_eq!(der_of(value(text, "client")).as_deref(), Some(leaf.as_ref()), "{text}");
        assert_eq!(der_of(value(text, "chain0")).as_deref(), Some(mid.as_ref()), "{text}");
        assert_eq!(value(text, "chain1"), "", "{text}");
        assert!(value(text, "dn").contains("meter-0042"), "{text}");
        assert!(!text.contains("FORGED") && !text.contains("Rk9SR0VE"), "{text}");
    }

    // Without a client certificate: the server's only, and no forged client's.
    let anonymous = raw::tls_config(&weir.cert_pem, &[b"http/1.1"], None);
    let text = h1(&weir, &anonymous, "localhost", &forged_h1);
    assert_eq!(der_of(value(&text, "server")), Some(server_der.clone()), "{text}");
    assert_eq!((value(&text, "client"), value(&text, "chain0")), ("", ""), "{text}");

    // The other site has no ExportCertData: nothing, whatever the client sends.
    let text = h1(&weir, &with_cert(b"http/1.1"), "plain.test", &forged_h1);
    assert_eq!(
        (value(&text, "server"), value(&text, "client"), value(&text, "chain0")),
        ("", "", ""),
        "{text}"
    );
    assert!(value(&text, "dn").contains("meter-0042"), "the standard variables stay: {text}");
    let text = h2(&weir, &with_cert(b"h2"), "plain.test", &forged);
    assert_eq!(
        (value(&text, "server"), value(&text, "client"), value(&text, "chain0")),
        ("", "", ""),
        "{text}"
    );
}
