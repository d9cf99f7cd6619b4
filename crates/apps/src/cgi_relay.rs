//! A running CGI script's three pipes, served at once by this single-threaded worker: the
//! request body from the edge's socket into the script's stdin, its stdout to the edge, its
//! stderr to the error log. One poll loop under one Timeout, each way through one bounded buffer,
//! so neither a large body nor a large response grows the worker, and a script that writes
//! before it reads, reads only part of its body, or never reads it cannot stall the worker.

use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd};
use std::process::{Child, ChildStderr, ChildStdin, ChildStdout};
use std::time::{Duration, Instant};

use nix::poll::{poll, PollFd, PollFlags, PollTimeout};

use crate::body::RequestBody;
use crate::cgi_group::ScriptGroup;
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

/// What the worker may do with its connection to the edge after the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Connection {
    /// Another request may follow, if the response offered keep-alive.
    Reusable,
    /// The connection must close: the edge went away, the response was cut, or a script
    /// outlived its response and the worker is still waiting for it.
    Close,
}

/// Feeds the body to the script, relays its output and logs its stderr, within the timeout.
/// Errors are answered here; none escapes. The body is taken whole before the response is
/// finished (the part the script did not read is discarded), so a response the edge sees
/// complete leaves the connection ready for another request.
///
/// The response ends when the script's stdout closes, whether or not the script has exited;
/// the worker then waits for the script (within the same timeout) with the connection closed
/// to further requests. The script's group is killed whole when the script exits, at the
/// timeout, and when the edge goes away (see [`crate::cgi_group`]).
pub(crate) fn relay<S: Read + AsFd, W: Write>(
    script: &Script<'_>,
    child: Child,
    body: &mut RequestBody<S>,
    out: ResponseWriter<W>,
) -> Connection {
    let mut group = ScriptGroup::new(child);
    let mut relay = Relay {
        name: script.name,
        nph: script.nph,
        deadline: Instant::now() + script.timeout,
        out: Some(out),
        state: Stdout::Head(Vec::new()),
        stderr_line: Vec::new(),
        after: Connection::Reusable,
    };
    let child = group.child_mut();
    let (Some(stdout), Some(stderr)) = (child.stdout.take(), child.stderr.take()) else {
        group.end();
        relay.answer(body, 500, "The script could not be started.\n");
        return Connection::Reusable;
    };
    let feed = match Feed::new(child.stdin.take()) {
        Ok(feed) => feed,
        Err(error) => {
            tracing::error!(script = %relay.name, %error, "AH01241: couldn't set up the script's stdin");
            group.end();
            relay.answer(body, 500, "The script could not be started.\n");
            return Connection::Reusable;
        }
    };
    let connection = relay.run(&mut group, body, feed, stdout, stderr);
    group.end();
    connection
}

/// One script's relay: where its output stands and the response it becomes.
struct Relay<'a, W: Write> {
    /// The script's file name, for the error log.
    name: &'a str,
    nph: bool,
    /// Timeout from the start: then the group is killed.
    deadline: Instant,
    /// The response, until it is finished (or answered with an error).
    out: Option<ResponseWriter<W>>,
    state: Stdout,
    /// A stderr line not yet ended.
    stderr_line: Vec<u8>,
    /// What becomes of the connection when the relay ends normally.
    after: Connection,
}

impl<W: Write> Relay<'_, W> {
    fn run<S: Read + AsFd>(
        &mut self,
        group: &mut ScriptGroup,
        body: &mut RequestBody<S>,
        mut feed: Feed,
        mut stdout: ChildStdout,
        mut stderr: ChildStderr,
    ) -> Connection {
        let (mut out_open, mut err_open) = (true, true);
        let mut buffer = vec![0u8; PIECE];
        loop {
            feed.settle(body);
            if group.has_exited() {
                // Whatever the script left running goes with it; its pipes then close.
                group.kill();
            }
            if !out_open && self.out.is_some() && (body.is_consumed() || !feed.is_open()) {
                let lingering = !exits_soon(group);
                if let Some(connection) = self.end_of_output(body, lingering) {
                    return connection;
                }
            }
            if !(out_open || err_open || feed.is_open()) && group.has_exited() {
                break;
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return self.time_out(group);
            }
            // Body bytes that came with the head are there without waiting for the socket.
            let at_hand = feed.wants_body(body) && body.has_buffered();
            let mut sources = Vec::with_capacity(6);
            let mut fds = Vec::with_capacity(6);
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
            } else if self.out.is_some() && body.is_consumed() {
                // The whole body is taken: the edge sends nothing more before the response is
                // whole, so the socket turns readable only if the edge hung up.
                sources.push(Source::EdgeHangUp);
                fds.push(PollFd::new(body.socket(), PollFlags::from_bits_retain(libc::POLLRDHUP)));
            }
            // Without a pidfd, the script's exit is looked for at least every tenth of a second.
            let exited = group.has_exited();
            let most = if group.exit_fd().is_some() || exited { 60_000 } else { 100 };
            if let Some(fd) = group.exit_fd() {
                sources.push(Source::Exit);
                fds.push(PollFd::new(fd, PollFlags::POLLIN));
            }
            let timeout = match at_hand {
                true => PollTimeout::ZERO,
                false => {
                    PollTimeout::try_from(left.as_millis().min(most) as u32 + 1).unwrap_or(PollTimeout::MAX)
                }
            };
            match poll(&mut fds, timeout) {
                Ok(0) if !at_hand => continue,
                Err(nix::Error::EINTR) => continue,
                Err(_) => return Connection::Close,
                Ok(_) => {}
            }
            let ready: Vec<Source> = sources
                .iter()
                .zip(&fds)
                .filter(|(_, fd)| fd.any().unwrap_or(true))
                .map(|(s, _)| *s)
                .collect();
            drop(fds);
            if ready.contains(&Source::EdgeHangUp) {
                tracing::debug!(script = %self.name, "the edge went away before the response was whole");
                return Connection::Close;
            }
            if at_hand || ready.contains(&Source::Edge) {
                if let Err(error) = feed.fill(body) {
                    // The edge is gone or broke the framing: no one waits for an answer, and the
                    // script must not act on a body cut short.
                    tracing::debug!(script = %self.name, %error, "the request body did not arrive whole");
                    return Connection::Close;
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
                        if let Some(connection) = self.take_output(&buffer[..n], body) {
                            return connection;
                        }
                    }
                }
            }
            if ready.contains(&Source::Stderr) {
                match stderr.read(&mut buffer) {
                    Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => log_stderr(&buffer[..n], &mut self.stderr_line, self.name),
                }
            }
        }
        if !self.stderr_line.is_empty() {
            log_stderr(b"\n", &mut self.stderr_line, self.name);
        }
        self.after
    }

    /// A piece of stdout, into the response; `Some` when the relay must stop (output that
    /// cannot become a response, or an edge that stopped taking it).
    fn take_output<S: Read + AsFd>(&mut self, bytes: &[u8], body: &mut RequestBody<S>) -> Option<Connection> {
        let Some(out) = self.out.as_mut() else {
            // The response is finished or answered: later output has nowhere to go.
            return None;
        };
        let bad = self.state.take(bytes, self.nph, out, self.name).err()?;
        if out.head_sent() {
            self.out = None;
            return Some(Connection::Close);
        }
        self.answer(body, bad.status(), bad.text());
        Some(Connection::Reusable)
    }

    /// Stdout has closed and the body is taken: the response ends here, whether or not the
    /// script still runs (`lingering`). `Some` when the relay must stop.
    fn end_of_output<S: Read + AsFd>(
        &mut self,
        body: &mut RequestBody<S>,
        lingering: bool,
    ) -> Option<Connection> {
        if matches!(self.state, Stdout::Head(_)) {
            tracing::error!(script = %self.name, "AH01215: End of script output before headers: {}", self.name);
            self.answer(body, 500, "The script sent no response.\n");
            return Some(Connection::Reusable);
        }
        // What the script left of its body is dropped before the response ends, so the edge
        // never sees a complete response on a connection that still carries part of a body.
        // Should that fail (the edge gone, or out of time), the response is left unfinished:
        // the edge's own Timeout has answered the client by then.
        if !body.is_consumed() && !body.discard_rest(self.deadline) {
            self.out = None;
            return Some(Connection::Close);
        }
        if lingering {
            // The worker stays with the script until it exits or times out, so the edge must
            // not send another request here meanwhile, though the head offered keep-alive. Shut
            // for reading before the response is whole, the socket refuses the edge's next
            // write (EPIPE), which the edge takes as a request left unread and sends elsewhere;
            // shut after, the edge could write in between and wait until the time limit.
            // SAFETY: shutdown on a descriptor the body borrows; it stays open.
            unsafe { libc::shutdown(body.socket().as_raw_fd(), libc::SHUT_RD) };
            self.after = Connection::Close;
        }
        let finished = self.out.take().map(ResponseWriter::finish);
        if !matches!(finished, Some(Ok(()))) {
            return Some(Connection::Close);
        }
        None
    }

    /// An error answer, when nothing of the response has gone out.
    fn answer<S: Read + AsFd>(&mut self, body: &mut RequestBody<S>, status: u16, text: &str) {
        if let Some(mut out) = self.out.take() {
            body.settle_for(&mut out, self.deadline);
            let _ = out.simple(status, reason(status), text);
        }
    }

    /// Timeout: the group is killed; a 504 when nothing of the response went out yet.
    fn time_out(&mut self, group: &mut ScriptGroup) -> Connection {
        let name = self.name;
        if self.out.is_some() || !group.has_exited() {
            tracing::error!(script = %name, "AH01220: Timeout waiting for output from CGI script {name}");
        }
        group.kill();
        match self.out.take() {
            Some(mut out) if !out.head_sent() => {
                out.without_keep_alive();
                let _ = out.simple(504, reason(504), "The script did not answer in time.\n");
                Connection::Close
            }
            Some(_) => Connection::Close,
            // The response went out whole before: the connection is fine, but the worker is
            // only now free; the edge was told nothing more follows (see `relay`).
            None => Connection::Close,
        }
    }
}

/// How long a script whose stdout has closed is given to exit before the worker counts it as
/// lingering: most close stdout as they exit (php-cgi among them), and a worker that waits for
/// one keeps its connection to the edge from carrying another request.
const EXIT_GRACE: Duration = Duration::from_millis(100);

/// Whether the script exits within [`EXIT_GRACE`].
fn exits_soon(group: &mut ScriptGroup) -> bool {
    let until = Instant::now() + EXIT_GRACE;
    while !group.has_exited() {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return false;
        }
        let millis = PollTimeout::try_from(left.as_millis() as u32 + 1).unwrap_or(PollTimeout::MAX);
        match group.exit_fd() {
            Some(fd) => {
                let _ = poll(&mut [PollFd::new(fd, PollFlags::POLLIN)], millis);
            }
            None => std::thread::sleep(left.min(Duration::from_millis(10))),
        }
    }
    true
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
    /// The edge's socket, hung up while the response is still being made.
    EdgeHangUp,
    /// The script has exited.
    Exit,
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
        edge_sending_keeping(len).0
    }

    /// [`edge_sending`], and a copy of the edge's end: open while it lives, as the real edge's
    /// is while it waits for the response (a closed one means the edge went away).
    fn edge_sending_keeping(len: u64) -> ((Child, UnixStream), UnixStream) {
        let (edge, worker) = UnixStream::pair().unwrap();
        let kept = edge.try_clone().unwrap();
        let sender = Command::new("head")
            .args(["-c", &len.to_string(), "/dev/zero"])
            .stdout(Stdio::from(OwnedFd::from(edge)))
            .spawn()
            .unwrap();
        ((sender, worker), kept)
    }

    /// Relays `text`'s script with a body of `len` bytes; the response as written to the edge,
    /// and whether the body was taken whole.
    fn relay_with_body(text: &str, len: u64) -> (String, bool) {
        let ((mut sender, worker), waiting) = edge_sending_keeping(len);
        let mut body = RequestBody::new(&worker, Vec::new(), len, false);
        let mut sent = Vec::new();
        let settings = Script { name: "test", nph: false, timeout: Duration::from_secs(30) };
        relay(&settings, script(text), &mut body, ResponseWriter::new(&mut sent));
        let _ = sender.kill();
        let _ = sender.wait();
        drop(waiting);
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
