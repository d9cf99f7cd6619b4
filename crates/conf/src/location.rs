//! `<Location>` sections: the handler of a URL path (`SetHandler server-status`) and who may
//! reach it (`Require`), merged as Apache merges them ([`effective`]).

use std::net::IpAddr;

use crate::error::Problem;

/// One `Require` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Require {
    /// `Require all granted`.
    AllGranted,
    /// `Require all denied`.
    AllDenied,
    /// `Require local`: 127.0.0.1, ::1, or a client on the server's own address. Stricter than
    /// Apache, which admits all of 127.0.0.0/8: on an appliance, other loopback addresses are
    /// often proxies, containers or tunnels speaking for remote clients.
    Local,
    /// `Require ip 10.1.0.0/16 192.168.1.7 …`.
    Ip(Vec<IpNet>),
}

/// An address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => net.to_ipv4_mapped() == Some(ip) && self.prefix >= 96,
            _ => false,
        }
    }
}

impl Require {
    /// Whether a client at `peer`, connected to the server's address `local`, is let in.
    pub fn allows(&self, peer: IpAddr, local: IpAddr) -> bool {
        let peer = peer.to_canonical();
        match self {
            Require::AllGranted => true,
            Require::AllDenied => false,
            Require::Local => {
                peer == IpAddr::from([127, 0, 0, 1])
                    || peer == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                    || peer == local.to_canonical()
            }
            Require::Ip(nets) => nets.iter().any(|net| net.contains(peer)),
        }
    }
}

/// A `<Location path>` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// URL path prefix, slashes merged, compared with the normalised, decoded request path as
    /// Apache compares it: a plain string prefix (`/private` covers `/private/x` and also
    /// `/privatex`; `/private/` only what is below it).
    pub path: String,
    /// `SetHandler`, such as `server-status` (`none` is kept, to undo an earlier one).
    pub handler: Option<String>,
    /// `Require` lines; any one allowing is enough (Apache's implicit RequireAny).
    pub require: Vec<Require>,
}

impl Location {
    pub fn matches(&self, path: &str) -> bool {
        path.starts_with(self.path.as_str())
    }
}

/// What every `<Location>` that matches a path says, merged in order of appearance as Apache
/// merges them: a later `SetHandler` replaces an earlier one (`none` removes it), and a later
/// section's `Require` lines replace the earlier ones (Apache's default `AuthMerging Off`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Effective<'a> {
    pub handler: Option<&'a str>,
    pub require: &'a [Require],
}

impl Effective<'_> {
    /// Whether a client may reach the path. With no `Require`, everyone may (Apache).
    pub fn allows(&self, peer: IpAddr, local: IpAddr) -> bool {
        self.require.is_empty() || self.require.iter().any(|r| r.allows(peer, local))
    }
}

/// The merged sections for a normalised request path.
pub fn effective<'a>(locations: &'a [Location], path: &str) -> Effective<'a> {
    let mut merged = Effective { handler: None, require: &[] };
    for location in locations.iter().filter(|l| l.matches(path)) {
        if let Some(handler) = &location.handler {
            merged.handler = (handler != "none").then_some(handler.as_str());
        }
        if !location.require.is_empty() {
            merged.require = &location.require;
        }
    }
    merged
}

/// Handlers weir knows for `SetHandler`.
pub const HANDLERS: &[&str] = &["server-status", "none"];

/// `Require …` as Apache's mod_authz_host reads it.
pub fn require(args: &[String]) -> Result<Require, Problem> {
    let bad = |reason: &str| Problem::BadValue {
        directive: "Require",
        value: args.join(" "),
        reason: reason.to_string(),
    };
    let kind = args.first().map(|a| a.to_ascii_lowercase());
    match (kind.as_deref(), args.len()) {
        (Some("all"), 2) => match args[1].to_ascii_lowercase().as_str() {
            "granted" => Ok(Require::AllGranted),
            "denied" => Ok(Require::AllDenied),
            _ => Err(bad("expected all granted or all denied")),
        },
        (Some("local"), 1) => Ok(Require::Local),
        (Some("ip"), n) if n >= 2 => args[1..]
            .iter()
            .map(|net| {
                ip_net(net).ok_or_else(|| bad("expected addresses or CIDR blocks, such as 10.0.0.0/8"))
            })
            .collect::<Result<_, _>>()
            .map(Require::Ip),
        _ => Err(bad("weir knows Require all granted|denied, Require local and Require ip")),
    }
}

/// An address or CIDR block as `Require ip` and `RemoteIPTrustedProxy` write it.
pub(crate) fn ip_net(text: &str) -> Option<IpNet> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some(IpNet { addr, prefix })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn require_forms() {
        assert_eq!(require(&args("all granted")), Ok(Require::AllGranted));
        assert_eq!(require(&args("local")), Ok(Require::Local));
        let server: IpAddr = "192.0.2.10".parse().unwrap();
        let at = |text: &str| text.parse::<IpAddr>().unwrap();
        let ip = require(&args("ip 10.0.0.0/8 192.168.1.7 ::1")).unwrap();
        assert!(ip.allows(at("10.2.3.4"), server));
        assert!(ip.allows(at("192.168.1.7"), server));
        assert!(!ip.allows(at("192.168.1.8"), server));
        assert!(ip.allows(at("::1"), server));
        assert!(Require::Local.allows(at("127.0.0.1"), server));
        assert!(Require::Local.allows(at("::ffff:127.0.0.1"), server));
        assert!(Require::Local.allows(at("192.0.2.10"), server), "the server's own address");
        assert!(!Require::Local.allows(at("127.0.0.2"), at("127.0.0.1")));
        assert!(!Require::Local.allows(at("10.1.1.1"), server));
        assert!(require(&args("ip 10.0.0.0/33")).is_err());
        assert!(require(&args("user bob")).is_err());
    }

    #[test]
    fn every_matching_section_applies_and_later_ones_win() {
        let section = |path: &str, handler: Option<&str>, require: Vec<Require>| Location {
            path: path.to_string(),
            handler: handler.map(str::to_string),
            require,
        };
        let locations = vec![
            section("/", None, vec![Require::AllGranted]),
            section("/private", None, vec![Require::AllDenied]),
            section("/private/open", None, vec![Require::AllGranted]),
            section("/status", Some("server-status"), vec![Require::Local]),
            section("/status/off", Some("none"), vec![]),
        ];
        assert_eq!(effective(&locations, "/x").require, &[Require::AllGranted]);
        assert_eq!(effective(&locations, "/private/x").require, &[Require::AllDenied]);
        assert_eq!(effective(&locations, "/privatex").require, &[Require::AllDenied], "Apache's prefix");
        assert_eq!(effective(&locations, "/private/open/x").require, &[Require::AllGranted]);
        let status = effective(&locations, "/status");
        assert_eq!((status.handler, status.require), (Some("server-status"), &[Require::Local][..]));
        let off = effective(&locations, "/status/off");
        assert_eq!((off.handler, off.require), (None, &[Require::Local][..]), "Require kept, handler undone");
    }
}
