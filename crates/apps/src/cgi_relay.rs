//! A running CGI script's three pipes, served at once by this single-threaded worker: the
//! request body from the edge's socket into the script's stdin, its stdout to the edge, its
//! stderr to the error log. One poll loop under one Timeout, each way through one bounded buffer,
//! so neither a large body nor a large response grows the worker, and a script that writes
//! before it reads, reads only part of its body, or never reads it cannot stall the worker.

use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use std::process::{Child, ChildStdin};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::body::RequestBody;
use crate::cgi_output::{log_stderr, Stdout};
use crate::response::{reason, ResponseWriter};

/// Bytes copied at a time, each way: enough for few system calls, and below glibc's 64 KiB, at
/// which every free() consolidates the heap and a buffer would leave lasting heap behind.
const PIECE: usize = 16 * 1024;

/// What the relay needs to know of the script.
pub(crate) struct Script<'a> {
    /// Its file name, for the error log.
    pub name: &'a str,
    /// An `nph-` script, whose output starts with its own status line.
    pub nph: bool,
    /// Timeout: the script is killed with its process group after this long.
    pub timeout: Duration,
}

/// Feeds the body to the script, relays its output and logs its stderr, within the timeout.
/// Errors are answered here; none escapes. The body is taken whole before the response is
/// finished (the part the script did not read is discarded), so a response the edge sees
/// complete leaves the connection ready for another request.
pub(crate) fn relay<S: Read + AsFd, W: Write>(
    script: &Script<'_>,
    mut child: Child,
    body: &mut RequestBody<S>,
    mut out: ResponseWriter<W>,
) {
    let name = script.name;
    let deadline = Instant::now() + script.timeout;
    let (Some(mut stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        kill_group(&mut child);
        body.settle_for(&mut out, deadline);
        let _ = out.simple(500, reason(500), "The script could not be started.\n");
        return;
    };
    let mut feed = match Feed::new(child.stdin.take()) {
        Ok(feed) => feed,
        Err(error) => {
            tracing::error!(script = %name, %error, "AH01241: couldn't set up the script's stdin");
            kill_group(&mut child);
            body.settle_for(&mut out, deadline);
            let _ = out.simple(500, reason(500), "The script could not be started.\n");
            return;
        }
    };
    let mut state = Stdout::Head(Vec::new());
    let mut stderr_line = Vec::new();
    let (mut out_open, mut err_open) = (true, true);
    let mut buffer = vec![0u8; PIECE];
    let mut failed = None;
    loop {
        feed.settle(body);
        if !(out_open || err_open || feed.is_open()) {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            tracing::error!(script = %name, "AH01220: Timeout waiting for output from CGI script {name}");
            kill_group(&mut child);
            if !out.head_sent() {
                out.without_keep_alive();
                let _ = out.simple(504, reason(504), "The script did not answer in time.\n");
            }
            return;
        }
        // Body bytes that came with the head are there without waiting for the socket.
        let at_hand = feed.wants_body(body) && body.has_buffered();
        let mut sources = Vec::with_capacity(4);
        let mut fds = Vec::with_capacity(4);
        if out_open {
            sources.push(Source::Stdout);
            fds.push(PollFd::new(stdout.as_fd(), PollFlags::POLLIN));
        }
        if err_open {
            sources.push(Source::Stderr);
            fds.push(PollFd::new(stderr.as_fd(), PollFlags::POLLIN));
        }
        if let Some(pipe) = feed.waiting_pipe() {
            sources.push(Source::Stdin);
            fds.push(PollFd::new(pipe.as_fd(), PollFlags::POLLOUT));
        }
        if feed.wants_body(body) && !at_hand {
            sources.push(Source::Edge);
            fds.push(PollFd::new(body.socket(), PollFlags::POLLIN));
        }
        let timeout = match at_hand {
            true => PollTimeout::ZERO,
            false => {
                PollTimeout::try_from(left.as_millis().min(60_000) as u32 + 1).unwrap_or(PollTimeout::MAX)
            }
        };
        match poll(&mut fds, timeout) {
            Ok(0) if !at_hand => continue,
            Err(nix::Error::EINTR) => continue,
            Err(_) => break,
            Ok(_) => {}
        }
        let ready: Vec<Source> =
            sources.iter().zip(&fds).filter(|(_, fd)| fd.any().unwrap_or(true)).map(|(s, _)| *s).collect();
        drop(fds);
        if at_hand || ready.contains(&Source::Edge) {
            if let Err(error) = feed.fill(body) {
                // The edge is gone or broke the framing: no one waits for an answer, and the
                // script must not act on a body cut short.
                tracing::debug!(script = %name, %error, "the request body did not arrive whole");
                kill_group(&mut child);
                return;
            }
        }
        if ready.contains(&Source::Stdin) {
            feed.flush();
        }
        if ready.contains(&Source::Stdout) {
            match stdout.read(&mut buffer) {
                // A signal (the master's SIGUSR1) is not the end of the output.
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(0) | Err(_) => out_open = false,
                Ok(n) => {
                    if let Err(bad) = state.take(&buffer[..n], script.nph, &mut out, name) {
                        failed = Some(bad);
                        break;
                    }
                }
            }
        }
        if ready.contains(&Source::Stderr) {
            match stderr.read(&mut buffer) {
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Ok(0) | Err(_) => err_open = false,
                Ok(n) => log_stderr(&buffer[..n], &mut stderr_line, name),
            }
        }
    }
    // The script's end of file on stdin, if it was still being fed.
    drop(feed);
    if !stderr_line.is_empty() {
        log_stderr(b"\n", &mut stderr_line, name);
    }
    if let Some(bad) = failed {
        kill_group(&mut child);
        if !out.head_sent() {
            body.settle_for(&mut out, deadline);
            let _ = out.simple(bad.status(), reason(bad.status()), bad.text());
        }
        return;
    }
    let _ = child.wait();
    if matches!(state, Stdout::Head(_)) {
        tracing::error!(script = %name, "AH01215: End of script output before headers: {name}");
        body.settle_for(&mut out, deadline);
        let _ = out.simple(500, reason(500), "The script sent no response.\n");
        return;
    }
    // What the script left of its body is dropped before the response ends, so the edge never
    // sees a complete response on a connection that still carries part of a body. Should that
    // fail (the edge gone, or out of time), the response is left unfinished: the edge's own
    // Timeout has answered the client by then.
    if !body.is_consumed() && !body.discard_rest(deadline) {
        return;
    }
    let _ = out.finish();
}

/// The descriptors the loop waits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Stdout,
    Stderr,
    /// The script's stdin, writable.
    Stdin,
    /// The edge's socket, with body to read.
    Edge,
}

/// The script's stdin, fed from the request body through one bounded buffer.
struct Feed {
    /// Our end of the script's stdin (non-blocking). `None` once closed: the whole body written,
    /// or the script closed its stdin or exited; the rest of the body is then read and dropped.
    pipe: Option<ChildStdin>,
    /// One piece of body read from the edge: `buffer[from..to]` is not yet in the pipe.
    buffer: Vec<u8>,
    from: usize,
    to: usize,
}

impl Feed {
    fn new(pipe: Option<ChildStdin>) -> io::Result<Feed> {
        if let Some(pipe) = &pipe {
            // Only our end: the script's end of the pipe is a separate open file and blocks.
            let flags = nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_GETFL)?;
            let flags = nix::fcntl::OFlag::from_bits_truncate(flags) | nix::fcntl::OFlag::O_NONBLOCK;
            nix::fcntl::fcntl(pipe, nix::fcntl::FcntlArg::F_SETFL(flags))?;
        }
        let buffer = if pipe.is_some() { vec![0u8; PIECE] } else { Vec::new() };
        Ok(Feed { pipe, buffer, from: 0, to: 0 })
    }

    fn pending(&self) -> bool {
        self.from < self.to
    }

    fn is_open(&self) -> bool {
        self.pipe.is_some()
    }

    /// Whether to read the edge's socket now: the last piece is in the pipe (or there is no
    /// pipe any more, and the body is being dropped) and body is left.
    fn wants_body<S>(&self, body: &RequestBody<S>) -> bool {
        !self.pending() && !body.is_consumed()
    }

    /// The pipe, when a piece waits to go into it.
    fn waiting_pipe(&self) -> Option<&ChildStdin> {
        self.pipe.as_ref().filter(|_| self.pending())
    }

    /// Closes stdin once the whole body is in it: the script then reads its end of file.
    fn settle<S>(&mut self, body: &RequestBody<S>) {
        if self.pipe.is_some() && !self.pending() && body.is_consumed() {
            self.pipe = None;
        }
    }

    /// Reads the next piece of body; with the pipe closed, the piece is dropped.
    fn fill<S: Read>(&mut self, body: &mut RequestBody<S>) -> io::Result<()> {
        if self.buffer.is_empty() {
            self.buffer = vec![0u8; PIECE];
        }
        let n = body.read(&mut self.buffer)?;
        if self.pipe.is_some() {
            (self.from, self.to) = (0, n);
        }
        Ok(())
    }

    /// Writes what the pipe takes of the waiting piece, without blocking.
    fn flush(&mut self) {
        let Some(pipe) = &mut self.pipe else { return };
        match pipe.write(&self.buffer[self.from..self.to]) {
            Ok(n) => self.from += n,
            Err(error) if matches!(error.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted) => {}
            // EPIPE (SIGPIPE is ignored in weir's processes): the script closed its stdin or
            // exited without reading the rest, which is its right.
            Err(_) => {
                self.pipe = None;
                (self.from, self.to) = (0, 0);
            }
        }
    }
}

pub(crate) fn kill_group(child: &mut Child) {
    let pid = child.id() as i32;
    // The script leads its own process group (process_group(0) when spawned), so -pid names it.
    let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::OwnedFd;
    use std::os::unix::net::UnixStream;
    use std::os::unix::process::CommandExt;
    use std::process::{Command, Stdio};

    /// A shell script as the CGI child, spawned as `cgi::spawn` does.
    fn script(text: &str) -> Child {
        Command::new("/bin/sh")
            .args(["-c", text])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap()
    }

    /// An edge that sends `len` bytes of body (`head -c` from /dev/zero) on its end of a socket
    /// pair, and the worker's end.
    fn edge_sending(len: u64) -> (Child, UnixStream) {
        let (edge, worker) = UnixStream::pair().unwrap();
        let sender = Command::new("head")
            .args(["-c", &len.to_string(), "/dev/zero"])
            .stdout(Stdio::from(OwnedFd::from(edge)))
            .spawn()
            .unwrap();
        (sender, worker)
    }

    /// Relays `text`'s script with a body of `len` bytes; the response as written to the edge,
    /// and whether the body was taken whole.
    fn relay_with_body(text: &str, len: u64) -> (String, bool) {
        let (mut sender, worker) = edge_sending(len);
        let mut body = RequestBody::new(&worker, Vec::new(), len, false);
        let mut sent = Vec::new();
        let settings = Script { name: "test", nph: false, timeout: Duration::from_secs(30) };
        relay(&settings, script(text), &mut body, ResponseWriter::new(&mut sent));
        let _ = sender.kill();
        let _ = sender.wait();
        (String::from_utf8_lossy(&sent).into_owned(), body.is_consumed())
    }

    const HEAD: &str = "printf 'Content-Type: text/plain\\r\\n\\r\\n'";

    #[test]
    fn a_script_that_reads_nothing_answers_and_the_body_is_discarded() {
        let (response, consumed) = relay_with_body(&format!("{HEAD}; echo early"), 3_000_000);
        assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
        assert!(response.contains("\r\n6\r\nearly\n\r\n0\r\n\r\n"), "{response}");
        assert!(consumed, "the unread body was discarded before the response ended");
    }

    #[test]
    fn a_script_that_reads_half_gets_half_and_the_rest_is_discarded() {
        let (response, consumed) = relay_with_body(&format!("{HEAD}; head -c 1500000 | wc -c"), 3_000_000);
        assert!(response.contains("1500000\n"), "{response}");
        assert!(response.ends_with("0\r\n\r\n"), "a whole response: {response}");
        assert!(consumed);
    }

    #[test]
    fn a_script_that_writes_before_it_reads_gets_its_whole_body() {
        // 300 KB of output first: more than its stdout pipe holds, so the worker must relay
        // output while the body still waits to go in.
        let text = format!("{HEAD}; head -c 300000 /dev/zero | tr '\\0' Q; echo; wc -c");
        let (response, consumed) = relay_with_body(&text, 5_000_000);
        assert!(response.contains("5000000\n"), "{}", &response[response.len().saturating_sub(200)..]);
        assert_eq!(response.matches('Q').count(), 300_000);
        assert!(consumed);
    }

    #[test]
    fn the_body_goes_to_the_script_whole_and_its_stdin_then_ends() {
        let (response, consumed) = relay_with_body(&format!("{HEAD}; wc -c"), 20_000_000);
        assert!(response.contains("20000000\n"), "{response}");
        assert!(consumed);
    }

    #[test]
    fn a_body_cut_short_by_the_edge_kills_the_script_and_answers_nothing() {
        let (mut sender, worker) = edge_sending(1000);
        let mut body = RequestBody::new(&worker, Vec::new(), 1_000_000, false);
        let mut sent = Vec::new();
        let settings = Script { name: "test", nph: false, timeout: Duration::from_secs(30) };
        relay(&settings, script(&format!("{HEAD}; wc -c")), &mut body, ResponseWriter::new(&mut sent));
        let _ = sender.wait();
        assert!(!String::from_utf8_lossy(&sent).contains("1000"), "the script never saw an end of file");
        assert!(!body.is_consumed());
    }

    #[test]
    fn the_worker_takes_no_more_body_than_one_piece_beyond_what_the_pipe_holds() {
        let len = 10_000_000;
        let (mut sender, worker) = edge_sending(len);
        let mut body = RequestBody::new(&worker, Vec::new(), len, false);
        // A script that never reads its stdin.
        let mut child = script("sleep 30");
        let mut feed = Feed::new(child.stdin.take()).unwrap();
        let pipe_size =
            nix::fcntl::fcntl(feed.pipe.as_ref().unwrap(), nix::fcntl::FcntlArg::F_GETPIPE_SZ).unwrap();
        // Feed as the relay does, until the pipe stays full.
        loop {
            if feed.wants_body(&body) {
                feed.fill(&mut body).unwrap();
                continue;
            }
            let pipe = feed.waiting_pipe().unwrap();
            let mut fds = [PollFd::new(pipe.as_fd(), PollFlags::POLLOUT)];
            if poll(&mut fds, PollTimeout::from(200u16)).unwrap() == 0 {
                break;
            }
            feed.flush();
        }
        let taken = len - body.left();
        assert!(taken > 0);
        assert!(
            taken <= pipe_size as u64 + PIECE as u64,
            "took {taken} bytes of body for a pipe of {pipe_size} and a {PIECE}-byte piece"
        );
        assert_eq!(feed.buffer.len(), PIECE, "one bounded buffer");
        kill_group(&mut child);
        let _ = sender.kill();
        let _ = sender.wait();
    }
}
