//! A CGI script's output: its header block, turned into the response head (or a local
//! redirect), then its body, streamed to the edge as it comes; and its stderr, logged a line at a
//! time.

use std::io::Write;

use weir_wire as wire;

use weir_wire::response::ResponseHeadError;

use crate::cgi_head::CgiHead;
use crate::response::{HeadFailure, ResponseWriter};

/// Most bytes of CGI header block accepted before the blank line: a larger one could not become
/// a response head the edge reads.
const MAX_CGI_HEAD: usize = wire::limits::MAX_RESPONSE_HEAD;

/// Why a script's output cannot become the response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadOutput {
    /// Not a CGI response, or one the edge would not read (AH01215), or the edge is gone.
    Malformed,
    /// An informational status: a script cannot answer 1xx (the edge alone sends
    /// 100 Continue), and no final response came.
    Informational,
}

impl BadOutput {
    /// The answer when nothing of the response went out yet.
    pub(crate) fn status(self) -> u16 {
        match self {
            BadOutput::Malformed => 500,
            BadOutput::Informational => 502,
        }
    }

    pub(crate) fn text(self) -> &'static str {
        match self {
            BadOutput::Malformed => "The script sent a malformed response.\n",
            BadOutput::Informational => "The script sent no final response.\n",
        }
    }
}

/// Where the script's stdout is: in its header block, in its body, or in the body of a local
/// redirect, which is read and dropped.
pub(crate) enum Stdout {
    Head(Vec<u8>),
    Body,
    Discard,
}

impl Stdout {
    /// Takes a piece of stdout: collects the header block, then streams the body.
    pub(crate) fn take<W: Write>(
        &mut self,
        bytes: &[u8],
        nph: bool,
        out: &mut ResponseWriter<W>,
        script: &str,
    ) -> Result<(), BadOutput> {
        let head = match self {
            Stdout::Body => return out.body(bytes).map_err(|_| BadOutput::Malformed),
            Stdout::Discard => return Ok(()),
            Stdout::Head(head) => head,
        };
        head.extend_from_slice(bytes);
        let Some((head_len, body_start)) = find_blank_line(head) else {
            if head.len() > MAX_CGI_HEAD {
                tracing::error!(%script, "AH01217: malformed header from script '{script}': header block too large");
                return Err(BadOutput::Malformed);
            }
            return Ok(());
        };
        let rest = head.split_off(body_start);
        head.truncate(head_len);
        let text = String::from_utf8_lossy(head).into_owned();
        let cgi = match CgiHead::parse(&text, nph) {
            Ok(cgi) => cgi,
            Err(bad) => {
                tracing::error!(%script, "AH01215: malformed header from script '{script}': Bad header: {bad:?}");
                return Err(BadOutput::Malformed);
            }
        };
        for (name, _) in cgi.headers.iter().filter(|(name, _)| wire::is_internal(name)) {
            tracing::warn!(%script, header = %name, "script '{script}' set weir's internal header {name}; dropped");
        }
        if let Some(location) = cgi.local_redirect {
            // RFC 3875 6.2.2: the server answers as if the client had asked for `location`.
            // The edge does that, since the new target may be a static file or another script.
            *self = Stdout::Discard;
            return out.local_redirect(&location).map_err(|_| BadOutput::Malformed);
        }
        match out.head(cgi.status, &cgi.reason, &cgi.headers) {
            Ok(()) => {}
            Err(HeadFailure::Refused(ResponseHeadError::Informational(status))) => {
                tracing::error!(%script, "AH01215: malformed header from script '{script}': informational status {status}; only the server sends one");
                return Err(BadOutput::Informational);
            }
            Err(HeadFailure::Refused(refused)) => {
                tracing::error!(%script, "AH01215: malformed header from script '{script}': {refused}");
                return Err(BadOutput::Malformed);
            }
            Err(HeadFailure::Io(_)) => return Err(BadOutput::Malformed),
        }
        *self = Stdout::Body;
        out.body(&rest).map_err(|_| BadOutput::Malformed)
    }
}

/// Position of the end of the header block and of the body's start (after `\n\n` or `\r\n\r\n`).
fn find_blank_line(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut line_start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'\n' {
            let line = &bytes[line_start..i];
            if line.is_empty() || line == b"\r" {
                return Some((line_start, i + 1));
            }
            line_start = i + 1;
        }
    }
    None
}

/// Logs the script's stderr a line at a time, with the script's name, as Apache's mod_cgi does.
pub(crate) fn log_stderr(bytes: &[u8], pending: &mut Vec<u8>, script: &str) {
    pending.extend_from_slice(bytes);
    while let Some(newline) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=newline).collect();
        let text = String::from_utf8_lossy(&line);
        let text = escape_controls(text.trim_end_matches(['\n', '\r', ' ']));
        if !text.is_empty() {
            tracing::error!(%script, "AH01215: {text}: {script}");
        }
    }
    if pending.len() > 8192 {
        let text = escape_controls(&String::from_utf8_lossy(pending));
        pending.clear();
        tracing::error!(%script, "AH01215: {text}: {script}");
    }
}

/// A script's stderr text with its control characters written out, as Apache's
/// `ap_escape_logitem` does (`\r`, `\t`, `\x1b`…): a CR or an escape sequence from a script
/// must not move the cursor over, or seem to start, another line of the error log.
pub(crate) fn escape_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\u{8}' => out.push_str("\\b"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if c.is_control() => {
                for unit in c.to_string().bytes() {
                    out.push_str(&format!("\\x{unit:02x}"));
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_written_out() {
        assert_eq!(escape_controls("a\rb\x1b[2Jc\td\u{7f}\u{85}é"), "a\\rb\\x1b[2Jc\\td\\x7f\\xc2\\x85é");
    }

    #[test]
    fn blank_line_forms() {
        assert_eq!(find_blank_line(b"A: b\n\nbody"), Some((5, 6)));
        assert_eq!(find_blank_line(b"A: b\r\n\r\nbody"), Some((6, 8)));
        assert_eq!(find_blank_line(b"A: b\r\n"), None);
    }

    #[test]
    fn the_body_streams_once_the_head_is_whole() {
        let mut sent = Vec::new();
        let mut out = ResponseWriter::new(&mut sent);
        let mut state = Stdout::Head(Vec::new());
        state.take(b"Status: 201 Created\r\nX-A: b\r", false, &mut out, "s").unwrap();
        assert!(!out.head_sent(), "not before the blank line");
        state.take(b"\n\r\nfirst", false, &mut out, "s").unwrap();
        state.take(b"second", false, &mut out, "s").unwrap();
        out.finish().unwrap();
        let text = String::from_utf8(sent).unwrap();
        assert!(text.starts_with("HTTP/1.1 201 Created\r\nX-A: b\r\n"), "{text}");
        assert!(text.ends_with("5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n"), "{text}");
    }
}
