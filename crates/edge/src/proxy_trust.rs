//! Whom a `proxy-protocol` listener believes: the peers `RemoteIPTrustedProxy` names. A PROXY
//! header is a claim about who the client is, and everything keyed on the client (`Require ip`,
//! `Require local`, MaxConnectionsPerIP, RateLimit, the handshake stage's and the spill space's
//! shares, CGI's REMOTE_ADDR, the logs) follows it. So a connection from any other peer is closed
//! at accept, before a byte of it is read, and logged through a [`LogGate`] so a flood of them
//! cannot fill the disk.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use weir_conf::location::IpNet;

use crate::log_gate::LogGate;

/// The trusted list, shared by every proxy-protocol listener of the edge.
#[derive(Debug)]
pub struct ProxyTrust {
    nets: Vec<IpNet>,
    /// One refusal line a minute, whichever listener and peer.
    refused: LogGate,
}

impl ProxyTrust {
    pub fn new(nets: Vec<IpNet>) -> ProxyTrust {
        ProxyTrust { nets, refused: LogGate::default() }
    }

    /// Whether `peer` may send a PROXY header. An IPv4 peer on a dual-stack socket arrives as
    /// `::ffff:a.b.c.d` and is matched as the IPv4 address it is.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.nets.iter().any(|net| net.contains(peer))
    }

    /// The error-log line for a connection from an untrusted peer, at most once a minute with
    /// how many went unlogged since. Written before the connection is closed.
    pub fn log_refused(&self, peer: SocketAddr, listener: SocketAddr) {
        if let Some(unlogged) = self.refused.due() {
            tracing::warn!(
                %peer,
                %listener,
                unlogged,
                "PROXY protocol listener {listener}: connection from {} refused: the peer is not in \
                 RemoteIPTrustedProxy ({unlogged} more since the last such line)",
                peer.ip()
            );
        }
    }
}

/// The list as the startup log shows it: `192.0.2.1/32 10.0.0.0/8`.
impl fmt::Display for ProxyTrust {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, net) in self.nets.iter().enumerate() {
            if index > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{}/{}", net.addr, net.prefix)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(addr: &str, prefix: u8) -> IpNet {
        IpNet { addr: addr.parse().unwrap(), prefix }
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn only_listed_peers_are_trusted() {
        let trust = ProxyTrust::new(vec![net("10.0.0.0", 8), net("192.0.2.1", 32), net("2001:db8::", 64)]);
        assert!(trust.trusts(ip("10.200.3.4")));
        assert!(trust.trusts(ip("192.0.2.1")));
        assert!(!trust.trusts(ip("192.0.2.2")));
        assert!(!trust.trusts(ip("127.0.0.1")));
        assert!(trust.trusts(ip("2001:db8::7")));
        assert!(!trust.trusts(ip("2001:db8:0:1::7")));
        // A dual-stack listener sees IPv4 peers in their mapped form.
        assert!(trust.trusts(ip("::ffff:10.1.2.3")));
        assert!(!trust.trusts(ip("::ffff:127.0.0.1")));
        assert_eq!(trust.to_string(), "10.0.0.0/8 192.0.2.1/32 2001:db8::/64");
    }

    #[test]
    fn an_empty_list_trusts_no_one() {
        let trust = ProxyTrust::new(Vec::new());
        assert!(!trust.trusts(ip("127.0.0.1")));
        assert!(!trust.trusts(ip("::1")));
    }
}
