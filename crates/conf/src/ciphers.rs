//! `SSLCipherSuite`: OpenSSL's cipher strings, read onto the suites weir's TLS library offers.
//!
//! weir offers only forward-secret AEAD suites: three for TLS 1.3 and six for TLS 1.2 (ECDHE with
//! ECDSA or RSA certificates, AES-GCM or ChaCha20-Poly1305). A TLS 1.2 cipher string is read as
//! OpenSSL reads one: elements separated by `:`, `,` or spaces; a suite name or an alias
//! (`HIGH`, `ECDHE`, `aRSA`, `AESGCM`…), `A+B` for suites in both; `!` removes for good, `-`
//! removes, `+` moves to the end, `@STRENGTH` sorts by key length (`@SECLEVEL=n` is accepted and
//! means nothing here). Aliases for what weir never offers (`MEDIUM`, `aNULL`, `RC4`, `DHE`…)
//! match nothing, so `HIGH:!aNULL:!MD5` works as written; a suite weir cannot offer, named for
//! inclusion, is an error that lists the ones it can. The TLS 1.3 form
//! (`SSLCipherSuite TLSv1.3 TLS_AES_256_GCM_SHA384:…`) is a plain list of names, as OpenSSL's
//! ciphersuites setting. The resulting order is the server's order of preference.

use crate::error::Problem;

/// One suite weir can offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Suite {
    /// OpenSSL's name (for TLS 1.3, the same as the IANA name).
    pub openssl: &'static str,
    /// The IANA code point, which the edge looks up in its TLS library.
    pub code: u16,
    /// OpenSSL aliases that include it.
    aliases: &'static [&'static str],
    /// Symmetric key bits, for `@STRENGTH`.
    bits: u16,
}

const TLS12_COMMON: [&str; 9] =
    ["ALL", "DEFAULT", "HIGH", "TLSv1.2", "kECDHE", "kEECDH", "ECDHE", "EECDH", "ECDH"];

macro_rules! tls12 {
    ($openssl:literal, $code:literal, $bits:literal, [$($alias:literal),*]) => {
        Suite {
            openssl: $openssl,
            code: $code,
            bits: $bits,
            aliases: &[
                TLS12_COMMON[0], TLS12_COMMON[1], TLS12_COMMON[2], TLS12_COMMON[3], TLS12_COMMON[4],
                TLS12_COMMON[5], TLS12_COMMON[6], TLS12_COMMON[7], TLS12_COMMON[8], $($alias),*
            ],
        }
    };
}

/// The TLS 1.2 suites, in weir's default order of preference.
pub const TLS12: &[Suite] = &[
    tls12!(
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        0xc02c,
        256,
        ["aECDSA", "ECDSA", "AES", "AES256", "AESGCM", "SHA384"]
    ),
    tls12!(
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        0xc02b,
        128,
        ["aECDSA", "ECDSA", "AES", "AES128", "AESGCM", "SHA256"]
    ),
    tls12!("ECDHE-ECDSA-CHACHA20-POLY1305", 0xcca9, 256, ["aECDSA", "ECDSA", "CHACHA20", "SHA256"]),
    tls12!("ECDHE-RSA-AES256-GCM-SHA384", 0xc030, 256, ["aRSA", "AES", "AES256", "AESGCM", "SHA384"]),
    tls12!("ECDHE-RSA-AES128-GCM-SHA256", 0xc02f, 128, ["aRSA", "AES", "AES128", "AESGCM", "SHA256"]),
    tls12!("ECDHE-RSA-CHACHA20-POLY1305", 0xcca8, 256, ["aRSA", "CHACHA20", "SHA256"]),
];

/// The TLS 1.3 suites, in weir's default order of preference.
pub const TLS13: &[Suite] = &[
    Suite { openssl: "TLS_AES_256_GCM_SHA384", code: 0x1302, aliases: &[], bits: 256 },
    Suite { openssl: "TLS_AES_128_GCM_SHA256", code: 0x1301, aliases: &[], bits: 128 },
    Suite { openssl: "TLS_CHACHA20_POLY1305_SHA256", code: 0x1303, aliases: &[], bits: 256 },
];

/// OpenSSL aliases that name only suites weir never offers: accepted, matching nothing.
const EMPTY_ALIASES: &[&str] = &[
    "COMPLEMENTOFALL",
    "COMPLEMENTOFDEFAULT",
    "MEDIUM",
    "LOW",
    "EXPORT",
    "EXP",
    "EXPORT40",
    "EXPORT56",
    "aNULL",
    "eNULL",
    "NULL",
    "ADH",
    "AECDH",
    "MD5",
    "RC4",
    "RC2",
    "DES",
    "3DES",
    "IDEA",
    "SEED",
    "CAMELLIA",
    "CAMELLIA128",
    "CAMELLIA256",
    "ARIA",
    "ARIA128",
    "ARIA256",
    "ARIAGCM",
    "PSK",
    "kPSK",
    "aPSK",
    "ECDHEPSK",
    "kECDHEPSK",
    "DHEPSK",
    "kDHEPSK",
    "RSAPSK",
    "kRSAPSK",
    "SRP",
    "kSRP",
    "aSRP",
    "DSS",
    "aDSS",
    "DH",
    "DHE",
    "EDH",
    "kDHE",
    "kEDH",
    "kDH",
    "aDH",
    "kDHr",
    "kDHd",
    "kECDH",
    "kECDHr",
    "kECDHe",
    "aECDH",
    "kRSA",
    "RSA",
    "SHA1",
    "SHA",
    "AESCCM",
    "AESCCM8",
    "CCM",
    "CCM8",
    "SSLv3",
    "SSLv2",
    "TLSv1",
    "TLSv1.0",
    "GOST",
    "kGOST",
    "aGOST",
    "aGOST01",
    "GOST94",
    "GOST89MAC",
    "KRB5",
    "kKRB5",
    "aKRB5",
    "SUITEB128",
    "SUITEB128ONLY",
    "SUITEB192",
    "CBC",
];

/// Which protocol an `SSLCipherSuite` line sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `SSL` (the default): TLS 1.2 (and, in Apache, older versions weir does not speak).
    Tls12,
    /// `TLSv1.3`.
    Tls13,
}

fn bad(value: &str, reason: impl Into<String>) -> Problem {
    Problem::BadValue { directive: "SSLCipherSuite", value: value.to_string(), reason: reason.into() }
}

fn offered(suites: &[Suite]) -> String {
    suites.iter().map(|s| s.openssl).collect::<Vec<_>>().join(":")
}

/// `SSLCipherSuite [SSL|TLSv1.3] spec`: which protocol, and the suites' IANA codes in order.
pub fn ssl_cipher_suite(args: &[String]) -> Result<(Protocol, Vec<u16>), Problem> {
    let (protocol, spec) = match args {
        [spec] => (Protocol::Tls12, spec),
        [protocol, spec] if protocol.eq_ignore_ascii_case("SSL") => (Protocol::Tls12, spec),
        [protocol, spec] if protocol.eq_ignore_ascii_case("TLSv1.3") => (Protocol::Tls13, spec),
        [protocol, _] => return Err(bad(protocol, "the protocol must be SSL (TLS 1.2) or TLSv1.3")),
        _ => return Err(bad(&args.join(" "), "expected [SSL|TLSv1.3] cipher-spec")),
    };
    let suites = match protocol {
        Protocol::Tls12 => tls12_list(spec)?,
        Protocol::Tls13 => tls13_list(spec)?,
    };
    Ok((protocol, suites.iter().map(|s| s.code).collect()))
}

fn elements(spec: &str) -> impl Iterator<Item = &str> {
    spec.split([':', ',', ' ']).filter(|e| !e.is_empty())
}

fn tls13_list(spec: &str) -> Result<Vec<Suite>, Problem> {
    let mut list: Vec<Suite> = Vec::new();
    for name in elements(spec) {
        let Some(suite) = TLS13.iter().find(|s| s.openssl.eq_ignore_ascii_case(name)) else {
            return Err(bad(
                name,
                format!("weir cannot offer this TLSv1.3 suite; it offers {}", offered(TLS13)),
            ));
        };
        if !list.contains(suite) {
            list.push(*suite);
        }
    }
    if list.is_empty() {
        return Err(bad(spec, "no TLSv1.3 suite is left"));
    }
    Ok(list)
}

/// The suites an element (`HIGH`, `EECDH+AESGCM`, a suite name) matches, or why it cannot.
fn matching(element: &str, include: bool) -> Result<Vec<Suite>, Problem> {
    let mut result: Option<Vec<Suite>> = None;
    for part in element.split('+') {
        let by_name = TLS12.iter().filter(|s| s.openssl.eq_ignore_ascii_case(part));
        let by_alias = TLS12.iter().filter(|s| s.aliases.iter().any(|a| a.eq_ignore_ascii_case(part)));
        let found: Vec<Suite> = by_name.chain(by_alias).copied().collect();
        let known = !found.is_empty() || EMPTY_ALIASES.iter().any(|a| a.eq_ignore_ascii_case(part));
        if !known {
            // OpenSSL skips names it does not know; naming one to include is a mistake weir
            // reports, so a site never runs with fewer suites than its file seems to say. A
            // name only removed (`!DHE-RSA-AES128-SHA`) removes nothing and is fine.
            if !include {
                return Ok(Vec::new());
            }
            return Err(bad(
                part,
                format!(
                    "weir cannot offer this cipher suite (or does not know the alias); it offers {}",
                    offered(TLS12)
                ),
            ));
        }
        result = Some(match result {
            None => found,
            Some(before) => before.into_iter().filter(|s| found.contains(s)).collect(),
        });
    }
    Ok(result.unwrap_or_default())
}

fn tls12_list(spec: &str) -> Result<Vec<Suite>, Problem> {
    let mut list: Vec<Suite> = Vec::new();
    let mut banned: Vec<Suite> = Vec::new();
    for element in elements(spec) {
        if element.eq_ignore_ascii_case("@STRENGTH") {
            // A stable sort keeps the written order among suites of equal strength.
            list.sort_by_key(|s| std::cmp::Reverse(s.bits));
            continue;
        }
        if element.get(..9).is_some_and(|head| head.eq_ignore_ascii_case("@SECLEVEL")) {
            continue;
        }
        let (op, name) = match element.as_bytes()[0] {
            b'!' | b'-' | b'+' => (element.as_bytes()[0], &element[1..]),
            _ => (b' ', element),
        };
        let found = matching(name, op == b' ')?;
        match op {
            b'!' => {
                list.retain(|s| !found.contains(s));
                banned.extend(found);
            }
            b'-' => list.retain(|s| !found.contains(s)),
            b'+' => {
                let (moved, kept): (Vec<Suite>, Vec<Suite>) =
                    list.iter().copied().partition(|s| found.contains(s));
                list = kept;
                list.extend(moved);
            }
            _ => {
                for suite in found {
                    if !list.contains(&suite) && !banned.contains(&suite) {
                        list.push(suite);
                    }
                }
            }
        }
    }
    if list.is_empty() {
        return Err(bad(spec, format!("no cipher suite is left; weir offers {}", offered(TLS12))));
    }
    Ok(list)
}

/// The OpenSSL name of a suite by its IANA code, for messages and `-V`.
pub fn openssl_name(code: u16) -> Option<&'static str> {
    TLS12.iter().chain(TLS13).find(|s| s.code == code).map(|s| s.openssl)
}

/// weir's default order: every suite, strongest first.
pub fn default_order(protocol: Protocol) -> Vec<u16> {
    match protocol {
        Protocol::Tls12 => TLS12.iter().map(|s| s.code).collect(),
        Protocol::Tls13 => TLS13.iter().map(|s| s.code).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(args: &[&str]) -> Result<Vec<&'static str>, Problem> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        ssl_cipher_suite(&args).map(|(_, codes)| codes.into_iter().filter_map(openssl_name).collect())
    }

    #[test]
    fn openssl_strings_as_sites_write_them() {
        // Debian's ssl.conf.
        assert_eq!(names(&["HIGH:!aNULL"]).unwrap().len(), 6);
        assert_eq!(
            names(&["EECDH+AESGCM:EDH+AESGCM"]).unwrap(),
            vec![
                "ECDHE-ECDSA-AES256-GCM-SHA384",
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-RSA-AES256-GCM-SHA384",
                "ECDHE-RSA-AES128-GCM-SHA256"
            ]
        );
        // Written order is the server's order; a plain repeat does not move a suite.
        assert_eq!(
            names(&["ECDHE-RSA-CHACHA20-POLY1305:ECDHE-RSA-AES128-GCM-SHA256:aRSA"]).unwrap(),
            vec!["ECDHE-RSA-CHACHA20-POLY1305", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"]
        );
        // ! removes for good, - for now, + moves to the end, @STRENGTH sorts.
        assert_eq!(names(&["ALL:!CHACHA20:CHACHA20:!ECDSA"]).unwrap().len(), 2);
        assert_eq!(names(&["ALL:-CHACHA20:ECDHE-RSA-CHACHA20-POLY1305:!ECDSA"]).unwrap().len(), 3);
        assert_eq!(names(&["aRSA:+AES256"]).unwrap()[2], "ECDHE-RSA-AES256-GCM-SHA384");
        assert_eq!(names(&["aRSA+AES128:aRSA:@STRENGTH"]).unwrap()[2], "ECDHE-RSA-AES128-GCM-SHA256");
        assert_eq!(
            names(&["TLSv1.3", "TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"]).unwrap(),
            vec!["TLS_CHACHA20_POLY1305_SHA256", "TLS_AES_128_GCM_SHA256"]
        );
        // Removing what weir never offers is fine.
        assert_eq!(names(&["HIGH:!DHE-RSA-AES128-SHA:!MD5:!RC4:!3DES:@SECLEVEL=2"]).unwrap().len(), 6);
    }

    #[test]
    fn what_weir_cannot_offer_is_an_error_listing_what_it_can() {
        for (args, value) in [
            (&["DHE-RSA-AES256-GCM-SHA384"][..], "DHE-RSA-AES256-GCM-SHA384"),
            (&["ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA"][..], "AES128-SHA"),
            (&["TLSv1.3", "TLS_AES_128_CCM_SHA256"][..], "TLS_AES_128_CCM_SHA256"),
        ] {
            let error = names(args).unwrap_err().to_string();
            assert!(error.contains(&format!("'{value}'")) && error.contains("weir cannot offer"), "{error}");
            assert!(
                error.contains("ECDHE-RSA-AES128-GCM-SHA256") || error.contains("TLS_AES_128_GCM_SHA256")
            );
        }
        assert!(names(&["MEDIUM:LOW"]).unwrap_err().to_string().contains("no cipher suite is left"));
        assert!(names(&["TLSv1.2", "HIGH"]).unwrap_err().to_string().contains("SSL (TLS 1.2) or TLSv1.3"));
    }
}
