//! Writing a response back to the edge: a head, then a chunked body, so that a worker that dies
//! mid-response leaves a visibly unfinished message (the edge answers 502) instead of one that
//! looks complete.

use std::cell::Cell;
use std::io::{self, Write};
use std::rc::Rc;

use weir_wire as wire;

/// Why a response head was not sent.
#[derive(Debug, thiserror::Error)]
pub enum HeadFailure {
    /// Code's head breaks the contract; nothing was written.
    #[error(transparent)]
    Refused(#[from] wire::response::ResponseHeadError),
    #[error("edge connection failed: {0}")]
    Io(#[from] io::Error),
}

/// Writes a response to the edge in HTTP/1.1 chunked framing.
pub struct ResponseWriter<W: Write> {
    out: W,
    head_sent: bool,
    /// Set when the response has gone out whole, for a writer that offers keep-alive.
    kept: Option<Rc<Cell<bool>>>,
    /// The worker's own refusal ([`wire::REFUSAL`]), which the edge may answer with an
    /// `ErrorDocument`; never set for a status code chose.
    refusal: bool,
}

impl<W: Write> ResponseWriter<W> {
    /// A response after which the worker closes the connection (`Connection: close`).
    pub fn new(out: W) -> Self {
        ResponseWriter { out, head_sent: false, kept: None, refusal: false }
    }

    /// A response that offers the edge another request on this connection
    /// (`Connection: keep-alive`). `whole` is set once the response has been sent complete:
    /// only then may the worker wait for the next request, since the edge reads a response to
    /// its end before it sends another.
    pub fn keeping_alive(out: W, whole: Rc<Cell<bool>>) -> Self {
        ResponseWriter { out, head_sent: false, kept: Some(whole), refusal: false }
    }

    /// Withdraws the offer of keep-alive before the head goes out (`Connection: close`): for a
    /// response after which the connection cannot carry another request, such as a refusal
    /// whose announced body the edge never sent.
    pub fn without_keep_alive(&mut self) {
        if !self.head_sent {
            self.kept = None;
        }
    }

    /// Whether the head has gone out (after which an error can only cut the body short).
    pub fn head_sent(&self) -> bool {
        self.head_sent
    }

    /// Sends the status line and headers, with the worker's own fields ([`wire::response`]).
    /// Framing and internal headers from code are dropped; a head that breaks HTTP's syntax, has
    /// an informational status or exceeds the edge's limits is refused before a byte is
    /// written, so the caller can still answer with an error.
    pub fn head(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), HeadFailure> {
        self.write_head(status, reason, headers, None)
    }

    /// Sends the head of a CGI local redirect to `target` (RFC 3875 6.2.2), which the edge
    /// answers as a GET of it: the one way a worker asks for one.
    pub fn local_redirect(&mut self, target: &str) -> Result<(), HeadFailure> {
        self.write_head(200, "OK", &[], Some(target))
    }

    fn write_head(
        &mut self,
        status: u16,
        reason: &str,
        headers: &[(String, Vec<u8>)],
        local_redirect: Option<&str>,
    ) -> Result<(), HeadFailure> {
        let own = wire::response::Own {
            pid: std::process::id(),
            keep_alive: self.kept.is_some(),
            local_redirect,
            refusal: self.refusal,
        };
        let fields = headers.iter().map(|(name, value)| (name.as_str(), value.as_slice()));
        let head = wire::response::write(status, reason, fields, &own)?;
        self.out.write_all(&head)?;
        self.head_sent = true;
        Ok(())
    }

    /// Sends one piece of body.
    pub fn body(&mut self, bytes: &[u8]) -> io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        write!(self.out, "{:x}\r\n", bytes.len())?;
        self.out.write_all(bytes)?;
        self.out.write_all(b"\r\n")
    }

    /// Ends the body; only now does the edge take the response as complete.
    pub fn finish(mut self) -> io::Result<()> {
        self.out.write_all(b"0\r\n\r\n")?;
        self.out.flush()?;
        if let Some(whole) = &self.kept {
            whole.set(true);
        }
        Ok(())
    }

    /// [`ResponseWriter::simple`] for a script that is not there (404) or may not run (403),
    /// marked so the edge may answer it with the site's `ErrorDocument`, as Apache does.
    pub fn refuse(mut self, status: u16, text: &str) -> io::Result<()> {
        self.refusal = true;
        self.simple(status, reason(status), text)
    }

    /// A whole small response, for errors the worker itself decides.
    pub fn simple(mut self, status: u16, reason: &str, text: &str) -> io::Result<()> {
        let headers = [("Content-Type".to_string(), b"text/plain; charset=utf-8".to_vec())];
        self.head(status, reason, &headers).map_err(|failure| match failure {
            HeadFailure::Io(error) => error,
            HeadFailure::Refused(refused) => io::Error::new(io::ErrorKind::InvalidInput, refused),
        })?;
        self.body(text.as_bytes())?;
        self.finish()
    }
}

/// The standard reason phrase for a status code.
pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Content Too Large",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_wire::response::ResponseHeadError;

    #[test]
    fn chunked_framing() {
        let mut out = Vec::new();
        let mut writer = ResponseWriter::new(&mut out);
        writer
            .head(201, "Created", &[("Content-Length".into(), b"3".to_vec()), ("X-A".into(), b"b".to_vec())])
            .unwrap();
        writer.body(b"abc").unwrap();
        writer.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        let pid_line = format!("x-weir-worker-pid: {}\r\n", std::process::id());
        assert_eq!(
            text,
            format!("HTTP/1.1 201 Created\r\nX-A: b\r\n{pid_line}Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        );
    }

    #[test]
    fn a_refused_head_writes_nothing_and_leaves_room_for_an_error() {
        let mut out = Vec::new();
        let mut writer = ResponseWriter::new(&mut out);
        let injected = [("X-A".to_string(), b"1\r\nX-Injected: 1".to_vec())];
        assert!(matches!(writer.head(200, "OK", &injected), Err(HeadFailure::Refused(_))));
        let early = writer.head(103, "Early Hints", &[]);
        assert!(matches!(early, Err(HeadFailure::Refused(ResponseHeadError::Informational(103)))));
        assert!(!writer.head_sent());
        writer.simple(500, "Internal Server Error", "x").unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 500 Internal Server Error\r\n"), "{text}");
        assert!(!text.contains("Injected") && !text.contains("103"), "{text}");
    }

    #[test]
    fn keep_alive_is_offered_and_counts_only_a_whole_response() {
        let whole = Rc::new(Cell::new(false));
        let mut out = Vec::new();
        let mut writer = ResponseWriter::keeping_alive(&mut out, whole.clone());
        writer.head(200, "OK", &[]).unwrap();
        writer.body(b"abc").unwrap();
        assert!(!whole.get(), "not before the last chunk");
        writer.finish().unwrap();
        assert!(whole.get());
        assert!(String::from_utf8(out).unwrap().contains("Connection: keep-alive\r\n\r\n"));

        let withdrawn = Rc::new(Cell::new(false));
        let mut out = Vec::new();
        let mut writer = ResponseWriter::keeping_alive(&mut out, withdrawn.clone());
        writer.without_keep_alive();
        writer.simple(404, "Not Found", "x").unwrap();
        assert!(!withdrawn.get(), "a withdrawn offer keeps nothing");
        assert!(String::from_utf8(out).unwrap().contains("Connection: close\r\n\r\n"));

        let cut = Rc::new(Cell::new(false));
        let mut writer = ResponseWriter::keeping_alive(Vec::new(), cut.clone());
        writer.head(200, "OK", &[]).unwrap();
        drop(writer);
        assert!(!cut.get(), "a response left unfinished keeps nothing");
    }
}
