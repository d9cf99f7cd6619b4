//! Per-source limits count an IPv6 /64 as one client: a host picks any of its prefix's 2^64
//! addresses at will, so a client rotating through them must not get a fresh RateLimit or
//! MaxConnectionsPerIP budget with each. The test puts addresses of two /64s of fd00::/8 on the
//! loopback interface (as root), and takes them away again however it ends.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::process::Command;

use crate::support::attack::{self, Dial};
use crate::support::Site;

/// Addresses of one /64 added to `lo`, removed on drop.
struct LoopbackNet {
    prefix: [u16; 4],
    added: Vec<Ipv6Addr>,
}

impl LoopbackNet {
    /// `fd77:<pid>:<tag>::/64` with the given host parts: unique to this test process and tag.
    fn add(tag: u16, hosts: &[u16]) -> LoopbackNet {
        let pid = std::process::id();
        let prefix = [0xfd77, (pid >> 16) as u16, pid as u16, tag];
        let mut net = LoopbackNet { prefix, added: Vec::new() };
        for &host in hosts {
            let addr = net.at(host);
            // nodad: usable at once, with no duplicate-address detection to wait for.
            let output = Command::new("ip")
                .args(["-6", "addr", "add", &format!("{addr}/64"), "dev", "lo", "nodad"])
                .output()
                .expect("run ip(8)");
            assert!(
                output.status.success(),
                "cannot add {addr} to lo (this test needs root and ip(8)): {}",
                String::from_utf8_lossy(&output.stderr)
            );
            net.added.push(addr);
        }
        net
    }

    fn at(&self, host: u16) -> Ipv6Addr {
        let [a, b, c, d] = self.prefix;
        Ipv6Addr::new(a, b, c, d, 0, 0, 0, host)
    }
}

impl Drop for LoopbackNet {
    fn drop(&mut self) {
        for addr in &self.added {
            let _ =
                Command::new("ip").args(["-6", "addr", "del", &format!("{addr}/64"), "dev", "lo"]).output();
        }
    }
}

#[test]
fn one_ipv6_slash_64_is_one_source_for_rate_and_connection_limits() {
    let clients = LoopbackNet::add(1, &[0x11, 0x12, 0x13, 0x14]);
    let others = LoopbackNet::add(2, &[0x1, 0x2]);
    let server_ip = others.at(1);
    let weir = Site::new().start(&format!(
        "Listen [{server_ip}]:0 https\nListen [::1]:0 https\n\
         RateLimit 1/s burst=2\nMaxConnectionsPerIP 3\nKeepAliveTimeout 60\n"
    ));
    let find = |ip: IpAddr| -> SocketAddr {
        *weir.https.iter().find(|a| a.ip() == ip).unwrap_or_else(|| panic!("no listener on {ip}"))
    };
    let server = find(IpAddr::V6(server_ip));
    let loopback = find(IpAddr::V6(Ipv6Addr::LOCALHOST));
    let from = |ip: Ipv6Addr| Dial { from: Some(IpAddr::V6(ip)), ..Dial::default() };
    let config = attack::tls_config(&weir.cert_pem);
    let keep_alive = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        // Three addresses of one /64 fill its MaxConnectionsPerIP; a fourth address is refused.
        let mut held = Vec::new();
        for host in [0x11, 0x12, 0x13] {
            let tls = attack::tls_connect_with(server, &config, from(clients.at(host))).await;
            held.push(tls.unwrap_or_else(|e| panic!("connection from ::{host:x}: {e}\n{}", weir.logs())));
        }
        let fourth = match attack::tls_connect_with(server, &config, from(clients.at(0x14))).await {
            Ok(mut tls) => attack::exchange(&mut tls, keep_alive).await.map(|r| r.status).ok(),
            Err(_) => None,
        };
        assert_eq!(fourth, None, "a fourth connection from the same /64 was served");

        // One RateLimit budget for the /64: the burst of 2, then 429, whichever address asks.
        let mut statuses = Vec::new();
        for tls in &mut held {
            statuses.push(attack::exchange(tls, keep_alive).await.expect("reply").status);
        }
        assert_eq!(statuses, vec![200, 200, 429], "requests from three addresses of one /64");

        // Another /64, and ::1, are other sources with budgets of their own.
        for (name, addr, dial) in
            [("another /64", server, from(others.at(2))), ("::1", loopback, Dial::default())]
        {
            let mut tls = attack::tls_connect_with(addr, &config, dial).await.expect(name);
            let reply = attack::exchange(&mut tls, keep_alive).await.expect(name);
            assert_eq!(reply.status, 200, "{name}: {}", reply.head);
        }
        drop(held);
    });
}
