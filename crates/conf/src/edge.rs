//! Settings of the edge: mod_reqtimeout's timeouts, request limits, admission, rate limits,
//! response headers and TLS, with the readers for their Apache-syntax values.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::Problem;

fn bad(directive: &'static str, value: &str, reason: impl Into<String>) -> Problem {
    Problem::BadValue { directive, value: value.to_string(), reason: reason.into() }
}

/// One stage of `RequestReadTimeout`: `timeout[-maxtimeout][,MinRate=rate]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageTimeout {
    /// The first deadline, from the start of the stage; zero turns the stage off.
    pub initial: Duration,
    /// The deadline never moves past this (only with MinRate).
    pub max: Option<Duration>,
    /// Each this many bytes received moves the deadline one second later.
    pub min_rate: Option<u64>,
}

impl StageTimeout {
    pub const fn fixed(secs: u64) -> StageTimeout {
        StageTimeout { initial: Duration::from_secs(secs), max: None, min_rate: None }
    }

    /// Whether the stage is enforced at all.
    pub fn is_on(&self) -> bool {
        !self.initial.is_zero()
    }
}

/// `RequestReadTimeout handshake=… header=… body=…`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestReadTimeout {
    pub handshake: StageTimeout,
    pub header: StageTimeout,
    pub body: StageTimeout,
}

impl Default for RequestReadTimeout {
    /// mod_reqtimeout's defaults: handshake=10 header=20-40,MinRate=500 body=20,MinRate=500.
    fn default() -> Self {
        RequestReadTimeout {
            handshake: StageTimeout::fixed(10),
            header: StageTimeout {
                initial: Duration::from_secs(20),
                max: Some(Duration::from_secs(40)),
                min_rate: Some(500),
            },
            body: StageTimeout { initial: Duration::from_secs(20), max: None, min_rate: Some(500) },
        }
    }
}

/// Applies one `stage=value` argument of RequestReadTimeout.
pub fn read_timeout_stage(target: &mut RequestReadTimeout, argument: &str) -> Result<(), Problem> {
    const D: &str = "RequestReadTimeout";
    let (stage, value) =
        argument.split_once('=').ok_or_else(|| bad(D, argument, "expected handshake=, header= or body="))?;
    let slot = match stage.to_ascii_lowercase().as_str() {
        "handshake" => &mut target.handshake,
        "header" => &mut target.header,
        "body" => &mut target.body,
        _ => return Err(bad(D, argument, "the stage must be handshake, header or body")),
    };
    let (times, rate) = match value.split_once(',') {
        Some((times, rate)) => {
            let (key, number) =
                rate.split_once('=').ok_or_else(|| bad(D, argument, "expected MinRate=bytes-per-second"))?;
            if !key.eq_ignore_ascii_case("minrate") {
                return Err(bad(D, argument, "expected MinRate=bytes-per-second"));
            }
            let number: u64 =
                number.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                    bad(D, argument, "MinRate must be a positive number of bytes per second")
                })?;
            (times, Some(number))
        }
        None => (value, None),
    };
    let seconds = |text: &str| -> Result<Duration, Problem> {
        text.parse::<u64>()
            .map(Duration::from_secs)
            .map_err(|_| bad(D, argument, "timeouts are whole seconds"))
    };
    let (initial, max) = match times.split_once('-') {
        Some((initial, max)) => (seconds(initial)?, Some(seconds(max)?)),
        None => (seconds(times)?, None),
    };
    if let Some(max) = max {
        if max < initial {
            return Err(bad(D, argument, "the maximum timeout is below the initial one"));
        }
        if rate.is_none() {
            return Err(bad(D, argument, "a timeout range needs MinRate (as in mod_reqtimeout)"));
        }
    }
    *slot = StageTimeout { initial, max, min_rate: rate };
    Ok(())
}

/// `RateLimit N/s [burst=M]` (weir): per client source (an IPv4 address or an IPv6 /64).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests replenished per second.
    pub per_second: u32,
    /// Requests allowed at once before the rate applies.
    pub burst: u32,
}

pub fn rate_limit(args: &[String]) -> Result<RateLimit, Problem> {
    const D: &str = "RateLimit";
    let rate = &args[0];
    let per_second: u32 = rate
        .strip_suffix("/s")
        .and_then(|n| n.parse().ok())
        .filter(|n| *n > 0)
        .ok_or_else(|| bad(D, rate, "expected a rate such as 20/s"))?;
    let burst = match args.get(1) {
        Some(arg) => arg
            .strip_prefix("burst=")
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| bad(D, arg, "expected burst=N with N at least 1"))?,
        None => per_second,
    };
    Ok(RateLimit { per_second, burst })
}

/// What `Header` does to a response field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderAction {
    /// Replace any value.
    Set(String),
    /// Add to an existing value with ", ", or set it.
    Append(String),
    /// Add another field, even if one exists.
    Add(String),
    /// Remove it.
    Unset,
}

/// One `Header [always] action NAME [VALUE]` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderRule {
    /// `always`: also on error responses the edge makes itself.
    pub always: bool,
    /// Field name, lowercased.
    pub name: String,
    pub action: HeaderAction,
}

pub fn header_rule(args: &[String]) -> Result<HeaderRule, Problem> {
    const D: &str = "Header";
    let (always, rest) = match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
        Some("always") => (true, &args[1..]),
        Some("onsuccess") => (false, &args[1..]),
        _ => (false, args),
    };
    let (Some(action), Some(name)) = (rest.first(), rest.get(1)) else {
        return Err(bad(D, &args.join(" "), "expected [always] set|append|add|unset NAME [VALUE]"));
    };
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
    {
        return Err(bad(D, name, "not a valid header field name"));
    }
    let value = rest.get(2).cloned();
    if let Some(v) = &value {
        if v.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(bad(D, v, "header values cannot hold control characters"));
        }
    }
    let need_value = |v: Option<String>| v.ok_or_else(|| bad(D, action, "this action needs a value"));
    let action = match action.to_ascii_lowercase().as_str() {
        "set" => HeaderAction::Set(need_value(value)?),
        "append" | "merge" => HeaderAction::Append(need_value(value)?),
        "add" => HeaderAction::Add(need_value(value)?),
        "unset" if value.is_none() => HeaderAction::Unset,
        "unset" => return Err(bad(D, action, "unset takes no value")),
        other => return Err(bad(D, other, "the action must be set, append, merge, add or unset")),
    };
    Ok(HeaderRule { always, name: name.to_ascii_lowercase(), action })
}

/// TLS protocol versions weir can speak (rustls: 1.2 and 1.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsVersions {
    pub tls12: bool,
    pub tls13: bool,
}

impl Default for TlsVersions {
    fn default() -> Self {
        TlsVersions { tls12: true, tls13: true }
    }
}

/// `SSLProtocol`, as mod_ssl reads it: `all`, `+X`, `-X`, or bare names (which replace).
/// Versions below TLS 1.2 can only be subtracted; asking for one is an error, not a silent no-op.
pub fn ssl_protocol(args: &[String]) -> Result<TlsVersions, Problem> {
    const D: &str = "SSLProtocol";
    let mut versions = TlsVersions { tls12: false, tls13: false };
    for arg in args {
        let (sign, name) = match arg.chars().next() {
            Some('+') => (Some(true), &arg[1..]),
            Some('-') => (Some(false), &arg[1..]),
            _ => (None, arg.as_str()),
        };
        let (tls12, tls13, legacy) = match name.to_ascii_lowercase().as_str() {
            "all" => (true, true, false),
            "tlsv1.2" => (true, false, false),
            "tlsv1.3" => (false, true, false),
            "sslv2" | "sslv3" | "tlsv1" | "tlsv1.1" => (false, false, true),
            _ => return Err(bad(D, arg, "expected all, TLSv1.2 or TLSv1.3, with + or -")),
        };
        if legacy && sign != Some(false) {
            return Err(bad(
                D,
                arg,
                "weir speaks only TLSv1.2 and TLSv1.3; older versions can only be removed",
            ));
        }
        let on = sign != Some(false);
        if sign.is_none() && !legacy {
            versions = TlsVersions { tls12: false, tls13: false };
        }
        if tls12 {
            versions.tls12 = on;
        }
        if tls13 {
            versions.tls13 = on;
        }
    }
    if !versions.tls12 && !versions.tls13 {
        return Err(bad(D, &args.join(" "), "no protocol version is left enabled"));
    }
    Ok(versions)
}

/// `SSLVerifyClient`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerifyClient {
    #[default]
    None,
    Optional,
    Require,
}

/// TLS settings beyond the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOptions {
    pub versions: TlsVersions,
    pub verify_client: VerifyClient,
    /// CA certificates that client certificates must chain to.
    pub client_ca_file: Option<PathBuf>,
    /// Session resumption by tickets (`SSLSessionTickets`).
    pub session_tickets: bool,
    /// ALPN protocols offered, in preference order (`Protocols h2 http/1.1`).
    pub alpn_h2: bool,
    /// `SSLCipherSuite`: the TLS 1.2 suites offered, as IANA codes, the server's choice first.
    pub tls12_suites: Vec<u16>,
    /// `SSLCipherSuite TLSv1.3 …`: the TLS 1.3 suites, likewise.
    pub tls13_suites: Vec<u16>,
    /// `SSLHonorCipherOrder`: the server's order decides (weir's default, unlike Apache's), so a
    /// client cannot steer the connection to the weakest suite both sides have.
    pub honor_cipher_order: bool,
    /// `SSLOptions`.
    pub ssl_options: SslOptions,
}

/// `SSLOptions`: what scripts are told about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SslOptions {
    /// `StdEnvVars`. weir passes its SSL variables (HTTPS, SSL_PROTOCOL, SSL_CIPHER,
    /// SSL_CLIENT_VERIFY, SSL_CLIENT_S_DN) to every script whether or not it is set.
    pub std_env_vars: bool,
    /// `ExportCertData`: scripts also get SSL_SERVER_CERT and, with a client certificate,
    /// SSL_CLIENT_CERT and SSL_CLIENT_CERT_CHAIN_n (PEM), as mod_ssl gives them. Off, the edge
    /// does not send the certificates to the pool at all.
    pub export_cert_data: bool,
}

/// `SSLOptions [+|-]option …` as mod_ssl reads it: bare names replace the set, signed ones
/// change it, and the two kinds cannot be mixed on one line.
pub fn ssl_options(current: SslOptions, args: &[String]) -> Result<SslOptions, Problem> {
    const D: &str = "SSLOptions";
    let signed = args.iter().filter(|a| a.starts_with(['+', '-'])).count();
    if signed != 0 && signed != args.len() {
        return Err(bad(
            D,
            &args.join(" "),
            "Illegal combination of options: use + and - on every option, or on none",
        ));
    }
    let mut options = if signed == 0 { SslOptions::default() } else { current };
    for arg in args {
        let (on, name) = match arg.strip_prefix('-') {
            Some(name) => (false, name),
            None => (true, arg.strip_prefix('+').unwrap_or(arg.as_str())),
        };
        match name.to_ascii_lowercase().as_str() {
            "stdenvvars" => options.std_env_vars = on,
            "exportcertdata" => options.export_cert_data = on,
            "fakebasicauth" => {
                return Err(bad(D, arg, "weir does not turn client certificates into Basic credentials; use Require with SSLVerifyClient"))
            }
            "strictrequire" | "optrenegotiate" | "legacydnstringformat" => {
                return Err(bad(D, arg, "weir does not support this option"))
            }
            _ => return Err(bad(D, arg, "expected StdEnvVars or ExportCertData")),
        }
    }
    Ok(options)
}

impl Default for TlsOptions {
    fn default() -> Self {
        TlsOptions {
            versions: TlsVersions::default(),
            verify_client: VerifyClient::None,
            client_ca_file: None,
            session_tickets: true,
            alpn_h2: true,
            tls12_suites: crate::ciphers::default_order(crate::ciphers::Protocol::Tls12),
            tls13_suites: crate::ciphers::default_order(crate::ciphers::Protocol::Tls13),
            honor_cipher_order: true,
            ssl_options: SslOptions::default(),
        }
    }
}

/// `ServerSignature`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ServerSignature {
    #[default]
    Off,
    On,
    Email,
}

/// `MaxConnections` and `MaxConnectionsPerIP`: `auto` (the default), 0 for no limit, or a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConnectionCap {
    /// Derived by the edge when it starts: MaxConnections from the descriptors and memory it
    /// may use, MaxConnectionsPerIP as half of MaxConnections.
    #[default]
    Auto,
    /// `0`: no limit.
    Unlimited,
    At(usize),
}

impl ConnectionCap {
    pub fn parse(directive: &'static str, value: &str) -> Result<ConnectionCap, Problem> {
        if value.eq_ignore_ascii_case("auto") {
            return Ok(ConnectionCap::Auto);
        }
        let number: usize =
            value.parse().ok().filter(|n| *n <= 10_000_000).ok_or_else(|| Problem::BadValue {
                directive,
                value: value.to_string(),
                reason: "expected auto, 0 (no limit) or a whole number up to 10000000".to_string(),
            })?;
        Ok(match number {
            0 => ConnectionCap::Unlimited,
            n => ConnectionCap::At(n),
        })
    }
}

/// Everything the edge enforces on clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLimits {
    pub read_timeout: RequestReadTimeout,
    pub limit_request_line: usize,
    pub limit_request_field_size: usize,
    pub limit_request_fields: usize,
    pub keep_alive: bool,
    pub keep_alive_timeout: Duration,
    pub max_keep_alive_requests: u64,
    /// All client connections at once.
    pub max_connections: ConnectionCap,
    /// Connections at once from one source (an IPv4 address or an IPv6 /64).
    pub max_connections_per_ip: ConnectionCap,
    pub rate_limit: Option<RateLimit>,
    /// How long a request may wait for a worker before 503.
    pub queue_timeout: Duration,
    pub trace_enable: bool,
    pub server_signature: ServerSignature,
    pub headers: Vec<HeaderRule>,
}

impl EdgeLimits {
    /// LimitRequestLine, LimitRequestFieldSize and LimitRequestFields, as the edge–worker
    /// contract sizes heads by them: the edge admits by these, a worker reads by them.
    pub fn head_limits(&self) -> weir_wire::limits::HeadLimits {
        weir_wire::limits::HeadLimits {
            request_line: self.limit_request_line,
            field_size: self.limit_request_field_size,
            fields: self.limit_request_fields,
        }
    }
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            read_timeout: RequestReadTimeout::default(),
            limit_request_line: 8190,
            limit_request_field_size: 8190,
            limit_request_fields: 100,
            keep_alive: true,
            keep_alive_timeout: Duration::from_secs(5),
            max_keep_alive_requests: 100,
            max_connections: ConnectionCap::Auto,
            max_connections_per_ip: ConnectionCap::Auto,
            rate_limit: None,
            queue_timeout: Duration::from_secs(10),
            trace_enable: false,
            server_signature: ServerSignature::Off,
            headers: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connection_caps() {
        assert_eq!(ConnectionCap::parse("MaxConnections", "auto"), Ok(ConnectionCap::Auto));
        assert_eq!(ConnectionCap::parse("MaxConnections", "AUTO"), Ok(ConnectionCap::Auto));
        assert_eq!(ConnectionCap::parse("MaxConnections", "0"), Ok(ConnectionCap::Unlimited));
        assert_eq!(ConnectionCap::parse("MaxConnections", "500"), Ok(ConnectionCap::At(500)));
        for bad in ["-1", "lots", "10000001", ""] {
            assert!(ConnectionCap::parse("MaxConnections", bad).is_err(), "{bad}");
        }
        assert_eq!(EdgeLimits::default().max_connections_per_ip, ConnectionCap::Auto);
    }

    #[test]
    fn request_read_timeout_stages() {
        let mut t = RequestReadTimeout::default();
        read_timeout_stage(&mut t, "header=2-6,MinRate=100").unwrap();
        assert_eq!(
            t.header,
            StageTimeout {
                initial: Duration::from_secs(2),
                max: Some(Duration::from_secs(6)),
                min_rate: Some(100)
            }
        );
        read_timeout_stage(&mut t, "body=0").unwrap();
        assert!(!t.body.is_on());
        read_timeout_stage(&mut t, "handshake=5").unwrap();
        assert_eq!(t.handshake, StageTimeout::fixed(5));
        for bad in
            ["header=6-2,MinRate=1", "header=2-6", "head=5", "body=x", "body=5,MinRate=0", "body=5,Rate=3"]
        {
            assert!(read_timeout_stage(&mut t, bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rate_limits() {
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(rate_limit(&args("5/s burst=5")).unwrap(), RateLimit { per_second: 5, burst: 5 });
        assert_eq!(rate_limit(&args("20/s")).unwrap().burst, 20);
        assert!(rate_limit(&args("5/m")).is_err());
        assert!(rate_limit(&args("0/s")).is_err());
    }

    #[test]
    fn header_rules() {
        let args = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let rule =
            header_rule(&args(&["always", "set", "Strict-Transport-Security", "max-age=63072000"])).unwrap();
        assert!(rule.always);
        assert_eq!(rule.name, "strict-transport-security");
        assert_eq!(header_rule(&args(&["unset", "X-A"])).unwrap().action, HeaderAction::Unset);
        assert!(header_rule(&args(&["set", "X-A"])).is_err());
        assert!(header_rule(&args(&["edit", "X-A", "b"])).is_err());
        assert!(header_rule(&args(&["set", "Bad Name", "b"])).is_err());
    }

    #[test]
    fn ssl_protocols() {
        let args = |s: &str| s.split(' ').map(str::to_string).collect::<Vec<_>>();
        assert_eq!(ssl_protocol(&args("all -SSLv3")).unwrap(), TlsVersions { tls12: true, tls13: true });
        assert_eq!(ssl_protocol(&args("TLSv1.3")).unwrap(), TlsVersions { tls12: false, tls13: true });
        assert_eq!(ssl_protocol(&args("all -TLSv1.2")).unwrap(), TlsVersions { tls12: false, tls13: true });
        assert!(ssl_protocol(&args("+TLSv1")).is_err());
        assert!(ssl_protocol(&args("all -TLSv1.2 -TLSv1.3")).is_err());
    }
}
