//! Writing a response back to the edge: a head, then a chunked body, so that a worker that dies
//! mid-response leaves a visibly unfinished message (the edge answers 502) instead of one that
//! looks complete.

use std::cell::Cell;
use std::io::{self, Write};
use std::rc::Rc;

/// Writes a response to the edge in HTTP/1.1 chunked framing.
pub struct ResponseWriter<W: Write> {
    out: W,
    head_sent: bool,
    /// Set when the response has gone out whole, for a writer that offers keep-alive.
    kept: Option<Rc<Cell<bool>>>,
}

impl<W: Write> ResponseWriter<W> {
    /// A response after which the worker closes the connection (`Connection: close`).
    pub fn new(out: W) -> Self {
        ResponseWriter { out, head_sent: false, kept: None }
    }

    /// A response that offers the edge another request on this connection
    /// (`Connection: keep-alive`). `whole` is set once the response has been sent complete:
    /// only then may the worker wait for the next request, since the edge reads a response to
    /// its end before it sends another.
    pub fn keeping_alive(out: W, whole: Rc<Cell<bool>>) -> Self {
        ResponseWriter { out, head_sent: false, kept: Some(whole) }
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

    /// Sends the status line and headers. Framing headers are weir's to set and are dropped.
    pub fn head(&mut self, status: u16, reason: &str, headers: &[(String, Vec<u8>)]) -> io::Result<()> {
        let mut head = Vec::with_capacity(256);
        write!(head, "HTTP/1.1 {status} {reason}\r\n")?;
        for (name, value) in headers {
            if is_framing(name) {
                continue;
            }
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value);
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(format!("{}: {}\r\n", weir_wire::WORKER_PID, std::process::id()).as_bytes());
        head.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        head.extend_from_slice(match self.kept {
            Some(_) => b"Connection: keep-alive\r\n\r\n",
            None => b"Connection: close\r\n\r\n",
        });
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

    /// A whole small response, for errors the worker itself decides.
    pub fn simple(mut self, status: u16, reason: &str, text: &str) -> io::Result<()> {
        let headers = [("Content-Type".to_string(), b"text/plain; charset=utf-8".to_vec())];
        self.head(status, reason, &headers)?;
        self.body(text.as_bytes())?;
        self.finish()
    }
}

fn is_framing(name: &str) -> bool {
    ["content-length", "transfer-encoding", "connection", "keep-alive"]
        .iter()
        .any(|framing| name.eq_ignore_ascii_case(framing))
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
