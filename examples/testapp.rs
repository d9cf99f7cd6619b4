//! testapp: an application on weir used by weir's own end-to-end tests. It exercises the Handler
//! API (init and exit hooks, request facts) and misbehaves on request (panics, crashes) so the
//! tests can check that only the misbehaving request suffers. Never part of the weir binary.

use std::io::Write;
use std::process::ExitCode;

use weir::{Handler, Request, Response};

#[path = "intruder/probes.rs"]
mod probes;

/// Reports what a handler sees, and counts its own init calls.
struct Probe {
    inits: u32,
    /// Memory kept across requests by `/app/grow`, to make this worker large.
    hoard: Vec<Vec<u8>>,
}

/// The value of `name` in the query string, as a number.
fn query_number(request: &Request, name: &str) -> Option<u64> {
    request.query().split('&').find_map(|pair| pair.strip_prefix(name)?.strip_prefix('=')?.parse().ok())
}

impl Handler for Probe {
    fn init(&mut self) {
        self.inits += 1;
    }

    fn handle(&mut self, request: &Request) -> Response {
        record(request);
        match request.path() {
            "/app/panic" => panic!("asked to panic"),
            // SAFETY: abort is always safe to call; it is the point of this route.
            "/app/abort" => unsafe { libc::abort() },
            "/app/sleep" => {
                let ms = query_number(request, "ms").unwrap_or(1000);
                std::thread::sleep(std::time::Duration::from_millis(ms));
            }
            "/app/hang" => loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            "/app/alloc-forever" => {
                // Touch every page so the memory is really used, until the limit stops us.
                let mut all = Vec::new();
                loop {
                    all.push(vec![1u8; 16 << 20]);
                }
            }
            "/app/grow" => {
                let mb = query_number(request, "mb").unwrap_or(10) as usize;
                self.hoard.push(vec![1u8; mb << 20]);
            }
            "/app/intrude" => {
                // What compromised Handler code would try against the rest of weir.
                let targets = probes::Targets::from_query(request.query());
                let text = probes::run_all(&targets) + &probes::own_descriptors();
                return Response::text(200, text);
            }
            "/app/header" => {
                // One request header as the Handler sees it, for tests of what the edge forwards.
                let name = request.query().strip_prefix("name=").unwrap_or("");
                return Response::text(200, request.header(name).unwrap_or("-").to_string());
            }
            "/app/respond" => return respond(request.query()),
            "/app/open" => {
                let path = request.query().strip_prefix("path=").unwrap_or("");
                let verdict = match std::fs::File::open(path) {
                    Ok(_) => "opened".to_string(),
                    Err(error) => format!("refused: {error}"),
                };
                return Response::text(200, verdict);
            }
            _ => {}
        }
        let tls = request.tls.as_ref();
        let text = format!(
            "pid={}\ninits={}\nmethod={}\ntarget={}\nclient={}\ntls={}\ncipher={}\nrequest_id={}\nbody_len={}\n",
            std::process::id(),
            self.inits,
            request.method,
            request.target,
            request.client.map_or("-".to_string(), |c| c.ip().to_string()),
            tls.map_or("-", |t| t.protocol.as_str()),
            tls.map_or("-", |t| t.cipher.as_str()),
            request.request_id().unwrap_or("-"),
            request.body.len(),
        );
        Response::text(200, text).with_header("X-Powered-By", "testapp/1.0")
    }

    fn exit(&mut self) {
        // Leaves a trace the tests can find: one file per worker that exited cleanly.
        if let Some(dir) = std::env::var_os("TESTAPP_EXIT_DIR") {
            let path = std::path::Path::new(&dir).join(std::process::id().to_string());
            if let Ok(mut file) = std::fs::File::create(path) {
                let _ = writeln!(file, "inits={}", self.inits);
            }
        }
    }
}

/// The response a query asks for: `status=N` and any number of `name=…&value=…` pairs,
/// percent-decoded, so a test can make a Handler answer with what application code might get
/// wrong (a CR LF in a value, a bad name, an informational status).
fn respond(query: &str) -> Response {
    let mut response = Response::text(200, "responded\n");
    let mut name = None;
    for pair in query.split('&') {
        let Some((key, value)) = pair.split_once('=') else { continue };
        let value = percent_decode(value);
        match key {
            "status" => response.status = value.parse().unwrap_or(200),
            "name" => name = Some(value),
            "value" => {
                let name = name.take().unwrap_or_default();
                response.headers.push((name, value.into_bytes()));
            }
            _ => {}
        }
    }
    response
}

/// `%XX` escapes decoded, as bytes taken as UTF-8 (lossily): enough for the tests' queries.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = (bytes[i] == b'%')
            .then(|| bytes.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// With `TESTAPP_RECORD` set, every request that reaches a worker is appended to that file
/// (`METHOD TARGET BODY-LENGTH`), so tests can prove what never arrived.
fn record(request: &Request) {
    let Some(path) = std::env::var_os("TESTAPP_RECORD") else {
        return;
    };
    let line = format!("{} {} {}\n", request.method, request.target, request.body.len());
    if let Ok(mut file) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = file.write_all(line.as_bytes());
    }
}

fn main() -> ExitCode {
    weir::cli::main_with(|server| server.handler("/app", Probe { inits: 0, hoard: Vec::new() }))
}
