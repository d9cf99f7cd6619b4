//! The header block a CGI script prints before its body (RFC 3875 section 6).

use weir_wire::fields;

use crate::response::reason;

/// A parsed CGI header block, ready to become the response head.
#[derive(Debug, PartialEq, Eq)]
pub struct CgiHead {
    pub status: u16,
    pub reason: String,
    /// Headers to send, without `Status`.
    pub headers: Vec<(String, Vec<u8>)>,
    /// A local redirect (RFC 3875 6.2.2): `Location` is a local path and the only field.
    pub local_redirect: Option<String>,
}

impl CgiHead {
    /// Parses the lines before the blank line. An `nph-` script's first line is its own status
    /// line (`HTTP/1.1 200 OK`). The error is the offending line.
    pub fn parse(text: &str, nph: bool) -> Result<CgiHead, String> {
        let mut status = None;
        let mut headers = Vec::new();
        let mut location = None;
        let mut lines = text.lines();
        if nph {
            let line = lines.next().unwrap_or("").trim_end_matches('\r');
            let rest = line
                .strip_prefix("HTTP/1.1 ")
                .or_else(|| line.strip_prefix("HTTP/1.0 "))
                .ok_or_else(|| line.to_string())?;
            status = Some(parse_status(rest).ok_or_else(|| line.to_string())?);
        }
        for line in lines {
            let line = line.trim_end_matches('\r');
            let Some((name, value)) = line.split_once(':') else {
                return Err(line.to_string());
            };
            // The syntax the edge reads: a script's fields go out as it wrote them or not at all.
            if !fields::is_token(name.as_bytes()) || !fields::is_value(value.as_bytes()) {
                return Err(line.to_string());
            }
            let value = value.trim();
            if name.eq_ignore_ascii_case("status") && !nph {
                status = Some(parse_status(value).ok_or_else(|| line.to_string())?);
                continue;
            }
            if name.eq_ignore_ascii_case("location") {
                location = Some(value.to_string());
            }
            headers.push((name.to_string(), value.as_bytes().to_vec()));
        }
        // RFC 3875 6.2.2: a local redirect is a Location with a local path and no other field
        // (a Status included). Anything else with a Location is a document for the client.
        let local_redirect = match (&status, &location) {
            (None, Some(path)) if headers.len() == 1 && weir_wire::is_local_path(path) => Some(path.clone()),
            _ => None,
        };
        let default = if location.is_some() { 302 } else { 200 };
        let (status, text) = status.unwrap_or((default, String::new()));
        let reason = if text.is_empty() { reason(status).to_string() } else { text };
        Ok(CgiHead { status, reason, headers, local_redirect })
    }
}

/// `NNN reason`, with a three-digit code.
fn parse_status(value: &str) -> Option<(u16, String)> {
    let (code, text) = value.split_once(' ').unwrap_or((value, ""));
    if code.len() != 3 {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    (100..=999).contains(&code).then(|| (code, text.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_redirect_and_status() {
        let head = CgiHead::parse("Content-Type: text/plain\r\nX-A:  b ", false).unwrap();
        assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
        assert_eq!(head.headers[1], ("X-A".to_string(), b"b".to_vec()));
        let head = CgiHead::parse("Location: https://example.com/", false).unwrap();
        assert_eq!((head.status, head.local_redirect), (302, None));
        let head = CgiHead::parse("Location: /other?x=1", false).unwrap();
        assert_eq!(head.local_redirect.as_deref(), Some("/other?x=1"));
        let head = CgiHead::parse("Status: 301 Moved\nLocation: /other", false).unwrap();
        assert_eq!((head.status, head.local_redirect), (301, None));
        let head = CgiHead::parse("HTTP/1.1 203 Odd\r\nX-N: 1", true).unwrap();
        assert_eq!((head.status, head.reason.as_str(), head.headers.len()), (203, "Odd", 1));
        assert!(CgiHead::parse("Content-Type: text/plain", true).is_err());
        let head = CgiHead::parse("Status: 418 I'm a teapot\nContent-Type: text/plain", false).unwrap();
        assert_eq!((head.status, head.reason.as_str()), (418, "I'm a teapot"));
        assert_eq!(head.headers.len(), 1);
        assert!(CgiHead::parse("garbage", false).is_err());
        assert!(CgiHead::parse("Bad(Name): x", false).is_err());
        assert!(CgiHead::parse("X-A: a\x00b", false).is_err());
        let head = CgiHead::parse("Status: 103 Early Hints", false).unwrap();
        assert_eq!(head.status, 103, "parsed here, refused when written");
    }

    #[test]
    fn a_local_redirect_is_a_local_location_alone() {
        let head = CgiHead::parse("Location: /other", false).unwrap();
        assert_eq!(head.local_redirect.as_deref(), Some("/other"));
        for client in [
            "Location: //elsewhere.example/x",
            "Location: /other\r\nContent-Type: text/html",
            "Content-Type: text/html\r\nLocation: /other",
            "Status: 200 OK\r\nLocation: /other",
            "Location: other",
        ] {
            let head = CgiHead::parse(client, false).unwrap();
            assert_eq!(head.local_redirect, None, "{client:?}");
        }
        let head = CgiHead::parse("Location: //elsewhere.example/x", false).unwrap();
        assert_eq!(head.status, 302, "a client redirect, as the script wrote it");
        assert!(CgiHead::parse("Status: abc", false).is_err());
    }
}
