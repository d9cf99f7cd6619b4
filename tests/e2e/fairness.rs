//! A fair share per source: one address holding thousands of silent or ClientHello-stalling
//! connections must not keep clients from other addresses out of the TLS handshake.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::attack::{self, Dial};
use crate::support::client::Client;
use crate::support::Site;

/// Connections from the attacking address that send nothing at all.
const SILENT: usize = 2_000;
/// Connections from the attacking address that send the start of a ClientHello, then nothing.
const STALLING: usize = 500;
/// Full TLS requests the other address makes, one new connection each.
const PROBES: usize = 20;
/// What "normal latency" may be at most on two shared cores, per probe request.
const PROBE_BOUND: Duration = Duration::from_secs(5);

/// A TLS record header announcing a 512-byte handshake message and the first bytes of a
/// ClientHello: the server has to wait for the rest, which never comes.
const CLIENT_HELLO_START: &[u8] = &[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

fn from(last: u8) -> Dial {
    Dial { from: Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))), ..Dial::default() }
}

/// Opens `count` connections from `dial`; each sends `first` (if any) and then nothing.
async fn hold(addr: SocketAddr, dial: Dial, count: usize, first: &[u8]) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(count);
    for _ in 0..count {
        let mut stream = attack::tcp_connect_with(addr, dial).await.expect("attack connection");
        if !first.is_empty() {
            stream.write_all(first).await.expect("ClientHello start");
        }
        held.push(stream);
    }
    held
}

#[test]
fn one_address_holding_the_handshake_stage_does_not_lock_out_another() {
    attack::raise_nofile_limit();
    let weir = Site::new().start("");
    let tls = attack::tls_config(&weir.cert_pem);
    let addr = weir.addr();
    let (probes, held) = runtime().block_on(async {
        let mut held = hold(addr, from(2), SILENT, &[]).await;
        held.extend(hold(addr, from(2), STALLING, CLIENT_HELLO_START).await);
        let mut probes = Vec::new();
        for _ in 0..PROBES {
            let started = Instant::now();
            let outcome = tokio::time::timeout(PROBE_BOUND, async {
                let mut stream = attack::tls_connect_with(addr, &tls, from(3)).await?;
                attack::exchange(&mut stream, b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").await
            })
            .await;
            probes.push(match outcome {
                Ok(Ok(reply)) if reply.status == 200 => Ok(started.elapsed()),
                Ok(Ok(reply)) => Err(format!("status {}", reply.status)),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err(format!("no answer within {PROBE_BOUND:?}")),
            });
        }
        (probes, held.len())
    });
    let failed: Vec<_> = probes.iter().filter_map(|p| p.as_ref().err()).collect();
    assert!(
        failed.is_empty(),
        "{} of {PROBES} requests from 127.0.0.3 failed while 127.0.0.2 held {held} connections: {failed:?}",
        failed.len()
    );
    // The evictions are visible to the operator.
    let status = Client::new(addr, &weir.cert_pem).get("/server-status?auto").expect("server-status").text();
    let evicted: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("RejectedHandshakeEvicted: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RejectedHandshakeEvicted count in server-status:\n{status}"));
    assert!(evicted > 0, "the stage was full, yet nothing was evicted:\n{status}");
    assert!(weir.logs().contains("handshake stage full"), "no notice line about the evictions");
}

/// One request on a new TLS connection from 127.0.0.`last`: its status, or why there was none.
async fn request_from(
    addr: SocketAddr,
    tls: &std::sync::Arc<rustls::ClientConfig>,
    last: u8,
) -> Result<u16, String> {
    let attempt = async {
        let mut stream = attack::tls_connect_with(addr, tls, from(last)).await?;
        attack::exchange(&mut stream, b"GET /index.html HTTP/1.1\r\nHost: localhost\r\n\r\n").await
    };
    match tokio::time::timeout(PROBE_BOUND, attempt).await {
        Ok(Ok(reply)) => Ok(reply.status),
        Ok(Err(error)) => Err(error.to_string()),
        Err(_) => Err(format!("no answer within {PROBE_BOUND:?}")),
    }
}

#[test]
fn one_source_gets_half_of_max_connections_and_unproven_connections_give_way() {
    let weir = Site::new().start("MaxConnections 40\nMaxConnectionsPerIP auto\n");
    assert!(
        weir.logs().contains("MaxConnections 40, MaxConnectionsPerIP 20"),
        "auto per source is half of MaxConnections:\n{}",
        weir.logs()
    );
    let tls = attack::tls_config(&weir.cert_pem);
    let addr = weir.addr();
    runtime().block_on(async {
        // 127.0.0.2 takes its share with established TLS connections...
        let mut established = Vec::new();
        for _ in 0..20 {
            established.push(attack::tls_connect_with(addr, &tls, from(2)).await.expect("within the share"));
        }
        // ...and no more.
        assert!(request_from(addr, &tls, 2).await.is_err(), "a 21st connection from 127.0.0.2 was served");
        // 127.0.0.4 fills the rest of MaxConnections with connections that never handshake.
        let silent = hold(addr, from(4), 20, &[]).await;
        // A newcomer is not refused: one of the silent connections gives way.
        assert_eq!(request_from(addr, &tls, 3).await, Ok(200), "127.0.0.3 was kept out at MaxConnections");
        drop((established, silent));
    });
}
