//! The per-request service: routes a request to the static files or to the pool, and applies the
//! response policy every answer shares.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{header, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::{Body as _, Incoming};

use crate::access_log::{AccessLog, Entry};
use crate::body::{self, Body};
use crate::pool_client::{ClientFacts, PoolClient};
use crate::static_files::StaticFiles;

/// Everything the edge needs to answer requests; shared by every connection.
pub struct Site {
    pub static_files: StaticFiles,
    pub pool: PoolClient,
    /// URL prefixes that go to the pool (ScriptAlias).
    pub pool_prefixes: Vec<String>,
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
            .insert(header::SERVER, HeaderValue::from_static("weir"));
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
        let path = request.uri().path();
        if self
            .pool_prefixes
            .iter()
            .any(|prefix| path.starts_with(prefix.as_str()))
        {
            return self.to_pool(facts, request).await;
        }
        self.static_files
            .serve(request.method(), path, request.headers())
            .await
    }

    async fn to_pool(&self, facts: &ClientFacts, request: Request<Incoming>) -> Response<Body> {
        let (parts, incoming) = request.into_parts();
        let body = match self.read_body(incoming).await {
            Ok(body) => body,
            Err(status) => return body::error_page(status),
        };
        match self.pool.send(&parts, body, facts).await {
            Ok(response) => response,
            Err(error) => {
                tracing::warn!(%error, uri = %parts.uri, "request to the pool failed");
                body::error_page(error.status())
            }
        }
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

/// The peer and local addresses of an accepted connection, for the request's facts.
pub fn facts(peer: SocketAddr, local: SocketAddr, https: bool) -> ClientFacts {
    ClientFacts { peer, local, https }
}
