//! weir-apps: the handlers that run inside prefork workers: CGI/1.1 under `ScriptAlias`.
//!
//! Runs only in worker processes, which are single-threaded: nothing here starts a thread.
//! Spawns CGI scripts (fork+exec through `std::process::Command`) but never forks a worker.
//! Depends on weir-prefork's worker-side types only; no TLS, no async runtime.

pub mod cgi;
mod cgi_head;
pub mod request;
pub mod response;

use std::os::unix::net::UnixStream;

use weir_prefork::ConnectionHandler;

use crate::cgi::{CgiSettings, Refusal};
use crate::request::Request;
use crate::response::{reason, ResponseWriter};

/// The worker's handler: one request from the edge, dispatched to the CGI script it names.
pub struct HttpWorker {
    /// CGI settings drawn from the configuration.
    pub cgi: CgiSettings,
}

impl ConnectionHandler for HttpWorker {
    fn serve(&mut self, stream: UnixStream) {
        let _ = stream.set_read_timeout(Some(self.cgi.timeout));
        let mut reader = &stream;
        let request = match Request::read_from(&mut reader) {
            Ok(request) => request,
            Err(error) => {
                tracing::debug!(%error, "worker dropped a request it could not read");
                return;
            }
        };
        let out = ResponseWriter::new(std::io::BufWriter::with_capacity(64 * 1024, &stream));
        match self.cgi.target(request.path()) {
            Some(Ok(target)) => cgi::serve(&self.cgi, &target, &request, out),
            Some(Err(Refusal::Forbidden)) => {
                let _ = out.simple(403, reason(403), "Forbidden\n");
            }
            Some(Err(Refusal::NotFound)) | None => {
                let _ = out.simple(404, reason(404), "Not Found\n");
            }
        }
    }
}
