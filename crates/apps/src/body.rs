//! The body of the request in hand, as far as the worker has not read it yet.
//!
//! The edge–worker contract ([`wire::INLINE_BODY`]): a body of at most `INLINE_BODY` bytes comes
//! with its head and is read whole with it, before the request is routed. A larger one is
//! announced with `Expect: 100-continue` and held back by the edge until the worker, having
//! routed the request to something that will run, writes `100 Continue` ([`RequestBody::accept`]);
//! a refused request never has its body sent. A large body that follows its head without
//! `Expect` is taken too, as it comes. Either way a large body is read from the socket in pieces
//! as the caller needs it (a CGI script's stdin), never held whole here.
//!
//! A connection whose body was not taken whole cannot carry another request: the caller discards
//! the rest ([`RequestBody::discard_rest`], local and fast once the edge is sending) or closes.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Instant;

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::response::ResponseWriter;

use weir_wire::response::CONTINUE;

#[cfg(doc)]
use weir_wire as wire;

/// The request body still to be read from the edge's connection.
#[derive(Debug)]
pub struct RequestBody<S> {
    /// The edge's connection, which the body arrives on (and the `100 Continue` goes out on).
    stream: S,
    /// Bytes of body that arrived with the head: the whole of an inline body, or the first
    /// bytes of one that follows its head without `Expect`.
    early: Vec<u8>,
    /// Of `early`, the bytes already taken.
    taken: usize,
    /// Bytes of body not yet read from the socket.
    on_socket: u64,
    /// The head's Content-Length.
    length: u64,
    /// The edge sent `Expect: 100-continue` and holds the body back until `100 Continue`.
    withheld: bool,
}

impl<S> RequestBody<S> {
    /// A body of `length` bytes, `early` of which came with the head; `withheld` when the head
    /// said `Expect: 100-continue` (then nothing has come yet).
    pub(crate) fn new(stream: S, early: Vec<u8>, length: u64, withheld: bool) -> RequestBody<S> {
        let on_socket = length.saturating_sub(early.len() as u64);
        RequestBody { stream, early, taken: 0, on_socket, length, withheld }
    }

    /// The head's Content-Length: the size of the whole body, read or not.
    pub fn length(&self) -> u64 {
        self.length
    }

    /// Bytes of body not yet taken (sent by the edge or still held back by it).
    pub fn left(&self) -> u64 {
        (self.early.len() - self.taken) as u64 + self.on_socket
    }

    /// Whether the whole body has been taken, so the connection may carry another request.
    pub fn is_consumed(&self) -> bool {
        self.left() == 0
    }

    /// Whether the edge still holds the body back, waiting for `100 Continue`. A response
    /// given now must close the connection: the edge will not send this body.
    pub fn is_withheld(&self) -> bool {
        self.withheld && self.left() > 0
    }

    /// Whether body bytes are at hand without reading the socket.
    pub fn has_buffered(&self) -> bool {
        self.taken < self.early.len()
    }
}

impl<S: Write> RequestBody<S> {
    /// Takes the request: writes `100 Continue` if the edge waits for it, so the body comes.
    /// Call it once the request is routed to something that will run, and only then.
    pub fn accept(&mut self) -> io::Result<()> {
        if !self.withheld {
            return Ok(());
        }
        self.withheld = false;
        if self.left() == 0 {
            return Ok(());
        }
        self.stream.write_all(CONTINUE)?;
        self.stream.flush()
    }
}

impl<S: Read + Write> RequestBody<S> {
    /// The whole body in memory, for a Handler: accepts the request, then reads Content-Length
    /// bytes (which the edge bounds by LimitRequestBody).
    pub fn read_all(&mut self) -> io::Result<Vec<u8>> {
        self.accept()?;
        let left = self.left();
        let mut body = Vec::new();
        body.try_reserve_exact(usize::try_from(left).unwrap_or(usize::MAX))
            .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "request body too large for memory"))?;
        self.read_to_end(&mut body)?;
        Ok(body)
    }
}

impl<S: Read + AsFd> RequestBody<S> {
    /// The socket the body arrives on, to wait for it with other descriptors.
    pub fn socket(&self) -> BorrowedFd<'_> {
        self.stream.as_fd()
    }

    /// Reads and drops what is left of a body the edge is sending, until `deadline`. Returns
    /// whether the whole body is now consumed; never for one the edge holds back (it will not
    /// come: the connection must close instead).
    pub fn discard_rest(&mut self, deadline: Instant) -> bool {
        if self.is_withheld() {
            return false;
        }
        self.taken = self.early.len();
        // 16 KiB: the same bounded piece as the rest of the worker's copies.
        let mut scratch = vec![0u8; 16 * 1024];
        while self.on_socket > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            let timeout =
                PollTimeout::try_from(left.as_millis().min(60_000) as u32 + 1).unwrap_or(PollTimeout::MAX);
            let mut fds = [PollFd::new(self.stream.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, timeout) {
                Ok(0) | Err(nix::Error::EINTR) => continue,
                Err(_) => return false,
                Ok(_) => {}
            }
            if self.read(&mut scratch).is_err() {
                return false;
            }
        }
        true
    }

    /// Before answering without taking the body (a refusal, a script that could not start):
    /// discards what the edge is sending, or, for a body it holds back or one that did not come
    /// in time, withdraws the offer of keep-alive. A refusal of an announced body thus never
    /// has the body sent, and the connection closes after it.
    pub(crate) fn settle_for<W: Write>(&mut self, out: &mut ResponseWriter<W>, deadline: Instant) {
        if !self.is_consumed() && !self.discard_rest(deadline) {
            out.without_keep_alive();
        }
    }
}

impl<S: Read> Read for RequestBody<S> {
    /// Body bytes: those that came with the head, then the socket's, never past Content-Length.
    /// `Ok(0)` only at the end of the body; a connection closed before it is an error.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.has_buffered() {
            let n = buf.len().min(self.early.len() - self.taken);
            buf[..n].copy_from_slice(&self.early[self.taken..self.taken + n]);
            self.taken += n;
            if self.taken == self.early.len() {
                // An inline body is up to 64 KiB: give it back as soon as it has been taken.
                self.early = Vec::new();
                self.taken = 0;
            }
            return Ok(n);
        }
        if self.on_socket == 0 {
            return Ok(0);
        }
        if self.withheld {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "request body read before 100 Continue"));
        }
        let want = buf.len().min(usize::try_from(self.on_socket).unwrap_or(usize::MAX));
        loop {
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the edge closed the connection inside the request body",
                    ))
                }
                Ok(n) => {
                    self.on_socket -= n as u64;
                    return Ok(n);
                }
                // The master's SIGUSR1 (retire after this request) interrupts reads; go on.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;
    use std::time::Duration;

    #[test]
    fn early_bytes_come_first_then_the_socket_and_never_past_the_length() {
        let (mut edge, worker) = UnixStream::pair().unwrap();
        edge.write_all(b"defgh-next request").unwrap();
        let mut body = RequestBody::new(&worker, b"abc".to_vec(), 8, false);
        assert!(body.has_buffered());
        let mut all = Vec::new();
        body.read_to_end(&mut all).unwrap();
        assert_eq!(all, b"abcdefgh");
        assert!(body.is_consumed());
        let mut rest = [0u8; 32];
        let n = (&worker).read(&mut rest).unwrap();
        assert_eq!(&rest[..n], b"-next request", "the next bytes are left on the socket");
    }

    #[test]
    fn a_withheld_body_is_asked_for_with_100_continue_once() {
        let (mut edge, worker) = UnixStream::pair().unwrap();
        let mut body = RequestBody::new(&worker, Vec::new(), 5, true);
        assert!(body.is_withheld());
        let mut buf = [0u8; 8];
        assert!(body.read(&mut buf).is_err(), "nothing may be read before 100 Continue");
        assert!(!body.discard_rest(Instant::now() + Duration::from_secs(5)), "a withheld body never comes");
        body.accept().unwrap();
        body.accept().unwrap();
        let mut sent = [0u8; 64];
        edge.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let n = edge.read(&mut sent).unwrap();
        assert_eq!(&sent[..n], CONTINUE, "one 100 Continue");
        edge.write_all(b"hello").unwrap();
        assert_eq!(body.read_all().unwrap(), b"hello");
    }

    #[test]
    fn a_body_that_is_not_withheld_gets_no_100_continue() {
        let (mut edge, worker) = UnixStream::pair().unwrap();
        let mut body = RequestBody::new(&worker, b"ab".to_vec(), 2, false);
        body.accept().unwrap();
        assert_eq!(body.read_all().unwrap(), b"ab");
        drop(worker);
        let mut sent = Vec::new();
        edge.read_to_end(&mut sent).unwrap();
        assert!(sent.is_empty(), "{sent:?}");
    }

    #[test]
    fn the_rest_of_a_body_is_discarded_up_to_its_end_only() {
        let (mut edge, worker) = UnixStream::pair().unwrap();
        edge.write_all(&[b'x'; 60_000][..]).unwrap();
        let mut body = RequestBody::new(&worker, vec![b'x'; 10], 50_000, false);
        let mut first = [0u8; 4];
        body.read_exact(&mut first).unwrap();
        assert!(body.discard_rest(Instant::now() + Duration::from_secs(5)));
        assert!(body.is_consumed());
        drop(edge);
        let mut rest = Vec::new();
        (&worker).read_to_end(&mut rest).unwrap();
        assert_eq!(rest.len(), 60_000 - (50_000 - 10), "bytes past the body stay on the socket");
    }

    #[test]
    fn a_body_cut_short_by_the_edge_is_an_error_not_an_end() {
        let (mut edge, worker) = UnixStream::pair().unwrap();
        edge.write_all(b"abc").unwrap();
        drop(edge);
        let mut body = RequestBody::new(&worker, Vec::new(), 10, false);
        let error = body.read_all().unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        assert!(!body.discard_rest(Instant::now() + Duration::from_secs(5)));
    }

    #[test]
    fn discarding_gives_up_at_the_deadline() {
        let (_edge, worker) = UnixStream::pair().unwrap();
        let mut body = RequestBody::new(&worker, Vec::new(), 10, false);
        let started = Instant::now();
        assert!(!body.discard_rest(Instant::now() + Duration::from_millis(50)));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
