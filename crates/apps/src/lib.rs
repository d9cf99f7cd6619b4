//! weir-apps: the code that runs inside prefork workers: CGI/1.1 (with `CGIInterpreter` for
//! php-cgi) and the Rust [`Handler`] API.
//!
//! Runs only in worker processes, which are single-threaded: nothing here starts a thread.
//! Spawns CGI scripts (fork+exec through `std::process::Command`) but never forks a worker.
//! Depends on weir-prefork's worker-side types and weir-conf's plain types; no TLS, no async
//! runtime.

pub mod body;
pub mod cgi;
mod cgi_group;
mod cgi_head;
mod cgi_output;
mod cgi_relay;
pub mod handler;
pub mod request;
pub mod response;

use std::cell::Cell;
use std::io::{Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::panic::AssertUnwindSafe;
use std::rc::Rc;
use std::time::Instant;

use weir_prefork::{AfterRequest, ConnectionHandler, Slot};
use weir_wire::limits::HeadLimits;
use weir_wire::response::ResponseHeadError;

pub use crate::body::RequestBody;
pub use crate::handler::{Handler, Response};
pub use crate::request::{Request, TlsFacts};

use crate::cgi::{CgiSettings, Refusal};
use crate::response::{reason, HeadFailure, ResponseWriter};

/// The worker's connection handler: one request from the edge, to a registered [`Handler`] or to
/// the CGI script it names.
pub struct HttpWorker {
    /// CGI settings drawn from the configuration: the main server's.
    pub cgi: CgiSettings,
    /// Each `<VirtualHost>`'s CGI settings, by its number less one ([`weir_wire::VHOST`]).
    pub vhosts: Vec<CgiSettings>,
    /// The limits the edge admits request heads by, from the configuration: a worker reads
    /// every head within them.
    pub head_limits: HeadLimits,
    /// Registered handlers and their paths, most specific first.
    pub handlers: Vec<(String, Box<dyn Handler>)>,
    /// `StatusQueryStrings`: whether the request line this worker shows in the scoreboard
    /// keeps its query string (server-status lists it, and every worker can read the board).
    pub status_query_strings: bool,
}

impl HttpWorker {
    pub fn new(
        cgi: CgiSettings,
        head_limits: HeadLimits,
        mut handlers: Vec<(String, Box<dyn Handler>)>,
    ) -> HttpWorker {
        handlers.sort_by_key(|(route, _)| std::cmp::Reverse(route.len()));
        HttpWorker { cgi, vhosts: Vec::new(), head_limits, handlers, status_query_strings: false }
    }

    /// Serves each `<VirtualHost>`'s scripts with its own settings: `sites` as
    /// [`CgiSettings::for_every_site`] gives them (the main server first).
    pub fn with_sites(mut self, mut sites: Vec<CgiSettings>) -> HttpWorker {
        if !sites.is_empty() {
            self.cgi = sites.remove(0);
            self.vhosts = sites;
        }
        self
    }

    /// Shows request lines with their query strings in the scoreboard (`StatusQueryStrings On`).
    pub fn showing_query_strings(mut self, show: bool) -> HttpWorker {
        self.status_query_strings = show;
        self
    }
}

impl ConnectionHandler for HttpWorker {
    fn worker_init(&mut self) {
        for (_, handler) in &mut self.handlers {
            handler.init();
        }
    }

    fn worker_exit(&mut self) {
        for (_, handler) in &mut self.handlers {
            handler.exit();
        }
    }

    fn serve(&mut self, stream: &UnixStream, slot: &Slot, keep_alive: bool) -> AfterRequest {
        let _ = stream.set_read_timeout(Some(self.cgi.timeout));
        // A write to an edge that stopped reading (stuck, or stopped by a signal) must end the
        // request, not block the worker until the pool master kills it as hung.
        let _ = stream.set_write_timeout(Some(self.cgi.timeout));
        let (mut request, mut body) = match Request::read_head(stream, &self.head_limits) {
            Ok(read) => read,
            Err(error) => {
                tracing::debug!(%error, "worker dropped a request it could not read");
                return AfterRequest::Close;
            }
        };
        let target = match self.status_query_strings {
            true => request.target.as_str(),
            false => request.target.split_once('?').map_or(request.target.as_str(), |(path, _)| path),
        };
        slot.begin_request(&format!("{} {} {}", request.method, target, request.protocol));
        let keep_alive =
            keep_alive && !request.header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        let counted = CountingWriter::new(stream, Instant::now() + self.cgi.timeout, self.cgi.timeout);
        let sent = counted.counter();
        // 32 KiB: below glibc's 64 KiB threshold at which a free() consolidates the whole heap,
        // which a 64 KiB buffer made happen on every request.
        let buffered = std::io::BufWriter::with_capacity(32 * 1024, counted);
        let whole = Rc::new(Cell::new(false));
        let out = match keep_alive {
            true => ResponseWriter::keeping_alive(buffered, whole.clone()),
            false => ResponseWriter::new(buffered),
        };
        let after = self.dispatch(&mut request, &mut body, out);
        slot.end_request(sent.get());
        match after {
            // Another request follows on this connection only after a whole response to one
            // whose body was taken whole: left-over body bytes would be read as the next head.
            AfterRequest::KeepAlive if !whole.get() || !body.is_consumed() => AfterRequest::Close,
            after => after,
        }
    }
}

impl HttpWorker {
    /// Routes the request by its head, then takes its body as the route needs it: whole for a
    /// Handler, streamed for a script, not at all for a refusal.
    fn dispatch<S: Read + Write + AsFd, W: Write>(
        &mut self,
        request: &mut Request,
        body: &mut RequestBody<S>,
        mut out: ResponseWriter<W>,
    ) -> AfterRequest {
        // The edge sends the canonical target; normalising it again here gives the path the
        // edge routed by, and refuses anything else that reaches the pool socket.
        let path = match weir_wire::target::Target::parse(&request.target) {
            Ok(target) => target.path().to_string(),
            Err(error) => {
                body.settle_for(&mut out, Instant::now() + self.cgi.timeout);
                let status = error.status();
                let _ = out.simple(status, reason(status), &format!("{}\n", reason(status)));
                return AfterRequest::KeepAlive;
            }
        };
        if let Some((_, handler)) =
            self.handlers.iter_mut().find(|(route, _)| handler::route_matches(route, &path))
        {
            request.body = match body.read_all() {
                Ok(bytes) => bytes,
                Err(error) => {
                    tracing::debug!(%error, "the request body did not arrive whole");
                    return AfterRequest::Close;
                }
            };
            return run_handler(handler.as_mut(), request, out);
        }
        // The edge names the site that routed the request; a number no site has is refused
        // rather than served with another site's scripts.
        let cgi = match request.vhost {
            Some(0) => Some(&self.cgi),
            Some(number) => self.vhosts.get(number - 1),
            None => None,
        };
        let Some(cgi) = cgi else {
            tracing::error!(target = %request.target, "a request named a site this worker does not know");
            body.settle_for(&mut out, Instant::now() + self.cgi.timeout);
            let _ = out.simple(500, reason(500), "Internal Server Error\n");
            return AfterRequest::Close;
        };
        // The request of a `<VirtualHost>` with an ErrorLog of its own runs in its `site` span:
        // the error-log lines about it (its script's stderr above all) go to that file.
        let _site = request
            .vhost
            .filter(|_| cgi.own_error_log)
            .map(|site| tracing::error_span!("site", site).entered());
        let refusal = match cgi.target(&path) {
            Some(Ok(target)) => {
                return cgi::serve(cgi, &target, request, body, out);
            }
            Some(Err(Refusal::Forbidden)) => 403,
            Some(Err(Refusal::NotFound)) | None => 404,
        };
        body.settle_for(&mut out, Instant::now() + self.cgi.timeout);
        let text = if refusal == 403 { "Forbidden\n" } else { "Not Found\n" };
        let _ = out.refuse(refusal, text);
        AfterRequest::KeepAlive
    }
}

/// The worker's writes to the edge: counted for the scoreboard, and all done by the request's
/// deadline (Timeout after its head was read). The socket's send timeout bounds each blocked
/// write; it is lowered to what is left of the request's time as that runs out, so a response
/// the edge stopped taking ends the request by its deadline, before the pool master's own
/// Timeout (plus a grace second) would kill the worker as hung.
struct CountingWriter<'a> {
    inner: &'a UnixStream,
    count: std::rc::Rc<std::cell::Cell<u64>>,
    deadline: Instant,
    /// The socket's send timeout now.
    send_timeout: std::time::Duration,
}

/// Slack before the send timeout is lowered again: a setsockopt per write only near the end.
const SEND_TIMEOUT_STEP: std::time::Duration = std::time::Duration::from_millis(50);

impl<'a> CountingWriter<'a> {
    fn new(inner: &'a UnixStream, deadline: Instant, send_timeout: std::time::Duration) -> Self {
        CountingWriter { inner, count: std::rc::Rc::default(), deadline, send_timeout }
    }

    fn counter(&self) -> std::rc::Rc<std::cell::Cell<u64>> {
        self.count.clone()
    }
}

impl std::io::Write for CountingWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let timed_out = || {
            std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the edge did not take the response within Timeout",
            )
        };
        let left = self.deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(timed_out());
        }
        if left + SEND_TIMEOUT_STEP < self.send_timeout {
            self.inner.set_write_timeout(Some(left))?;
            self.send_timeout = left;
        }
        let n = match self.inner.write(bytes) {
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => return Err(timed_out()),
            other => other?,
        };
        self.count.set(self.count.get() + n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Calls a handler; a panic answers 500 and retires the worker, whose state can no longer be
/// trusted, so only this request is lost. A response the contract refuses is never written:
/// a bad header answers 500, as Apache's check of response headers does, and an informational
/// status 502, since no final response came.
fn run_handler<W: std::io::Write>(
    handler: &mut dyn Handler,
    request: &Request,
    mut out: ResponseWriter<W>,
) -> AfterRequest {
    match std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(request))) {
        Ok(response) => {
            for (name, _) in response.headers.iter().filter(|(name, _)| weir_wire::is_internal(name)) {
                tracing::warn!(target = %request.target, header = %name, "a handler set weir's internal header {name}; dropped");
            }
            let sent = match out.head(response.status, reason(response.status), &response.headers) {
                Err(HeadFailure::Refused(refused)) => {
                    let status = refused_handler_response(&refused, &request.target);
                    out.simple(status, reason(status), &format!("{}\n", reason(status)))
                }
                Err(HeadFailure::Io(error)) => Err(error),
                Ok(()) => out.body(&response.body).and_then(|()| out.finish()),
            };
            if let Err(error) = sent {
                tracing::debug!(%error, "the edge went away before the response was sent");
            }
            AfterRequest::KeepAlive
        }
        Err(_) => {
            tracing::error!(target = %request.target, "handler panicked; retiring this worker");
            let _ = out.simple(500, reason(500), "Internal Server Error\n");
            AfterRequest::Retire
        }
    }
}

/// Logs why a handler's response head was refused, in Apache's words where Apache has them
/// (values escaped: they may hold the very line ends refused), and returns the status to answer.
fn refused_handler_response(refused: &ResponseHeadError, target: &str) -> u16 {
    match refused {
        ResponseHeadError::BadName(name) => {
            tracing::error!(%target, "AH02429: Response header name {name:?} contains invalid characters, aborting request");
        }
        ResponseHeadError::BadValue { name, value } => {
            tracing::error!(%target, "AH02430: Response header {name:?} value of {value:?} contains invalid characters, aborting request");
        }
        ResponseHeadError::Informational(status) => {
            tracing::error!(%target, "a handler answered with the informational status {status}; only the server sends one");
            return 502;
        }
        other => tracing::error!(%target, "a handler's response head was refused: {other}"),
    }
    500
}
