//! Who may send a PROXY protocol header: only the peers `RemoteIPTrustedProxy` names. A forged
//! header from anyone else never reaches `Require ip`, CGI's REMOTE_ADDR or the per-client limits;
//! from a trusted proxy the header's client is the client everywhere. `configtest` refuses a
//! `proxy-protocol` listener without the list.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::support::attack::{self, Dial, Tls};
use crate::support::raw::{self, Exchange};
use crate::support::{wait_until, weir_command, Site, Weir};

/// The most one raw exchange may take before the connection counts as left open.
const DEADLINE: Duration = Duration::from_secs(15);

/// Prints the CGI environment.
const ENV_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n";

/// Scripts answer only 10.9.9.9, the address the forged headers claim.
const GUARDED: &str = "<Location /cgi-bin/>\nRequire ip 10.9.9.9\n</Location>\n";

/// A second listener, after the fixture's own plain one, that expects a PROXY header.
const PROXY_LISTENER: &str = "Listen 127.0.0.1:0 https proxy-protocol\n";

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").into_bytes()
}

fn h1_config(weir: &Weir) -> Arc<rustls::ClientConfig> {
    raw::tls_config(&weir.cert_pem, &[b"http/1.1"], None)
}

/// `env` output as a map.
fn env_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The connection ended without a byte of HTTP: refused before TLS or right after it.
fn assert_refused(exchange: &Exchange, what: &str) {
    if exchange.handshake.is_ok() {
        assert!(exchange.end.closed(), "{what}: the connection stayed open: {exchange:?}");
        assert!(!exchange.text().contains("HTTP/"), "{what}: got an HTTP answer: {:?}", exchange.text());
    }
}

fn file_text(weir: &Weir, name: &str) -> String {
    std::fs::read_to_string(weir.path().join(name)).unwrap_or_default()
}

/// Error-log lines about a peer refused for not being a trusted proxy.
fn untrusted_lines(weir: &Weir) -> Vec<String> {
    file_text(weir, "error.log")
        .lines()
        .filter(|line| line.contains("not in RemoteIPTrustedProxy"))
        .map(str::to_string)
        .collect()
}

#[test]
fn a_forged_header_from_an_untrusted_peer_is_refused_and_logged() {
    let site = Site::new();
    site.script("env", ENV_SCRIPT);
    // The list names the address the forged headers claim (10.0.0.0/8), but not the peer that
    // sends them (127.0.0.1): trust is about who connects, never about what a header says.
    let weir = site.start(&format!("{PROXY_LISTENER}RemoteIPTrustedProxy 192.0.2.1 10.0.0.0/8\n{GUARDED}"));
    let (plain, proxied) = (weir.https[0], weir.https[1]);
    let tls = h1_config(&weir);

    // The guard is real: a direct client is refused by `Require ip`.
    let direct = raw::exchange(plain, tls.clone(), b"", &get("/cgi-bin/env"), DEADLINE);
    assert!(direct.text().starts_with("HTTP/1.1 403"), "{}", direct.text());

    let v1 = b"PROXY TCP4 10.9.9.9 127.0.0.1 40000 443\r\n".to_vec();
    let v2 = raw::proxy_v2([10, 9, 9, 9], 40001, [127, 0, 0, 1], 443);
    for (name, header) in [("v1", v1), ("v2", v2), ("no header", Vec::new())] {
        let exchange = raw::exchange(proxied, tls.clone(), &header, &get("/cgi-bin/env"), DEADLINE);
        assert_refused(&exchange, name);
        assert!(!exchange.text().contains("REMOTE_ADDR"), "{name}: the script ran: {}", exchange.text());
    }
    assert!(
        wait_until(Duration::from_secs(5), || !untrusted_lines(&weir).is_empty()),
        "no error-log line names the untrusted peer\n{}",
        weir.logs()
    );
    let lines = untrusted_lines(&weir);
    assert!(lines[0].contains("127.0.0.1"), "the line names the peer: {lines:?}");
    assert!(!file_text(&weir, "access.log").contains("/cgi-bin/env HTTP/1.1\" 200"));

    // A flood of them does not fill the disk: the line is rate-limited.
    for _ in 0..30 {
        let exchange = raw::exchange(proxied, tls.clone(), b"", b"", DEADLINE);
        assert_refused(&exchange, "flood");
    }
    // A line that is written is written before its connection closes, so every close above
    // has had its chance to log.
    assert_eq!(untrusted_lines(&weir).len(), 1, "{:?}", untrusted_lines(&weir));
    // Each refusal is still counted.
    let status = raw::exchange(plain, tls.clone(), b"", &get("/server-status?auto"), DEADLINE);
    let rejected: Option<u64> = status
        .text()
        .lines()
        .find_map(|line| line.strip_prefix("RejectedProxyHeader: "))
        .and_then(|n| n.trim().parse().ok());
    assert!(rejected >= Some(33), "{rejected:?} in {}", status.text());
}

#[test]
fn a_trusted_proxy_passes_its_clients_address() {
    let site = Site::new();
    site.script("env", ENV_SCRIPT);
    let weir = site.start(&format!(
        "{PROXY_LISTENER}RemoteIPTrustedProxy 192.0.2.1\nRemoteIPTrustedProxy 127.0.0.1/32\n{GUARDED}"
    ));
    let proxied = weir.https[1];
    let tls = h1_config(&weir);

    let v1 = b"PROXY TCP4 10.9.9.9 127.0.0.1 40000 443\r\n".to_vec();
    let v2 = raw::proxy_v2([10, 9, 9, 9], 40001, [127, 0, 0, 1], 443);
    for (name, header) in [("v1", v1), ("v2", v2)] {
        let exchange = raw::exchange(proxied, tls.clone(), &header, &get("/cgi-bin/env"), DEADLINE);
        let text = exchange.text();
        assert!(text.starts_with("HTTP/1.1 200"), "{name}: {text}");
        let env = env_map(&text);
        assert_eq!(env.get("REMOTE_ADDR").map(String::as_str), Some("10.9.9.9"), "{name}: {text}");
    }
    let logged = || file_text(&weir, "access.log").lines().any(|l| l.starts_with("10.9.9.9 "));
    assert!(wait_until(Duration::from_secs(5), logged), "{}", file_text(&weir, "access.log"));

    // Another client behind the same proxy is that client, and `Require ip` refuses it.
    let other = b"PROXY TCP4 10.9.9.8 127.0.0.1 40002 443\r\n";
    let exchange = raw::exchange(proxied, tls.clone(), other, &get("/cgi-bin/env"), DEADLINE);
    assert!(exchange.text().starts_with("HTTP/1.1 403"), "{}", exchange.text());

    // From a trusted peer the header is still required.
    let exchange = raw::exchange(proxied, tls.clone(), b"", &get("/cgi-bin/env"), DEADLINE);
    assert_refused(&exchange, "a trusted peer without a header");
    assert!(untrusted_lines(&weir).is_empty(), "{:?}", untrusted_lines(&weir));

    // The startup log shows the list.
    let logs = weir.logs();
    assert!(logs.contains("believed only from RemoteIPTrustedProxy 192.0.2.1/32 127.0.0.1/32"), "{logs}");
}

/// Opens a TLS connection through the PROXY listener, as the proxy would for `client`.
async fn through_proxy(addr: SocketAddr, weir: &Weir, client: [u8; 4]) -> std::io::Result<Tls> {
    let mut tcp = attack::tcp_connect_with(addr, Dial::default()).await?;
    tcp.write_all(&raw::proxy_v2(client, 40000, [127, 0, 0, 1], 443)).await?;
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("server name");
    let connector = tokio_rustls::TlsConnector::from(attack::tls_config(&weir.cert_pem));
    tokio::time::timeout(DEADLINE, connector.connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out"))?
}

#[test]
fn per_ip_limits_count_the_client_a_trusted_header_names() {
    let site = Site::new();
    let weir = site.start(&format!(
        "{PROXY_LISTENER}RemoteIPTrustedProxy 127.0.0.1\nMaxConnectionsPerIP 2\nKeepAliveTimeout 60\n"
    ));
    let proxied = weir.https[1];
    let keep_alive = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // Four clients behind one proxy address, all at once: each is its own source, so the
        // proxy's address does not run out of MaxConnectionsPerIP.
        let mut held = Vec::new();
        for last in 1..=4u8 {
            let mut tls = through_proxy(proxied, &weir, [10, 0, 0, last]).await.expect("connect");
            let reply = attack::exchange(&mut tls, keep_alive).await.expect("reply");
            assert_eq!(reply.status, 200, "client 10.0.0.{last}");
            held.push(tls);
        }
        // A second connection for 10.0.0.1 fits; a third is over its limit.
        let mut second = through_proxy(proxied, &weir, [10, 0, 0, 1]).await.expect("connect");
        assert_eq!(attack::exchange(&mut second, keep_alive).await.expect("reply").status, 200);
        held.push(second);
        let third = match through_proxy(proxied, &weir, [10, 0, 0, 1]).await {
            Ok(mut tls) => attack::exchange(&mut tls, keep_alive).await.map(|r| r.status).ok(),
            Err(_) => None,
        };
        assert_eq!(third, None, "a third connection for 10.0.0.1 was served\n{}", weir.logs());
        drop(held);
    });
}

#[test]
fn configtest_refuses_proxy_protocol_without_trusted_proxies() {
    let site = Site::new();
    let conf = site.path().join("proxy.conf");
    let text = site.config(PROXY_LISTENER);
    let line = text.lines().position(|l| l.contains("proxy-protocol")).expect("the Listen line") + 1;
    std::fs::write(&conf, &text).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(&format!("line {line} ")), "names the Listen line ({line}): {stderr}");
    assert!(stderr.contains("proxy-protocol") && stderr.contains("RemoteIPTrustedProxy"), "{stderr}");

    std::fs::write(&conf, site.config(&format!("{PROXY_LISTENER}RemoteIPTrustedProxy 10.0.0.0/8 ::1\n")))
        .unwrap();
    let output = weir_command(&["configtest", "-f"], &conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
}
