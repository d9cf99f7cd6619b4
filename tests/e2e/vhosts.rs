//! `<VirtualHost>`: the site a request reaches by address and Host (h1) or `:authority` (h2),
//! the certificate chosen by SNI, 421 for a Host another certificate covers, each site's
//! scripts and access log kept to it, and Debian's stock site files.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};

use crate::support::client::Proto;
use crate::support::{wait_until, weir_command, Site};

/// A certificate whose subject CN and only name are `name`: (cert PEM, key PEM).
fn certificate(name: &str) -> (String, String) {
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
    params.distinguished_name.push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().expect("key");
    let cert = params.self_signed(&key).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

/// Writes `name`'s certificate and key into the site's directory; returns the cert PEM.
fn write_certificate(site: &Site, name: &str) -> String {
    let (cert, key) = certificate(name);
    std::fs::write(site.path().join(format!("{name}.crt")), &cert).unwrap();
    let key_path = site.path().join(format!("{name}.key"));
    std::fs::write(&key_path, key).unwrap();
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
    cert
}

/// A document root under the site's directory with an index page saying `text`.
fn docroot(site: &Site, dir: &str, text: &str) {
    let root = site.path().join(dir);
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("index.html"), text).unwrap();
}

/// One HTTP/1.1 GET over plain TCP naming `host`: (status, body).
fn plain_get(addr: SocketAddr, host: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or(String::new(), |(_, b)| b.to_string());
    (status, body)
}

/// One request over TLS: the handshake verifies the server as `server_name` (sent by SNI only
/// when `sni`), then asks for `path` on `authority` (Host, or h2's `:authority`).
fn tls_get(
    addr: SocketAddr,
    roots: &[&str],
    server_name: &str,
    sni: bool,
    proto: Proto,
    authority: &str,
    path: &str,
) -> Result<(u16, String), String> {
    let mut store = rustls::RootCertStore::empty();
    for pem in roots {
        store.add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder().with_root_certificates(store).with_no_client_auth();
    config.enable_sni = sni;
    config.alpn_protocols = vec![match proto {
        Proto::H1 => b"http/1.1".to_vec(),
        Proto::H2 => b"h2".to_vec(),
    }];
    let config = Arc::new(config);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), async {
            let tcp = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
            let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS: {e}"))?;
            let io = TokioIo::new(stream);
            let request = http::Request::builder().method("GET");
            let response = match proto {
                Proto::H1 => {
                    let request = request
                        .uri(path)
                        .header("host", authority)
                        .body(Full::new(Bytes::new()))
                        .map_err(|e| e.to_string())?;
                    let (mut sender, conn) =
                        hyper::client::conn::http1::handshake(io).await.map_err(|e| e.to_string())?;
                    tokio::spawn(conn);
                    sender.send_request(request).await.map_err(|e| e.to_string())?
                }
                Proto::H2 => {
                    let request = request
                        .uri(format!("https://{authority}{path}"))
                        .body(Full::new(Bytes::new()))
                        .map_err(|e| e.to_string())?;
                    let (mut sender, conn) =
                        hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
                            .await
                            .map_err(|e| e.to_string())?;
                    tokio::spawn(conn);
                    sender.send_request(request).await.map_err(|e| e.to_string())?
                }
            };
            let status = response.status().as_u16();
            let body = response.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
            Ok((status, String::from_utf8_lossy(&body).into_owned()))
        })
        .await
        .map_err(|_| "timed out".to_string())?
    })
}

/// The subject `openssl s_client` was shown, spaces removed (`CN=b.test`); `None` without
/// openssl (the test then skips, unless WEIR_REQUIRE_OPENSSL=1).
fn subject_shown(addr: SocketAddr, servername: Option<&str>) -> Option<String> {
    let mut command = Command::new("openssl");
    command.args(["s_client", "-connect", &addr.to_string()]);
    match servername {
        Some(name) => command.args(["-servername", name]),
        None => command.arg("-noservername"),
    };
    let output = match command.stdin(std::process::Stdio::null()).output() {
        Ok(output) => output,
        Err(_) => {
            assert_ne!(std::env::var("WEIR_REQUIRE_OPENSSL").as_deref(), Ok("1"), "openssl is missing");
            return None;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let subject = text.lines().find_map(|line| line.strip_prefix("subject=")).unwrap_or("(no subject line)");
    Some(subject.replace(' ', ""))
}

#[test]
fn host_picks_the_vhost_over_h1_and_h2_with_its_own_access_log() {
    let site = Site::new();
    docroot(&site, "docs-a", "site A\n");
    docroot(&site, "docs-b", "site B\n");
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "<VirtualHost *:*>\n ServerName a.test\n DocumentRoot {d}/docs-a\n CustomLog {d}/a-access.log combined\n</VirtualHost>\n\
         <VirtualHost *>\n ServerName b.test\n ServerAlias *.b.test web?.example.org\n DocumentRoot {d}/docs-b\n CustomLog {d}/b-access.log combined\n \
         <Location /private>\n  Require all denied\n </Location>\n</VirtualHost>\n"
    ));
    let cert = weir.cert_pem.clone();
    let get =
        |proto, authority: &str| tls_get(weir.addr(), &[&cert], "localhost", true, proto, authority, "/");
    for proto in [Proto::H1, Proto::H2] {
        assert_eq!(get(proto, "a.test"), Ok((200, "site A\n".into())), "{proto:?}");
        assert_eq!(get(proto, "B.test:443"), Ok((200, "site B\n".into())), "{proto:?}");
        assert_eq!(get(proto, "deep.x.b.test"), Ok((200, "site B\n".into())), "alias wildcard, {proto:?}");
        assert_eq!(get(proto, "web7.example.org"), Ok((200, "site B\n".into())), "alias ?, {proto:?}");
        assert_eq!(get(proto, "web77.example.org"), Ok((200, "site A\n".into())), "{proto:?}");
        assert_eq!(
            get(proto, "unknown.test"),
            Ok((200, "site A\n".into())),
            "the first is the default, {proto:?}"
        );
    }
    // A section's <Location> holds for its site only.
    let private = |authority: &str| {
        tls_get(weir.addr(), &[&cert], "localhost", true, Proto::H1, authority, "/private/x").map(|(s, _)| s)
    };
    assert_eq!(private("b.test"), Ok(403));
    assert_eq!(private("a.test"), Ok(404));
    let logged = |name: &str| std::fs::read_to_string(weir.path().join(name)).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || logged("a-access.log").lines().count() == 7
            && logged("b-access.log").lines().count() == 7),
        "a:\n{}\nb:\n{}",
        logged("a-access.log"),
        logged("b-access.log")
    );
    assert!(
        !logged("access.log").contains("GET / "),
        "the main server's log has none: {}",
        logged("access.log")
    );
}

#[test]
fn an_address_vhost_wins_its_address_and_unclaimed_addresses_get_the_main_server() {
    let site = Site::new();
    docroot(&site, "docs-ip", "by address\n");
    docroot(&site, "docs-star", "by star\n");
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "Listen 127.0.0.1:0 http\nListen 127.0.0.2:0 http\n\
         <VirtualHost *:*>\n ServerName star.test\n DocumentRoot {d}/docs-star\n</VirtualHost>\n\
         <VirtualHost 127.0.0.2:*>\n ServerName ip.test\n DocumentRoot {d}/docs-ip\n</VirtualHost>\n"
    ));
    let on = |ip: &str| *weir.http.iter().find(|a| a.ip().to_string() == ip).expect("listener");
    assert_eq!(plain_get(on("127.0.0.1"), "ip.test", "/"), (200, "by star\n".into()), "not its address");
    assert_eq!(
        plain_get(on("127.0.0.2"), "star.test", "/"),
        (200, "by address\n".into()),
        "its address first"
    );
    drop(weir);

    let site = Site::new();
    docroot(&site, "docs-ip", "by address\n");
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "Listen 127.0.0.1:0 http\nListen 127.0.0.2:0 http\n\
         <VirtualHost 127.0.0.2:*>\n ServerName ip.test\n DocumentRoot {d}/docs-ip\n</VirtualHost>\n"
    ));
    let on = |ip: &str| *weir.http.iter().find(|a| a.ip().to_string() == ip).expect("listener");
    assert_eq!(
        plain_get(on("127.0.0.1"), "ip.test", "/"),
        (200, "<h1>index</h1>\n".into()),
        "the main server"
    );
    assert_eq!(plain_get(on("127.0.0.2"), "other.test", "/"), (200, "by address\n".into()));
}

/// Two sites with certificates of their own on one address, and the main server's certificate.
fn two_certificate_sites() -> (crate::support::Weir, String, String) {
    two_certificate_sites_with("")
}

/// [`two_certificate_sites`] with `b_extra` in b.test's section.
fn two_certificate_sites_with(b_extra: &str) -> (crate::support::Weir, String, String) {
    let site = Site::new();
    let a = write_certificate(&site, "a.test");
    let b = write_certificate(&site, "b.test");
    docroot(&site, "docs-a", "site A\n");
    docroot(&site, "docs-b", "site B\n");
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "<VirtualHost *:*>\n ServerName a.test\n DocumentRoot {d}/docs-a\n SSLEngine on\n \
         SSLCertificateFile {d}/a.test.crt\n SSLCertificateKeyFile {d}/a.test.key\n</VirtualHost>\n\
         <VirtualHost *:*>\n ServerName b.test\n DocumentRoot {d}/docs-b\n SSLEngine on\n \
         SSLCertificateFile {d}/b.test.crt\n SSLCertificateKeyFile {d}/b.test.key\n{b_extra}</VirtualHost>\n"
    ));
    (weir, a, b)
}

/// A 421 was answered with the ErrorDocument of the site the Host named, a site this connection
/// may not reach (its Alias and files included). It takes the built-in page now.
#[test]
fn a_misdirected_request_never_gets_the_named_sites_error_document() {
    let (weir, a, b) =
        two_certificate_sites_with(" ErrorDocument 421 \"B-ONLY-PAGE\"\n ErrorDocument 404 \"B-404\"\n");
    let roots = [a.as_str(), b.as_str()];
    for proto in [Proto::H1, Proto::H2] {
        let got = tls_get(weir.addr(), &roots, "a.test", true, proto, "b.test", "/");
        let (status, body) = got.unwrap_or_else(|e| panic!("{proto:?}: {e}"));
        assert_eq!(status, 421, "{proto:?}");
        assert!(!body.contains("B-ONLY-PAGE"), "{proto:?}: {body}");
        // On its own connection, b.test's documents hold.
        let got = tls_get(weir.addr(), &roots, "b.test", true, proto, "b.test", "/missing");
        assert_eq!(got, Ok((404, "B-404".into())), "{proto:?}");
    }
}

#[test]
fn sni_picks_the_certificate_and_no_sni_gets_the_default_vhosts() {
    let (weir, a, b) = two_certificate_sites();
    let Some(shown) = subject_shown(weir.addr(), Some("b.test")) else {
        eprintln!("skipped: openssl is not installed");
        return;
    };
    assert_eq!(shown, "CN=b.test");
    assert_eq!(subject_shown(weir.addr(), Some("a.test")).as_deref(), Some("CN=a.test"));
    assert_eq!(subject_shown(weir.addr(), None).as_deref(), Some("CN=a.test"), "no SNI: the first vhost's");
    assert_eq!(subject_shown(weir.addr(), Some("nobody.test")).as_deref(), Some("CN=a.test"), "unknown name");
    for proto in [Proto::H1, Proto::H2] {
        let got = tls_get(weir.addr(), &[&a, &b], "b.test", true, proto, "b.test", "/");
        assert_eq!(got, Ok((200, "site B\n".into())), "{proto:?}");
    }
}

#[test]
fn a_host_another_certificate_covers_is_misdirected_on_this_connection() {
    let (weir, a, b) = two_certificate_sites();
    let roots = [a.as_str(), b.as_str()];
    for proto in [Proto::H1, Proto::H2] {
        // What an h2 client coalescing b.test onto a connection made for a.test would send.
        let got = tls_get(weir.addr(), &roots, "a.test", true, proto, "b.test", "/");
        assert_eq!(got.map(|(status, _)| status), Ok(421), "{proto:?}");
        let got = tls_get(weir.addr(), &roots, "a.test", true, proto, "a.test", "/");
        assert_eq!(got, Ok((200, "site A\n".into())), "{proto:?}");
        // Without SNI the handshake is the default vhost's (a.test): b.test is misdirected too,
        // as in httpd 2.4.64.
        let got = tls_get(weir.addr(), &roots, "a.test", false, proto, "b.test", "/");
        assert_eq!(got.map(|(status, _)| status), Ok(421), "no SNI, {proto:?}");
    }
}

#[test]
fn a_vhosts_scripts_are_unreachable_through_another_vhost() {
    let site = Site::new();
    docroot(&site, "docs-a", "site A\n");
    let d = site.path().display().to_string();
    std::fs::create_dir_all(site.path().join("docs-b/a-cgi")).unwrap();
    let script = site.path().join("docs-b/a-cgi/who");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'complaint from who' >&2\nprintf 'Content-Type: text/plain\\n\\n%s|%s|%s\\n' \"$DOCUMENT_ROOT\" \"$SERVER_NAME\" \"$SERVER_ADMIN\"\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    // B's DocumentRoot holds A's script directory: neither B's name nor its paths reach it.
    let weir = site.start(&format!(
        "ServerAdmin main@example.org\n\
         <VirtualHost *:*>\n ServerName a.test\n ServerAdmin a@example.org\n DocumentRoot {d}/docs-a\n ScriptAlias /app/ {d}/docs-b/a-cgi/\n</VirtualHost>\n\
         <VirtualHost *:*>\n ServerName b.test\n DocumentRoot {d}/docs-b\n</VirtualHost>\n"
    ));
    let cert = weir.cert_pem.clone();
    let get = |authority: &str, path: &str| {
        tls_get(weir.addr(), &[&cert], "localhost", true, Proto::H1, authority, path).expect("request")
    };
    let docs_a = std::fs::canonicalize(weir.path().join("docs-a")).unwrap();
    assert_eq!(get("a.test", "/app/who"), (200, format!("{}|a.test|a@example.org\n", docs_a.display())));
    assert_eq!(get("b.test", "/app/who").0, 404, "B has no /app/");
    assert_eq!(get("b.test", "/a-cgi/who").0, 403, "never sent as a file");
    // A client cannot name the site itself: the edge's X-Weir-Vhost replaces any it sends.
    let client = crate::support::client::Client::new(weir.addr(), &weir.cert_pem);
    let forged = client
        .raw(b"GET /app/who HTTP/1.1\r\nHost: b.test\r\nX-Weir-Vhost: 1\r\nConnection: close\r\n\r\n")
        .expect("raw exchange");
    let forged = String::from_utf8_lossy(&forged);
    assert!(forged.starts_with("HTTP/1.1 404"), "{forged}");
    // Its stderr goes to the one error log, naming the site.
    assert!(
        wait_until(Duration::from_secs(10), || weir.logs().contains("complaint from who: ")
            && weir.logs().contains("a-cgi/who (vhost a.test)")),
        "{}",
        weir.logs()
    );
}

#[test]
fn configtest_names_the_line_of_a_bad_vhost_and_shows_the_map() {
    let site = Site::new();
    let conf = site.path().join("weir.conf");
    std::fs::write(
        &conf,
        site.config("<VirtualHost *:*>\n ServerName a.test\n StartServers 3\n</VirtualHost>\n<VirtualHost www.example.com:80>\n</VirtualHost>\n"),
    )
    .unwrap();
    let output = weir_command(&["configtest", "-f"], &conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    let file = conf.display();
    // The line `extra` starts on: the base configuration's lines, less its closing empty one.
    let first = site.config("").lines().count();
    assert!(
        stderr.contains(&format!(
            "Syntax error on line {} of {file}: StartServers cannot occur within <VirtualHost> section",
            first + 2
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("line {} of {file}", first + 4)) && stderr.contains("ServerName"),
        "{stderr}"
    );

    std::fs::write(
        &conf,
        site.config("<VirtualHost *:*>\n ServerName a.test\n</VirtualHost>\n<VirtualHost *:*>\n ServerName b.test\n ServerAlias *.b.test\n</VirtualHost>\n"),
    )
    .unwrap();
    let output = weir_command(&["-S", "-f"], &conf).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("*:*                    is a NameVirtualHost"), "{stdout}");
    assert!(stdout.contains(&format!("default server a.test ({file}:{first})")), "{stdout}");
    assert!(stdout.contains("alias *.b.test") && stdout.trim_end().ends_with("Syntax OK"), "{stdout}");
}

#[test]
fn a_reload_applies_changed_vhosts() {
    let site = Site::new();
    docroot(&site, "docs-a", "site A\n");
    docroot(&site, "docs-a2", "site A, reloaded\n");
    let d = site.path().display().to_string();
    let vhost = |root: &str| {
        format!("<VirtualHost *:*>\n ServerName a.test\n DocumentRoot {d}/{root}\n</VirtualHost>\n")
    };
    let conf_text = site.config(&vhost("docs-a"));
    let new_text =
        site.config(&format!("{}<VirtualHost *:*>\n ServerName b.test\n</VirtualHost>\n", vhost("docs-a2")));
    let weir = site.start_with(&conf_text);
    let cert = weir.cert_pem.clone();
    let get = |authority: &str| tls_get(weir.addr(), &[&cert], "localhost", true, Proto::H1, authority, "/");
    assert_eq!(get("a.test"), Ok((200, "site A\n".into())));
    let conf = weir.path().join("weir.conf");
    std::fs::write(&conf, new_text).unwrap();
    let output = weir_command(&["reload", "-f"], &conf).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(
        wait_until(Duration::from_secs(20), || get("a.test") == Ok((200, "site A, reloaded\n".into()))),
        "{}",
        weir.logs()
    );
    assert_eq!(get("b.test"), Ok((200, "<h1>index</h1>\n".into())), "a new vhost, inheriting DocumentRoot");
}

const DEBIAN_SITES: [&str; 2] =
    ["/etc/apache2/sites-available/000-default.conf", "/etc/apache2/sites-available/default-ssl.conf"];
const SNAKEOIL: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";

/// A port free on 127.0.0.1 now: Debian's files name their ports, so the copies the test loads
/// name these instead (the only change made to them).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn debians_stock_site_files_serve_var_www_html_with_the_snakeoil_certificate() {
    let present = DEBIAN_SITES.iter().chain([&SNAKEOIL, &"/var/www/html"]).all(|f| Path::new(f).exists());
    if !present {
        assert_ne!(
            std::env::var("WEIR_REQUIRE_APACHE").as_deref(),
            Ok("1"),
            "apache2 or ssl-cert is not installed"
        );
        eprintln!("skipped: Debian's apache2 and ssl-cert packages are not installed");
        return;
    }
    let site = Site::new();
    let (http, https) = (free_port(), free_port());
    let d = site.path().display().to_string();
    let mut includes = String::new();
    for (file, port) in DEBIAN_SITES.iter().zip([(80, http), (443, https)]) {
        let text = std::fs::read_to_string(file).unwrap();
        let copy = site.path().join(Path::new(file).file_name().unwrap());
        std::fs::write(&copy, text.replace(&format!(":{}>", port.0), &format!(":{}>", port.1))).unwrap();
        includes.push_str(&format!("Include {}\n", copy.display()));
    }
    std::fs::create_dir_all(site.path().join("apache-logs")).unwrap();
    let conf = format!(
        "Listen 127.0.0.1:{http} http\nListen 127.0.0.1:{https} https\n\
         Define APACHE_LOG_DIR {d}/apache-logs\n\
         RuntimeDir {d}/run\nPidFile {d}/run/weir.pid\nErrorLog {d}/error.log\n\
         DocumentRoot {d}/htdocs\n\
         StartServers 1\nMinSpareServers 1\nMaxSpareServers 2\nMaxRequestWorkers 4\nGracefulShutdownTimeout 5\n\
         {includes}"
    );
    let conf_path = site.path().join("weir.conf");
    std::fs::write(&conf_path, &conf).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf_path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let weir = site.start_with(&conf);
    let index = std::fs::read_to_string("/var/www/html/index.html").unwrap();
    let http_addr: SocketAddr = format!("127.0.0.1:{http}").parse().unwrap();
    assert_eq!(plain_get(http_addr, "localhost", "/"), (200, index.clone()));
    let snakeoil = std::fs::read_to_string(SNAKEOIL).unwrap();
    let name = snakeoil_name();
    let got = tls_get(weir.addr(), &[&snakeoil], &name, true, Proto::H1, "localhost", "/");
    assert_eq!(got, Ok((200, index)));
    let logged = std::fs::read_to_string(weir.path().join("apache-logs/access.log")).unwrap_or_default();
    assert!(
        wait_until(Duration::from_secs(10), || std::fs::read_to_string(
            weir.path().join("apache-logs/access.log")
        )
        .is_ok_and(|t| t.lines().count() >= 2)),
        "{logged}"
    );
}

/// The host name the snakeoil certificate is made for (the machine's name when ssl-cert was
/// installed).
fn snakeoil_name() -> String {
    let output = Command::new("openssl").args(["x509", "-noout", "-subject", "-in", SNAKEOIL]).output();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    text.rsplit("CN")
        .next()
        .map(|cn| cn.trim_start_matches([' ', '=']).trim().to_string())
        .unwrap_or_default()
}

#[test]
fn basic_authentication_in_a_vhost_guards_its_site_only() {
    if Command::new("htpasswd").arg("-h").output().is_err() {
        assert_ne!(std::env::var("WEIR_REQUIRE_HTPASSWD").as_deref(), Ok("1"), "htpasswd is missing");
        eprintln!("skipped: htpasswd (apache2-utils) is not installed");
        return;
    }
    let site = Site::new();
    docroot(&site, "docs-a/secret", "secret A\n");
    docroot(&site, "docs-b/secret", "open B\n");
    let d = site.path().display().to_string();
    let users = format!("{d}/users");
    let made = Command::new("htpasswd").args(["-cbB", &users, "bob", "secret"]).output().unwrap();
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let weir = site.start(&format!(
        "<VirtualHost *:*>\n ServerName a.test\n DocumentRoot {d}/docs-a\n <Location /secret>\n  AuthType Basic\n  \
         AuthName \"Site A\"\n  AuthUserFile {users}\n  Require valid-user\n </Location>\n</VirtualHost>\n\
         <VirtualHost *:*>\n ServerName b.test\n DocumentRoot {d}/docs-b\n</VirtualHost>\n"
    ));
    let client = crate::support::client::Client::new(weir.addr(), &weir.cert_pem);
    let get = |host: &str, authorization: &str| {
        let request =
            format!("GET /secret/ HTTP/1.1\r\nHost: {host}\r\n{authorization}Connection: close\r\n\r\n");
        String::from_utf8_lossy(&client.raw(request.as_bytes()).expect("raw exchange")).into_owned()
    };
    let refused = get("a.test", "");
    assert!(refused.starts_with("HTTP/1.1 401") && refused.contains("Site A"), "{refused}");
    // bob:secret
    let allowed = get("a.test", "Authorization: Basic Ym9iOnNlY3JldA==\r\n");
    assert!(allowed.starts_with("HTTP/1.1 200") && allowed.ends_with("secret A\n"), "{allowed}");
    let other = get("b.test", "");
    assert!(other.starts_with("HTTP/1.1 200") && other.ends_with("open B\n"), "{other}");
}
