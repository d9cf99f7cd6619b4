//! `RemoteIPTrustedProxy`, in mod_remoteip's syntax: the peers (addresses and CIDR blocks, several
//! per line, the directive repeatable) allowed to send a PROXY protocol header on a listener with
//! `proxy-protocol`. A header is a claim about who the client is; believed from anyone, it lets
//! any client pass `Require ip`, `Require local` and the per-client limits as whoever it likes.
//! So a `proxy-protocol` listener without this list is a configuration error.

use crate::config::Config;
use crate::error::{ConfigError, Problem};
use crate::location::IpNet;

/// The blocks of one `RemoteIPTrustedProxy` line.
pub fn trusted_proxies(args: &[String]) -> Result<Vec<IpNet>, Problem> {
    args.iter()
        .map(|arg| {
            crate::location::ip_net(arg).ok_or_else(|| Problem::BadValue {
                directive: "RemoteIPTrustedProxy",
                value: arg.clone(),
                reason: "expected an address or a CIDR block, such as 10.0.0.5 or 192.0.2.0/24 \
                         (host names are not resolved)"
                    .to_string(),
            })
        })
        .collect()
}

/// Refuses each `proxy-protocol` listener when no proxy is trusted (at its Listen line), and warns
/// about a list that nothing uses or that trusts everyone.
pub(crate) fn check(config: &mut Config, errors: &mut Vec<ConfigError>, file: &std::path::Path) {
    let proxied = config.listeners.iter().filter(|l| l.proxy_protocol);
    if config.trusted_proxies.is_empty() {
        for listener in proxied {
            let problem = Problem::ProxyProtocolUntrusted { listen: listener.addr };
            errors.push(match &listener.span {
                Some(span) => ConfigError::at(span, Some("Listen"), problem),
                None => ConfigError::whole_file(file, problem),
            });
        }
        return;
    }
    if proxied.count() == 0 {
        config.warnings.push(
            "RemoteIPTrustedProxy has no effect: no Listen has proxy-protocol (weir takes a client's \
             address only from a PROXY protocol header, never from X-Forwarded-For)"
                .to_string(),
        );
    }
    if config.trusted_proxies.iter().any(|net| net.prefix == 0) {
        config.warnings.push(
            "RemoteIPTrustedProxy trusts every address (a /0 block): any client can then claim any \
             address in a PROXY header; name your load balancers instead"
                .to_string(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Config, crate::ConfigErrors> {
        Config::for_tests(text)
    }

    #[test]
    fn several_per_line_and_repeatable() {
        let config =
            load("Listen 80 proxy-protocol\nRemoteIPTrustedProxy 10.0.0.5 192.0.2.0/24\nRemoteIPTrustedProxy ::1\n")
                .unwrap();
        let nets: Vec<String> =
            config.trusted_proxies.iter().map(|n| format!("{}/{}", n.addr, n.prefix)).collect();
        assert_eq!(nets, ["10.0.0.5/32", "192.0.2.0/24", "::1/128"]);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn proxy_protocol_without_a_list_is_refused_at_each_listen_line() {
        let errors =
            load("Listen 80\nListen 8080 proxy-protocol\nListen 8081 http proxy-protocol\n").unwrap_err().0;
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, [2, 3], "{errors:?}");
        let text = errors[0].to_string();
        assert!(text.contains("Listen 0.0.0.0:8080") && text.contains("add RemoteIPTrustedProxy"), "{text}");
    }

    #[test]
    fn a_list_nothing_uses_or_that_trusts_everyone_is_a_warning() {
        let config = load("Listen 80\nRemoteIPTrustedProxy 10.0.0.5\n").unwrap();
        assert!(
            config.warnings.iter().any(|w| w.contains("no Listen has proxy-protocol")),
            "{:?}",
            config.warnings
        );
        let config = load("Listen 80 proxy-protocol\nRemoteIPTrustedProxy 0.0.0.0/0\n").unwrap();
        assert!(config.warnings.iter().any(|w| w.contains("trusts every address")), "{:?}", config.warnings);
    }
}
