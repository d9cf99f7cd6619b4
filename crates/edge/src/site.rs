//! The per-request service: a request whose head and body have been read and checked is routed
//! to the static files or, through admission, to the pool; every answer then gets the response
//! policy (Server, Header rules, signature) and an access-log line.

use std::time::SystemTime;

use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use hyper::body::Body as _;
use weir_conf::edge::{HeaderAction, HeaderRule, ServerSignature};

use crate::access_log::{AccessLog, Entry};
use crate::admission::{Admission, Refused};
use crate::body::{self, Body, EdgePage};
use crate::client_limits::RequestRate;
use crate::pool_client::{ClientFacts, PoolAnswer, PoolClient};
use crate::request_body::RequestBody;
use crate::routes::PoolRoutes;
use crate::static_files::{Served, StaticFiles};

/// Local redirects followed for one request before it is refused, as Apache's
/// LimitInternalRecursion.
const MAX_LOCAL_REDIRECTS: usize = 10;

/// Everything the edge needs to answer requests; shared by every connection.
pub struct Site {
    pub static_files: StaticFiles,
    pub pool: PoolClient,
    /// Which requests go to the pool.
    pub routes: PoolRoutes,
    /// At most MaxRequestWorkers requests in the pool; the rest queue, then 503.
    pub admission: Admission,
    /// `RateLimit`, per client address.
    pub rate: Option<RequestRate>,
    /// The `Server` header, per ServerTokens.
    pub server_header: HeaderValue,
    /// `Header` rules for responses.
    pub header_rules: Vec<HeaderRule>,
    pub signature: ServerSignature,
    /// `TraceEnable On`: TRACE is echoed; off, it is refused with 405.
    pub trace_enable: bool,
    /// LimitRequestBody; 0 means no limit.
    pub limit_request_body: u64,
    pub access_log: Option<AccessLog>,
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

    /// Answers one complete request. Never fails: every error becomes a status here.
    pub async fn handle(&self, facts: &ClientFacts, parts: Parts, body: RequestBody) -> Response<Body> {
        let started = SystemTime::now();
        let request_line = request_line(&parts);
        let referer = header_text(&parts, header::REFERER);
        let user_agent = header_text(&parts, header::USER_AGENT);
        // RateLimit was checked where the head was read (h1 and h2 both), before the body.
        let response = self.route(facts, parts, body).await;
        let response = self.apply_policy(response);
        self.log(facts, started, &request_line, &response, referer.as_deref(), user_agent.as_deref());
        response
    }

    /// Writes the access-log line for an answer the edge made before any routing (a malformed
    /// request, a timeout), then applies the response policy to it.
    pub fn refuse(
        &self,
        facts: &ClientFacts,
        request_line: &str,
        response: Response<Body>,
    ) -> Response<Body> {
        let response = self.apply_policy(response);
        self.log(facts, SystemTime::now(), request_line, &response, None, None);
        response
    }

    async fn route(&self, facts: &ClientFacts, mut parts: Parts, body: RequestBody) -> Response<Body> {
        if parts.method == Method::TRACE {
            return if self.trace_enable {
                trace_echo(&parts)
            } else {
                body::error_page(StatusCode::METHOD_NOT_ALLOWED)
            };
        }
        let mut body = Some(body);
        for _ in 0..=MAX_LOCAL_REDIRECTS {
            let path = parts.uri.path().to_string();
            let to_pool = if self.routes.to_pool(&path) {
                path
            } else {
                match self.static_files.serve(&parts.method, &path, &parts.headers).await {
                    Served::Response(response) => return response,
                    Served::Code(index) => index,
                }
            };
            let mut pool_parts = parts.clone();
            if to_pool != parts.uri.path() {
                let query = parts.uri.query().map_or(String::new(), |q| format!("?{q}"));
                pool_parts.uri = match format!("{to_pool}{query}").parse() {
                    Ok(uri) => uri,
                    Err(_) => return body::error_page(StatusCode::BAD_REQUEST),
                };
            }
            let request_body = body.take().unwrap_or_else(RequestBody::empty);
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

    /// Admission, then one exchange with a worker.
    async fn to_pool(
        &self,
        facts: &ClientFacts,
        parts: &Parts,
        body: RequestBody,
    ) -> Result<PoolAnswer, Response<Body>> {
        let _permit = match self.admission.admit().await {
            Ok(permit) => permit,
            Err(refused) => {
                tracing::debug!(?refused, uri = %parts.uri, "no worker free in time");
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
        self.pool.send(parts, body, facts).await.map_err(|error| {
            tracing::warn!(%error, uri = %parts.uri, "request to the pool failed");
            body::error_page(error.status())
        })
    }

    /// Server per ServerTokens, the `Header` rules, and the signature on edge-made error pages.
    fn apply_policy(&self, mut response: Response<Body>) -> Response<Body> {
        let status = response.status();
        if self.signature != ServerSignature::Off && response.extensions().get::<EdgePage>().is_some() {
            response = body::error_page_signed(status, &self.server_header);
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

    fn log(
        &self,
        facts: &ClientFacts,
        time: SystemTime,
        request_line: &str,
        response: &Response<Body>,
        referer: Option<&str>,
        user_agent: Option<&str>,
    ) {
        if let Some(log) = &self.access_log {
            log.write(&Entry {
                client: facts.peer,
                time,
                request_line,
                status: response.status().as_u16(),
                bytes: response.body().size_hint().exact(),
                referer,
                user_agent,
            });
        }
    }
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
