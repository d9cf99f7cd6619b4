//! `ErrorDocument`: a site's own answer in place of an error page the edge wrote (or a worker's
//! 404/403 for a script that is not there or may not run), as Apache 2.4 gives it.
//!
//! A text becomes the body; a URL becomes a 302 to it; a local path is fetched as a GET of that
//! path on the same site, routed like any request (so `<Location>`, `Require`, the dotfile rule
//! and the script directories hold for it), and its body is sent with the original status.
//! The document is fetched once, without the request's credentials: an error while fetching it
//! (not found, denied, a redirect, a script's own error, no worker free) gives the built-in page
//! with the original status. So no document can loop, and no error ever turns into a 200.
//! A status a script chose with its own body is never replaced (Apache does not either).
//! A `<Location>` matching the request's normalised path may name its own document.

use http::request::Parts;
use http::{header, HeaderValue, Method, Response, StatusCode};
use weir_conf::error_document::ErrorDocument;

use crate::body::{self, Body, EdgePage};
use crate::client_facts::ClientFacts;
use crate::hosts::SiteId;
use crate::pool_client::PoolAnswer;
use crate::request_body::RequestBody;
use crate::site::{Decision, Site};

/// Marks an error weir made itself that is not an [`EdgePage`] (a response extension): a
/// worker's own refusal of a script ([`weir_wire::REFUSAL`]), a `Redirect gone`'s 410. Like an
/// edge page, it may be answered with an ErrorDocument; an answer code chose never is.
#[derive(Debug, Clone, Copy)]
pub struct OwnError;

/// The request an `ErrorDocument` fetch answers for (a request extension): the worker turns it
/// into REDIRECT_STATUS, REDIRECT_URL, REDIRECT_QUERY_STRING and REDIRECT_REQUEST_METHOD.
#[derive(Debug, Clone)]
pub struct Redirected {
    pub status: StatusCode,
    /// The path the client asked for, as it sent it (percent-encoded).
    pub url: String,
    pub query: String,
    pub method: Method,
}

/// Headers of the error that stay on the document's answer: the challenge, the methods
/// allowed, when to retry, and whether the connection closes.
const KEPT: [header::HeaderName; 4] =
    [header::WWW_AUTHENTICATE, header::ALLOW, header::RETRY_AFTER, header::CONNECTION];

/// Request headers a document fetch drops: it has no body, must be a plain, whole GET, and is
/// made without the request's credentials (a password the edge checked never reaches code in
/// a worker through an error document).
const DROPPED: [header::HeaderName; 11] = [
    header::AUTHORIZATION,
    header::EXPECT,
    header::CONTENT_TYPE,
    header::CONTENT_LENGTH,
    header::TRANSFER_ENCODING,
    header::RANGE,
    header::IF_RANGE,
    header::IF_MATCH,
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::IF_UNMODIFIED_SINCE,
];

/// What the synchronous part decided.
enum Produced {
    /// The answer to send.
    Done(Response<Body>),
    /// The document is a script: fetch it from the pool; the error itself if that fails.
    Pool(Box<Parts>, Response<Body>),
}

impl Site {
    /// Whether `site` has any ErrorDocument: only then is a request's head kept for one.
    pub(crate) fn has_error_documents(&self, site: usize) -> bool {
        let host = self.hosts.site(site);
        !host.error_documents.is_empty() || host.location_documents
    }

    /// The document for `status`: the site's, unless a `<Location>` matching the request's
    /// normalised path (`None`: a request refused before it was read whole) names one, the
    /// last such section winning, as Apache merges them.
    fn document_for(&self, site: usize, path: Option<&str>, status: StatusCode) -> Option<&ErrorDocument> {
        let host = self.hosts.site(site);
        let mut found = host.error_documents.entry(status.as_u16());
        if let Some(path) = path.filter(|_| host.location_documents) {
            for section in host.router.locations.iter().filter(|section| section.matches(path)) {
                if let Some(document) = section.error_documents.entry(status.as_u16()) {
                    found = Some(document);
                }
            }
        }
        found.filter(|document| **document != ErrorDocument::Default)
    }

    /// The answer to send for `response` to `request` on `site`: its ErrorDocument when it is
    /// an error the edge (or a worker refusing a script) wrote and the site has one for it.
    pub(crate) async fn with_error_document(
        &self,
        facts: &ClientFacts,
        site: usize,
        request: &Parts,
        response: Response<Body>,
    ) -> Response<Body> {
        match self.error_document_now(facts, site, request, true, response) {
            Produced::Done(response) => response,
            // No worker was free in time: a script for the document would wait again.
            Produced::Pool(_, error) if error.status() == StatusCode::SERVICE_UNAVAILABLE => error,
            Produced::Pool(parts, error) => match self.to_pool(facts, &parts, RequestBody::empty()).await {
                // A 200 only: a 206 (with its Content-Range) or a 204 is no whole document.
                Ok(PoolAnswer::Response(answer)) if answer.status() == StatusCode::OK => {
                    with_status(answer, error)
                }
                Ok(_) | Err(_) => {
                    tracing::debug!(site, uri = %request.uri, "the ErrorDocument's script gave no document; the built-in page is sent");
                    error
                }
            },
        }
    }

    /// [`Site::with_error_document`] for an answer made before the request was routed (a
    /// refused head, the rate limit): the document may be a text, a URL or a static file, never
    /// a script, so a refused request never costs a worker.
    pub(crate) fn with_error_document_now(
        &self,
        facts: &ClientFacts,
        site: usize,
        response: Response<Body>,
    ) -> Response<Body> {
        if !self.has_error_documents(site) {
            return response;
        }
        let mut request = http::Request::new(()).into_parts().0;
        request.extensions.insert(SiteId(site));
        match self.error_document_now(facts, site, &request, false, response) {
            Produced::Done(response) => response,
            Produced::Pool(_, error) => error,
        }
    }

    fn error_document_now(
        &self,
        facts: &ClientFacts,
        site: usize,
        request: &Parts,
        routed: bool,
        response: Response<Body>,
    ) -> Produced {
        let status = response.status();
        let replaceable = status.as_u16() >= 400
            && (response.extensions().get::<EdgePage>().is_some()
                || response.extensions().get::<OwnError>().is_some());
        if !replaceable {
            return Produced::Done(response);
        }
        // The one normalised path, as every decision about the request was made.
        let target = request.uri.path_and_query().map(|pq| weir_wire::target::Target::parse(pq.as_str()));
        let path = match &target {
            Some(Ok(target)) if routed => Some(target.path()),
            _ => None,
        };
        let Some(document) = self.document_for(site, path, status) else {
            return Produced::Done(response);
        };
        match document {
            ErrorDocument::Text(text) => Produced::Done(text_page(response, text)),
            ErrorDocument::Remote(url) => Produced::Done(redirect(response, url)),
            ErrorDocument::Local(path) => {
                let Some(fetch) = document_request(request, path, site) else {
                    return Produced::Done(response);
                };
                // Without the request's credentials: a document behind Require is not sent.
                match self.decide(facts, &fetch, None) {
                    Decision::Answer(answer) if answer.status() == StatusCode::OK => {
                        Produced::Done(with_status(answer, response))
                    }
                    Decision::Pool(mut parts) => {
                        parts.extensions.insert(Redirected {
                            status,
                            url: request.uri.path().to_string(),
                            query: request.uri.query().unwrap_or("").to_string(),
                            method: request.method.clone(),
                        });
                        Produced::Pool(parts, response)
                    }
                    Decision::Answer(_) | Decision::Authenticate(_) => {
                        tracing::debug!(site, document = %path, "the ErrorDocument could not be fetched; the built-in page is sent");
                        Produced::Done(response)
                    }
                }
            }
            ErrorDocument::Default => Produced::Done(response),
        }
    }
}

/// The GET of a local document path on the same site, with the request's headers less those
/// of its body and its conditions.
fn document_request(request: &Parts, path: &str, site: usize) -> Option<Parts> {
    let mut fetch = request.clone();
    let mut uri = request.uri.clone().into_parts();
    uri.path_and_query = Some(path.parse().ok()?);
    fetch.uri = http::Uri::from_parts(uri).ok()?;
    fetch.method = Method::GET;
    for name in &DROPPED {
        fetch.headers.remove(name);
    }
    fetch.extensions.remove::<crate::forwarding::ForwardAuth>();
    fetch.extensions.insert(SiteId(site));
    Some(fetch)
}

/// The document's answer with the error's status and the error's own headers that must stay.
fn with_status(document: Response<Body>, error: Response<Body>) -> Response<Body> {
    let (mut parts, content) = document.into_parts();
    parts.status = error.status();
    for name in &KEPT {
        if let Some(value) = error.headers().get(name) {
            parts.headers.insert(name, value.clone());
        }
    }
    // A file's validators describe the document, not the error; a Range answer is never made.
    for name in [header::ETAG, header::LAST_MODIFIED, header::ACCEPT_RANGES, header::CONTENT_RANGE] {
        parts.headers.remove(name);
    }
    parts.extensions.remove::<EdgePage>();
    Response::from_parts(parts, content)
}

/// The error with `text` as its body (text/html, as Apache sends it).
fn text_page(error: Response<Body>, text: &str) -> Response<Body> {
    let (mut parts, _) = error.into_parts();
    parts.extensions.remove::<EdgePage>();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    Response::from_parts(parts, body::full(text.to_string()))
}

/// A 302 to `url` in place of the error, as Apache answers an ErrorDocument that is a URL.
fn redirect(error: Response<Body>, url: &str) -> Response<Body> {
    let mut response = body::error_page(StatusCode::FOUND);
    // Checked when the configuration was read: visible ASCII only.
    if let Ok(value) = HeaderValue::from_str(url) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    if let Some(value) = error.headers().get(header::CONNECTION) {
        response.headers_mut().insert(header::CONNECTION, value.clone());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_document_fetch_is_a_plain_get_without_credentials() {
        let request = http::Request::post("https://example.com/orig?q=1")
            .header("authorization", "Basic Ym9iOnNlY3JldA==")
            .header("content-type", "text/plain")
            .header("content-length", "3")
            .header("range", "bytes=0-1")
            .header("if-none-match", "\"x\"")
            .header("expect", "100-continue")
            .header("cookie", "a=b")
            .body(())
            .unwrap();
        let (mut parts, ()) = request.into_parts();
        parts.extensions.insert(crate::forwarding::ForwardAuth { user: Some("bob".into()), pass_auth: true });
        let fetch = document_request(&parts, "/errors/404.html", 2).unwrap();
        assert_eq!(fetch.method, Method::GET);
        assert_eq!(fetch.uri, "https://example.com/errors/404.html");
        let names: Vec<&str> = fetch.headers.keys().map(|n| n.as_str()).collect();
        assert_eq!(names, ["cookie"]);
        assert!(fetch.extensions.get::<crate::forwarding::ForwardAuth>().is_none());
        assert_eq!(fetch.extensions.get::<SiteId>(), Some(&SiteId(2)));
    }
}
