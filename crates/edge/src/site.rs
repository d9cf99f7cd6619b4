//! The per-request service: routes a request to the static files or to the pool, and applies the
//! response policy every answer shares.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};

use crate::access_log::{AccessLog, Entry};
use crate::body::{self, Body};
use crate::pool_client::{ClientFacts, PoolAnswer, PoolClient};
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
    /// The `Server` header, per ServerTokens.
    pub server_header: HeaderValue,
    /// LimitRequestBody; 0 means no limit.
    pub limit_request_body: u64,
    pub access_log: Option<AccessLog>,
}

impl Site {
    /// Answers one request. Never fails: every error becomes a status here.
    pub async fn handle(
        self: Arc<Self>,
        facts: ClientFacts,
        request: Request<Incoming>,
    ) -> Response<Body> {
        let started = SystemTime::now();
        let request_line = format!(
            "{} {} {:?}",
            request.method(),
            request.uri().path_and_query().map_or("/", |pq| pq.as_str()),
            request.version()
        );
        let referer = header_text(&request, header::REFERER);
        let user_agent = header_text(&request, header::USER_AGENT);
        let mut response = self.route(&facts, request).await;
        response
            .headers_mut()
            .insert(header::SERVER, self.server_header.clone());
        if let Some(log) = &self.access_log {
            log.write(&Entry {
                client: facts.peer,
                time: started,
                request_line: &request_line,
                status: response.status().as_u16(),
                bytes: response.body().size_hint().exact(),
                referer: referer.as_deref(),
                user_agent: user_agent.as_deref(),
            });
        }
        response
    }

    async fn route(&self, facts: &ClientFacts, request: Request<Incoming>) -> Response<Body> {
        if request.method() == Method::TRACE {
            return body::error_page(StatusCode::METHOD_NOT_ALLOWED);
        }
        let (mut parts, incoming) = request.into_parts();
        let mut incoming = Some(incoming);
        let mut body = Bytes::new();
        for _ in 0..=MAX_LOCAL_REDIRECTS {
            let path = parts.uri.path().to_string();
            let to_pool = if self.routes.to_pool(&path) {
                path
            } else {
                match self
                    .static_files
                    .serve(&parts.method, &path, &parts.headers)
                    .await
                {
                    Served::Response(response) => return response,
                    Served::Code(index) => index,
                }
            };
            if let Some(incoming) = incoming.take() {
                body = match self.read_body(incoming).await {
                    Ok(body) => body,
                    Err(status) => return body::error_page(status),
                };
            }
            let mut pool_parts = parts.clone();
            if to_pool != parts.uri.path() {
                let query = parts.uri.query().map_or(String::new(), |q| format!("?{q}"));
                pool_parts.uri = match format!("{to_pool}{query}").parse() {
                    Ok(uri) => uri,
                    Err(_) => return body::error_page(StatusCode::BAD_REQUEST),
                };
            }
            match self.pool.send(&pool_parts, body.clone(), facts).await {
                Ok(PoolAnswer::Response(response)) => return response,
                Ok(PoolAnswer::LocalRedirect(target)) => {
                    // RFC 3875 6.2.2: answer as a GET of the new local target.
                    let Ok(uri) = target.parse::<http::Uri>() else {
                        return body::error_page(StatusCode::INTERNAL_SERVER_ERROR);
                    };
                    if !target.starts_with('/') {
                        return body::error_page(StatusCode::INTERNAL_SERVER_ERROR);
                    }
                    parts.uri = uri;
                    parts.method = Method::GET;
                    parts.headers.remove(header::CONTENT_TYPE);
                    body = Bytes::new();
                }
                Err(error) => {
                    tracing::warn!(%error, uri = %parts.uri, "request to the pool failed");
                    return body::error_page(error.status());
                }
            }
        }
        tracing::error!(uri = %parts.uri, "AH00124: Request exceeded the limit of {MAX_LOCAL_REDIRECTS} internal redirects");
        body::error_page(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The whole request body, before any worker is contacted.
    async fn read_body(&self, incoming: Incoming) -> Result<Bytes, StatusCode> {
        let limit = match self.limit_request_body {
            0 => usize::MAX,
            n => usize::try_from(n).unwrap_or(usize::MAX),
        };
        if incoming.size_hint().lower() > limit as u64 {
            return Err(StatusCode::PAYLOAD_TOO_LARGE);
        }
        match Limited::new(incoming, limit).collect().await {
            Ok(collected) => Ok(collected.to_bytes()),
            Err(error) if error.is::<http_body_util::LengthLimitError>() => {
                Err(StatusCode::PAYLOAD_TOO_LARGE)
            }
            Err(_) => Err(StatusCode::BAD_REQUEST),
        }
    }
}

fn header_text(request: &Request<Incoming>, name: header::HeaderName) -> Option<String> {
    request
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
