//! The header block a CGI script prints before its body (RFC 3875 section 6).

use crate::response::reason;

/// A parsed CGI header block, ready to become the response head.
#[derive(Debug, PartialEq, Eq)]
pub struct CgiHead {
    pub status: u16,
    pub reason: String,
    /// Headers to send, without `Status`.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl CgiHead {
    /// Parses the lines before the blank line. The error is the offending line.
    pub fn parse(text: &str) -> Result<CgiHead, String> {
        let mut status = None;
        let mut headers = Vec::new();
        let mut location = false;
        for line in text.lines() {
            let line = line.trim_end_matches('\r');
            let Some((name, value)) = line.split_once(':') else {
                return Err(line.to_string());
            };
            let valid_name =
                !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':');
            if !valid_name || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
                return Err(line.to_string());
            }
            let value = value.trim();
            if name.eq_ignore_ascii_case("status") {
                let (code, text) = value.split_once(' ').unwrap_or((value, ""));
                let code: u16 = code.parse().map_err(|_| line.to_string())?;
                if !(100..=999).contains(&code) {
                    return Err(line.to_string());
                }
                status = Some((code, text.trim().to_string()));
                continue;
            }
            if name.eq_ignore_ascii_case("location") {
                location = true;
            }
            headers.push((name.to_string(), value.as_bytes().to_vec()));
        }
        let (status, text) = status.unwrap_or(if location {
            (302, String::new())
        } else {
            (200, String::new())
        });
        let reason = if text.is_empty() {
            reason(status).to_string()
        } else {
            text
        };
        Ok(CgiHead {
            status,
            reason,
            headers,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_redirect_and_status() {
        let head = CgiHead::parse("Content-Type: text/plain\r\nX-A:  b ").unwrap();
        assert_eq!((head.status, head.reason.as_str()), (200, "OK"));
        assert_eq!(head.headers[1], ("X-A".to_string(), b"b".to_vec()));
        let head = CgiHead::parse("Location: https://example.com/").unwrap();
        assert_eq!(head.status, 302);
        let head = CgiHead::parse("Status: 418 I'm a teapot\nContent-Type: text/plain").unwrap();
        assert_eq!((head.status, head.reason.as_str()), (418, "I'm a teapot"));
        assert_eq!(head.headers.len(), 1);
        assert!(CgiHead::parse("garbage").is_err());
        assert!(CgiHead::parse("Status: abc").is_err());
    }
}
