//! The per-request service: a request whose head and body have been read and checked is routed
//! to the static files or, through admission, to the pool; every answer then gets the response
//! policy (Server, Header rules, signature) and an access-log line.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use hyper::body::Body as _;
use weir_conf::edge::{HeaderAction, HeaderRule, ServerSignature};

use crate::admission::{Admission, Refused};
use crate::auth_basic::{BasicAuth, Challenge, Outcome};
use crate::body::{self, Body, EdgePage};
use crate::client_facts::ClientFacts;
use crate::client_limits::RequestRate;
use crate::hosts::{Hosts, SiteId};
use crate::logged_body::{LogLine, LoggedBody, Record};
use crate::pool_client::{PoolAnswer, PoolClient};
use crate::request_body::{BodyError, RequestBody};
use crate::router::Route;
use crate::source::Source;
use crate::spill::SpillSpace;
use crate::status::{self, StatusContext};
use weir_scoreboard::{Reject, Scoreboard};

/// Local redirects followed for one request before it is refused, as Apache's
/// LimitInternalRecursion.
const MAX_LOCAL_REDIRECTS: usize = 10;

/// Everything the edge needs to answer requests; shared by every connection.
pub struct Site {
    /// The main server and each `<VirtualHost>`: where a request goes (`<Location>`, static
    /// files, the pool) and its access log, picked per request by address and Host.
    pub hosts: Hosts,
    pub pool: PoolClient,
    /// At most MaxRequestWorkers requests in the pool; the rest queue, then 503.
    pub admission: Admission,
    /// `RateLimit`, per source (an IPv4 address or an IPv6 /64).
    pub rate: Option<RequestRate>,
    /// The `Server` header, per ServerTokens.
    pub server_header: HeaderValue,
    /// `Header` rules for responses.
    pub header_rules: Vec<HeaderRule>,
    pub signature: ServerSignature,
    /// `ServerAdmin`, for `ServerSignature EMail`'s link.
    pub server_admin: Option<String>,
    /// `TraceEnable On`: TRACE is echoed; off, it is refused with 405.
    pub trace_enable: bool,
    /// LimitRequestBody; 0 means no limit.
    pub limit_request_body: u64,
    /// Basic authentication: the password files and the limits on checking them.
    pub auth: BasicAuth,
    /// SpillDir and SpillLimit: where request bodies and slowly read responses wait.
    pub spill: Arc<SpillSpace>,
    /// Shared with the pool: server-status reads it, and the edge keeps its figures there.
    pub scoreboard: Scoreboard,
    /// The first line of `?auto`: ServerName, or "localhost".
    pub status_host: String,
    /// `SizingReserve`: memory kept back from workers in the sizing advice.
    pub sizing_reserve: u64,
    pub max_request_workers: usize,
}

impl Site {
    /// `RateLimit`: `Some(429)` when this client must slow down. Checked once the head is read,
    /// before the body costs anything.
    pub fn rate_limited(&self, facts: &ClientFacts) -> Option<Response<Body>> {
        let wait = self.rate.as_ref()?.check(facts.peer.ip()).err()?;
        let mut response = body::error_page(StatusCode::TOO_MANY_REQUESTS);
        let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
        Some(response)
    }

    /// Answers one request whose head has been read and checked. Never fails: every error
    /// becomes a status here. The request is routed from its head alone; `read_body` is called
    /// only when the request goes to the pool, so a body for a static file, server-status, a
    /// refusal or an error is never stored (the caller discards or refuses it).
    pub async fn handle<F, Fut>(&self, facts: &ClientFacts, parts: Parts, read_body: F) -> Response<Body>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<RequestBody, BodyError>>,
    {
        let started = SystemTime::now();
        let site = self.hosts.select(facts, &parts);
        if !self.hosts.site(site).own_error_log {
            return self.handle_for(site, started, facts, parts, read_body).await;
        }
        // The request of a `<VirtualHost>` with an ErrorLog of its own is served in its `site`
        // span: the error-log lines about it go to that file. Other requests open no span.
        let span = tracing::error_span!("site", site);
        tracing::Instrument::instrument(self.handle_for(site, started, facts, parts, read_body), span).await
    }

    async fn handle_for<F, Fut>(
        &self,
        site: usize,
        started: SystemTime,
        facts: &ClientFacts,
        mut parts: Parts,
        read_body: F,
    ) -> Response<Body>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<RequestBody, BodyError>>,
    {
        // Only another site than the main server is marked: without <VirtualHost>s a request
        // costs no extension map.
        if site != 0 {
            parts.extensions.insert(SiteId(site));
        }
        let misdirected = self.hosts.misdirected(facts, &parts, site);
        // Every request gets its id here (the client's own when it is a plain token), so the
        // access log and the worker see the same one.
        let id = crate::request_id::request_id(&parts.headers);
        if let Ok(value) = HeaderValue::from_str(&id) {
            parts.headers.insert("x-request-id", value);
        }
        let line = LogLine {
            request_line: request_line(&parts),
            referer: header_text(&parts, header::REFERER),
            user_agent: header_text(&parts, header::USER_AGENT),
            protocol: format!("{:?}", parts.version),
            request_id: Some(id),
            headers: self
                .hosts
                .site(site)
                .access_log
                .as_ref()
                .map_or_else(Vec::new, |log| log.request_values(&parts.headers)),
        };
        // RateLimit was checked where the head was read (h1 and h2 both), before the body.
        let mut unanswered =
            Unanswered { site: self, host: site, facts, time: started, line: &line, answered: false };
        let mut user = None;
        // Kept for an ErrorDocument only where the site has one. A 421 takes none: the Host
        // named a site this connection may not reach, so that site's documents are not for it.
        let request = (misdirected.is_none() && self.has_error_documents(site)).then(|| parts.clone());
        let mut response = match misdirected {
            Some(status) => body::error_page(status),
            None => self.route(facts, parts, read_body, &mut user).await,
        };
        if let Some(request) = &request {
            response = self.with_error_document(facts, site, request, response).await;
        }
        unanswered.answered = true;
        if let Some(user) = user {
            response.extensions_mut().insert(RemoteUser(user));
        }
        let response = self.apply_policy(response);
        self.log(facts, site, started, &line, response)
    }

    /// Writes the access-log line for an answer the edge made before any routing (a malformed
    /// request, a timeout), then applies the response policy to it.
    pub fn refuse(
        &self,
        facts: &ClientFacts,
        request_line: &str,
        version: http::Version,
        response: Response<Body>,
    ) -> Response<Body> {
        let why = match response.status() {
            StatusCode::REQUEST_TIMEOUT => Reject::Timeout,
            StatusCode::PAYLOAD_TOO_LARGE => Reject::TooLarge,
            StatusCode::TOO_MANY_REQUESTS => Reject::RateLimited,
            StatusCode::SERVICE_UNAVAILABLE => Reject::QueueFull,
            _ => Reject::Malformed,
        };
        self.scoreboard.counters().reject(why);
        let site = self.hosts.default_for(facts);
        let response = self.with_error_document_now(facts, site, response);
        let response = self.apply_policy(response);
        let line = LogLine {
            request_line: request_line.to_string(),
            referer: None,
            user_agent: None,
            protocol: format!("{version:?}"),
            request_id: None,
            headers: Vec::new(),
        };
        self.log(facts, site, SystemTime::now(), &line, response)
    }

    /// Where a request goes, decided from its head ([`Router`]): an answer the edge makes
    /// itself (server-status, TRACE, a static file, a refusal), or the pool with the canonical
    /// target of the normalised path.
    /// `user` is the one the request proved to be, once it has.
    pub fn decide(&self, facts: &ClientFacts, parts: &Parts, user: Option<&str>) -> Decision {
        let raw_target = parts.uri.path_and_query().map_or_else(|| parts.uri.path(), |pq| pq.as_str());
        // Marked by `handle` when it is not the main server; a local redirect keeps the mark.
        let site = match parts.extensions.get::<SiteId>() {
            Some(site) => site.0,
            None => self.hosts.select(facts, parts),
        };
        let router = &self.hosts.site(site).router;
        // The address is the connection's (or a trusted PROXY header's): no request header can
        // make a remote client look local.
        let who = weir_conf::location::Who { peer: facts.peer.ip(), local: facts.local.ip(), user };
        let route = router.route_as(&parts.method, raw_target, &who);
        let answer = match route {
            Route::Authenticate(challenge) => return Decision::Authenticate(challenge),
            Route::Unauthorized(realm) => crate::auth_basic::challenge_response(&realm),
            Route::Misconfigured(why) => {
                tracing::error!(uri = %parts.uri, "{why}: {}", parts.uri.path());
                body::error_page(StatusCode::INTERNAL_SERVER_ERROR)
            }
            Route::Refuse(status) => body::error_page(status),
            Route::MethodNotAllowed => {
                let mut response = body::error_page(StatusCode::METHOD_NOT_ALLOWED);
                response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                response
            }
            Route::Status => {
                let context = StatusContext {
                    scoreboard: &self.scoreboard,
                    host: &self.status_host,
                    sizing_reserve: self.sizing_reserve,
                    max_request_workers: self.max_request_workers,
                };
                status::page(&context, parts.uri.query())
            }
            Route::Trace if self.trace_enable => trace_echo(parts),
            Route::Trace => body::error_page(StatusCode::METHOD_NOT_ALLOWED),
            Route::Redirect(location) => {
                let mut response = body::error_page(StatusCode::MOVED_PERMANENTLY);
                if let Ok(value) = HeaderValue::from_str(&location) {
                    response.headers_mut().insert(header::LOCATION, value);
                }
                response
            }
            Route::Moved(moved) => {
                let mut response = crate::moved::response(&moved);
                if response.status().as_u16() >= 400 {
                    response.extensions_mut().insert(crate::error_document::OwnError);
                }
                response
            }
            Route::File(real) => {
                router.static_files.send(&parts.method, &real, &parts.headers, parts.version)
            }
            Route::Listing(path, entries) => {
                crate::listing::page(&path, &entries, parts.method == http::Method::HEAD)
            }
            Route::Pool(target) => {
                // The canonical target in place of the client's, keeping an h2 request's
                // scheme and authority (its Host).
                let mut pool_parts = parts.clone();
                let mut uri = parts.uri.clone().into_parts();
                let Ok(path_and_query) = target.parse() else {
                    return Decision::Answer(body::error_page(StatusCode::BAD_REQUEST));
                };
                uri.path_and_query = Some(path_and_query);
                match http::Uri::from_parts(uri) {
                    Ok(uri) => pool_parts.uri = uri,
                    Err(_) => return Decision::Answer(body::error_page(StatusCode::BAD_REQUEST)),
                }
                if let (Some(export), Some(_)) = (&self.hosts.site(site).export_cert_data, &facts.tls) {
                    pool_parts.extensions.insert(export.clone());
                }
                let pass_auth = router.cgi_pass_auth(&target);
                pool_parts
                    .extensions
                    .insert(crate::forwarding::ForwardAuth { user: user.map(str::to_string), pass_auth });
                return Decision::Pool(Box::new(pool_parts));
            }
        };
        Decision::Answer(answer)
    }

    /// `user` gets the user the request named in its credentials, for the access log: the
    /// proved one, or (as Apache logs it) the one whose password was wrong.
    async fn route<F, Fut>(
        &self,
        facts: &ClientFacts,
        mut parts: Parts,
        read_body: F,
        user: &mut Option<String>,
    ) -> Response<Body>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<RequestBody, BodyError>>,
    {
        let mut read_body = Some(read_body);
        // Proved once, the user holds for the local redirects that follow.
        let mut proved = false;
        for _ in 0..=MAX_LOCAL_REDIRECTS {
            let mut decision = self.decide(facts, &parts, user.as_deref().filter(|_| proved));
            if let Decision::Authenticate(challenge) = &decision {
                match self.auth.authenticate(facts.peer.ip(), &parts.headers, challenge).await {
                    Outcome::User(name) => {
                        *user = Some(name);
                        proved = true;
                        decision = self.decide(facts, &parts, user.as_deref());
                    }
                    Outcome::Refused { response, user: named } => {
                        *user = named;
                        return response;
                    }
                }
            }
            let pool_parts = match decision {
                Decision::Answer(response) => return response,
                Decision::Pool(pool_parts) => pool_parts,
                // Routed with a proved user, a rule never asks for one again.
                Decision::Authenticate(_) => return body::error_page(StatusCode::INTERNAL_SERVER_ERROR),
            };
            // Only the first request has a body; a local redirect is a GET without one.
            let request_body = match read_body.take() {
                Some(read) => match read().await {
                    Ok(request_body) => request_body,
                    Err(error) => return self.body_refused(facts, &parts, &error),
                },
                None => RequestBody::empty(),
            };
            match self.to_pool(facts, &pool_parts, request_body).await {
                Ok(PoolAnswer::Response(response)) => return response,
                Ok(PoolAnswer::LocalRedirect(target)) => {
                    // RFC 3875 6.2.2: answer as a GET of the new local target.
                    let Some(uri) = target.parse::<http::Uri>().ok().filter(|_| target.starts_with('/'))
                    else {
                        return body::error_page(StatusCode::INTERNAL_SERVER_ERROR);
                    };
                    parts.uri = uri;
                    parts.method = Method::GET;
                    parts.headers.remove(header::CONTENT_TYPE);
                }
                Err(response) => return response,
            }
        }
        tracing::error!(uri = %parts.uri, "AH00124: Request exceeded the limit of {MAX_LOCAL_REDIRECTS} internal redirects");
        body::error_page(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The answer to a body that could not be taken: the connection's state is unknown after
    /// it, so it closes.
    fn body_refused(&self, facts: &ClientFacts, parts: &Parts, error: &BodyError) -> Response<Body> {
        tracing::debug!(client = %facts.peer, uri = %parts.uri, %error, "request body refused");
        let why = match error {
            BodyError::TooLarge => Reject::TooLarge,
            BodyError::Timeout => Reject::Timeout,
            BodyError::SpillFull(_) | BodyError::Storage(_) => Reject::QueueFull,
            _ => Reject::Malformed,
        };
        self.scoreboard.counters().reject(why);
        let mut response = body::error_page(error.status());
        match error {
            BodyError::SpillFull(full) => self.spill.log_full(*full, Source::of(facts.peer.ip())),
            BodyError::Storage(error) => self.spill.log_io(error),
            _ => {}
        }
        if error.status() == StatusCode::SERVICE_UNAVAILABLE {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        response
    }

    /// Admission, then one exchange with a worker.
    pub(crate) async fn to_pool(
        &self,
        facts: &ClientFacts,
        parts: &Parts,
        body: RequestBody,
    ) -> Result<PoolAnswer, Response<Body>> {
        let waiting = std::time::Instant::now();
        let permit = match self.admission.admit(self.scoreboard.counters()).await {
            Ok(permit) => permit,
            Err(refused) => {
                tracing::debug!(?refused, uri = %parts.uri, "no worker free in time");
                self.scoreboard.counters().reject(Reject::QueueFull);
                let mut response = body::error_page(StatusCode::SERVICE_UNAVAILABLE);
                response
                    .headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(self.admission.retry_after()));
                if refused == Refused::QueueFull {
                    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                return Err(response);
            }
        };
        let waited = QueueWait(waiting.elapsed().as_micros() as u64);
        // The permit stays with the worker's response until it has been read whole.
        let answer = self.pool.send(parts, body, facts, permit).await.map_err(|error| {
            tracing::warn!(%error, uri = %parts.uri, "request to the pool failed");
            body::error_page(error.status())
        });
        answer.map(|answer| match answer {
            PoolAnswer::Response(mut response) => {
                response.extensions_mut().insert(waited);
                PoolAnswer::Response(response)
            }
            other => other,
        })
    }

    /// Server per ServerTokens, the `Header` rules, and the signature on edge-made error pages.
    fn apply_policy(&self, mut response: Response<Body>) -> Response<Body> {
        let status = response.status();
        if self.signature != ServerSignature::Off && response.extensions().get::<EdgePage>().is_some() {
            // The signed page's body, keeping the answer's own headers (WWW-Authenticate,
            // Retry-After, Allow, Location).
            let admin = self.server_admin.as_deref().filter(|_| self.signature == ServerSignature::Email);
            let (parts, _) = response.into_parts();
            response = Response::from_parts(
                parts,
                body::error_page_signed(status, &self.server_header, admin).into_body(),
            );
        }
        let headers = response.headers_mut();
        headers.insert(header::SERVER, self.server_header.clone());
        for rule in &self.header_rules {
            if !rule.always && (status.is_client_error() || status.is_server_error()) {
                continue;
            }
            let Ok(name) = header::HeaderName::from_bytes(rule.name.as_bytes()) else {
                continue;
            };
            match &rule.action {
                HeaderAction::Unset => {
                    headers.remove(&name);
                }
                HeaderAction::Set(value) => {
                    if let Ok(value) = HeaderValue::from_str(value) {
                        headers.insert(name, value);
                    }
                }
                HeaderAction::Add(value) => {
                    if let Ok(value) = HeaderValue::from_str(value) {
                        headers.append(name, value);
                    }
                }
                HeaderAction::Append(value) => {
                    let joined = match headers.get(&name).and_then(|v| v.to_str().ok()) {
                        Some(existing) => format!("{existing}, {value}"),
                        None => value.clone(),
                    };
                    if let Ok(value) = HeaderValue::from_str(&joined) {
                        headers.insert(name, value);
                    }
                }
            }
        }
        response
    }

    fn record(
        &self,
        facts: &ClientFacts,
        site: usize,
        time: SystemTime,
        line: &LogLine,
        response: &Response<Body>,
    ) -> Record {
        let extensions = response.extensions();
        Record {
            access_log: self.hosts.site(site).access_log.clone(),
            scoreboard: self.scoreboard,
            client: facts.peer,
            time,
            line: line.clone(),
            status: response.status().as_u16(),
            queue_wait_us: extensions.get::<QueueWait>().map(|w| w.0),
            tls: facts.tls.as_ref().map(|t| t.protocol),
            worker_pid: extensions.get::<crate::pool_client::WorkerPid>().map(|w| w.0),
            user: extensions.get::<RemoteUser>().map(|u| u.0.clone()),
            local_port: facts.local.port(),
            response_headers: self
                .hosts
                .site(site)
                .access_log
                .as_ref()
                .map_or_else(Vec::new, |log| log.response_values(response.headers())),
        }
    }

    /// Writes the request's access-log line now, or, for a body still streaming from a worker,
    /// when that body ends (with the bytes the client was actually sent).
    fn log(
        &self,
        facts: &ClientFacts,
        site: usize,
        time: SystemTime,
        line: &LogLine,
        response: Response<Body>,
    ) -> Response<Body> {
        let record = self.record(facts, site, time, line, &response);
        match response_bytes(&response) {
            Some(bytes) => {
                record.write(bytes);
                response
            }
            None => response.map(|body| http_body_util::BodyExt::boxed(LoggedBody::new(body, record))),
        }
    }
}

/// The status logged for a request whose client went away before it was answered, so that its
/// exchange was dropped (an h2 stream reset, an HTTP/1.1 client that hung up while the request
/// was in the pool): 499, as nginx logs it. Apache has no such status, since it never stops a
/// request because its client left.
pub const CLIENT_CLOSED_REQUEST: u16 = 499;

/// A request being answered: dropped before its answer (its client gone), it still gets its
/// access-log line.
struct Unanswered<'a> {
    site: &'a Site,
    /// The site (virtual host) whose access log gets the line.
    host: usize,
    facts: &'a ClientFacts,
    time: SystemTime,
    line: &'a LogLine,
    answered: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        let record = Record {
            access_log: self.site.hosts.site(self.host).access_log.clone(),
            scoreboard: self.site.scoreboard,
            client: self.facts.peer,
            time: self.time,
            line: self.line.clone(),
            status: CLIENT_CLOSED_REQUEST,
            queue_wait_us: None,
            tls: self.facts.tls.as_ref().map(|t| t.protocol),
            worker_pid: None,
            user: None,
            local_port: self.facts.local.port(),
            // No answer, so no answer's headers: the format's `%{X}o` fields log "-".
            response_headers: self
                .site
                .hosts
                .site(self.host)
                .access_log
                .as_ref()
                .map_or_else(Vec::new, |log| log.response_values(&http::HeaderMap::new())),
        };
        record.write(0);
    }
}

/// Where a request goes, decided from its head.
pub enum Decision {
    /// The edge answers itself; a request body is not wanted.
    Answer(Response<Body>),
    /// The pool runs it, with this (possibly rewritten) target; its body is read first.
    Pool(Box<Parts>),
    /// The request must prove who its user is first (Basic).
    Authenticate(Challenge),
}

/// The user a request named, for the access log's `%u` (a response extension).
#[derive(Debug, Clone)]
pub struct RemoteUser(pub String);

/// How long a request waited for a worker, microseconds (a response extension, for the log).
#[derive(Debug, Clone, Copy)]
pub struct QueueWait(pub u64);

/// The body bytes a response carries: its exact size, or the Content-Length a streamed file
/// declared; `None` for a body streamed from a worker, whose size is known only at its end.
fn response_bytes(response: &Response<Body>) -> Option<u64> {
    response.body().size_hint().exact().or_else(|| {
        response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    })
}

/// `GET /path HTTP/1.1`, as the access log and the scoreboard show it.
pub fn request_line(parts: &Parts) -> String {
    format!(
        "{} {} {:?}",
        parts.method,
        parts.uri.path_and_query().map_or("/", |pq| pq.as_str()),
        parts.version
    )
}

fn header_text(parts: &Parts, name: header::HeaderName) -> Option<String> {
    parts.headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string)
}

/// `TraceEnable On`: the request head, echoed as `message/http` (RFC 9110 9.3.8).
fn trace_echo(parts: &Parts) -> Response<Body> {
    let mut text = format!("{}\r\n", request_line(parts));
    for (name, value) in &parts.headers {
        text.push_str(&format!("{}: {}\r\n", name, String::from_utf8_lossy(value.as_bytes())));
    }
    let mut response = Response::new(body::full(text));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("message/http"));
    response
}
