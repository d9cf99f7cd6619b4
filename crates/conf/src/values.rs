//! Readers for argument values, as Apache reads them.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use crate::config::{ListenScheme, Listener, RLimit, RLimitValue};
use crate::error::Problem;

fn bad(directive: &'static str, value: &str, reason: impl Into<String>) -> Problem {
    Problem::BadValue { directive, value: value.to_string(), reason: reason.into() }
}

/// A whole number in `min..=max`.
pub fn number(directive: &'static str, value: &str, min: u64, max: u64) -> Result<u64, Problem> {
    let parsed: u64 = value
        .parse()
        .map_err(|_| bad(directive, value, format!("expected a whole number from {min} to {max}")))?;
    if !(min..=max).contains(&parsed) {
        return Err(bad(directive, value, format!("must be from {min} to {max}")));
    }
    Ok(parsed)
}

/// Any whole number, negatives included, as Apache's atoi would take it (within i32).
pub fn signed(directive: &'static str, value: &str) -> Result<i64, Problem> {
    value.parse::<i32>().map(i64::from).map_err(|_| bad(directive, value, "expected a whole number"))
}

/// A size in bytes, with an optional K, M or G suffix (powers of 1024).
pub fn size(directive: &'static str, value: &str) -> Result<u64, Problem> {
    let (digits, unit) = match value.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&value[..i], c.to_ascii_uppercase()),
        _ => (value, 'B'),
    };
    let multiplier: u64 = match unit {
        'B' => 1,
        'K' => 1 << 10,
        'M' => 1 << 20,
        'G' => 1 << 30,
        _ => return Err(bad(directive, value, "expected a size such as 65536, 512K, 64M or 1G")),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| bad(directive, value, "expected a size such as 65536, 512K, 64M or 1G"))
}

/// `On` or `Off`, any case.
pub fn on_off(directive: &'static str, value: &str) -> Result<bool, Problem> {
    match value.to_ascii_lowercase().as_str() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(bad(directive, value, "expected On or Off")),
    }
}

/// Seconds, as Apache's `Timeout` reads them.
pub fn seconds(directive: &'static str, value: &str) -> Result<Duration, Problem> {
    number(directive, value, 0, 86_400 * 365).map(Duration::from_secs)
}

/// `[addr:]port [http|https] [proxy-protocol]`, with Apache's default scheme: https for port
/// 443, else http.
pub fn listen(args: &[String]) -> Result<Listener, Problem> {
    let spec = &args[0];
    let addr = if let Ok(port) = spec.parse::<u16>() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
    } else {
        spec.parse::<SocketAddr>().map_err(|_| {
            bad("Listen", spec, "expected [address:]port, such as 443, 127.0.0.1:8443 or [::1]:8443")
        })?
    };
    let mut scheme = None;
    let mut proxy_protocol = false;
    for arg in &args[1..] {
        match arg.to_ascii_lowercase().as_str() {
            "https" if scheme.is_none() => scheme = Some(ListenScheme::Https),
            "http" if scheme.is_none() => scheme = Some(ListenScheme::Http),
            "proxy-protocol" if !proxy_protocol => proxy_protocol = true,
            _ => return Err(bad("Listen", arg, "expected http or https, then optionally proxy-protocol")),
        }
    }
    let scheme = scheme.unwrap_or(if addr.port() == 443 { ListenScheme::Https } else { ListenScheme::Http });
    Ok(Listener { addr, scheme, proxy_protocol, span: None })
}

/// `soft [hard]` for the `RLimit*` directives: each a number or `max`.
pub fn rlimit(directive: &'static str, args: &[String]) -> Result<RLimit, Problem> {
    let one = |value: &String| -> Result<RLimitValue, Problem> {
        if value.eq_ignore_ascii_case("max") {
            Ok(RLimitValue::Max)
        } else {
            // Seconds, processes, or bytes with an optional K, M or G (RLimitMEM 512M).
            size(directive, value).map(RLimitValue::Value)
        }
    };
    let soft = one(&args[0])?;
    let hard = args.get(1).map(one).transpose()?;
    if let (RLimitValue::Value(soft), Some(RLimitValue::Value(hard))) = (soft, hard) {
        if soft > hard {
            return Err(bad(directive, &args[0], format!("the soft limit is above the hard limit {hard}")));
        }
    }
    Ok(RLimit { soft, hard })
}

/// Edit distance, for suggesting the directive an operator meant.
pub fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_ascii_lowercase().chars().collect();
    let b: Vec<char> = b.to_ascii_lowercase().chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut previous = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous + usize::from(ca != cb);
            previous = row[j + 1];
            row[j + 1] = substitution.min(row[j] + 1).min(previous + 1);
        }
    }
    row[b.len()]
}

/// `DirectoryIndex` names: file names in the directory asked for. Apache also takes a URL
/// (`/cgi-bin/index.pl`) or a relative path; weir does not: `../admin/index.sh` was run
/// although `/admin` was denied, the path checked in a spelling no section matched.
pub fn index_names(args: &[String]) -> Result<Vec<String>, Problem> {
    for name in args {
        if name.contains('/') || name == "." || name == ".." || name.is_empty() {
            return Err(Problem::BadValue {
                directive: "DirectoryIndex",
                value: name.clone(),
                reason: "weir takes file names found in the directory itself (no / and no ..); \
                         for a script elsewhere, use Redirect or an index script there"
                    .to_string(),
            });
        }
    }
    Ok(args.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_forms() {
        let l = listen(&["443".into()]).unwrap();
        assert_eq!((l.addr.port(), l.scheme), (443, ListenScheme::Https));
        let l = listen(&["[::1]:8080".into()]).unwrap();
        assert_eq!(l.addr, "[::1]:8080".parse().unwrap());
        assert_eq!(l.scheme, ListenScheme::Http);
        let l = listen(&["127.0.0.1:0".into(), "HTTPS".into()]).unwrap();
        assert_eq!(l.scheme, ListenScheme::Https);
        assert!(listen(&["localhost:80".into()]).is_err());
        assert!(listen(&["80".into(), "ftp".into()]).is_err());
        let l = listen(&["8443".into(), "https".into(), "proxy-protocol".into()]).unwrap();
        assert!(l.proxy_protocol);
        assert!(listen(&["80".into(), "proxy-protocol".into(), "proxy-protocol".into()]).is_err());
    }

    #[test]
    fn numbers_have_ranges() {
        assert_eq!(number("X", "5", 1, 10), Ok(5));
        assert!(number("X", "0", 1, 10).is_err());
        assert!(number("X", "-1", 0, 10).is_err());
        assert!(number("X", "five", 0, 10).is_err());
    }

    #[test]
    fn sizes_and_signed() {
        assert_eq!(size("X", "64M"), Ok(64 << 20));
        assert_eq!(size("X", "512k"), Ok(512 << 10));
        assert_eq!(size("X", "0"), Ok(0));
        assert!(size("X", "12Q").is_err());
        assert!(size("X", "M").is_err());
        assert_eq!(signed("X", "-3"), Ok(-3));
        assert!(signed("X", "many").is_err());
    }

    #[test]
    fn distances() {
        assert_eq!(distance("MaxRequestWorker", "MaxRequestWorkers"), 1);
        assert_eq!(distance("listen", "Listen"), 0);
    }
}
