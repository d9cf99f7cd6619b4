//! The response body type every edge answer uses, and the small pages the edge writes itself.

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};

/// Any response body the edge sends: in memory, or streamed from a file.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A body held whole in memory.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An empty body.
pub fn empty() -> Body {
    full(Bytes::new())
}

/// Marks a response the edge wrote itself, so the response policy can sign it.
#[derive(Debug, Clone, Copy)]
pub struct EdgePage;

/// A small HTML error page that names no software and no version (`ServerSignature Off`).
pub fn error_page(status: StatusCode) -> Response<Body> {
    page(status, "")
}

/// The same page with `ServerSignature On`'s address line, naming only what ServerTokens allows;
/// with `EMail`, a link to ServerAdmin (a `mailto:` unless it is a URL, as Apache writes it).
pub fn error_page_signed(status: StatusCode, product: &HeaderValue, admin: Option<&str>) -> Response<Body> {
    let product = product.to_str().unwrap_or("weir");
    let contact = match admin {
        Some(admin) => {
            let scheme = if admin.contains("://") { "" } else { "mailto:" };
            let admin = html_escape(admin);
            format!(" (<a href=\"{scheme}{admin}\">{admin}</a>)")
        }
        None => String::new(),
    };
    page(status, &format!("<hr>\n<address>{product} Server{contact}</address>\n"))
}

/// Text for HTML: the five characters that could end an element or attribute, escaped, and the
/// bidirectional controls that could show a text reversed (`U+202E` makes `txt.exe` read as
/// `exe.txt`) shown as U+FFFD (a character reference would still take effect).
pub(crate) fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => {
                out.push('\u{fffd}');
            }
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, signature: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let html = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{reason}</h1>\n{signature}</body></html>\n",
        code = status.as_u16()
    );
    let mut response = Response::new(full(html));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    response.extensions_mut().insert(EdgePage);
    response
}

/// A HEAD answer, a 204 and a 304 carry no content (RFC 9110 9.3.2, 15.3.5, 15.4.5), whatever
/// body a script or a Handler wrote. The HTTP/1.1 writer frames that itself; over h2, hyper would
/// send the body and a content-length for it, which curl and nghttp2 refuse as malformed. A HEAD
/// answer keeps the Content-Length its GET would have; a 204 has none.
pub fn without_forbidden_content(response: Response<Body>, is_head: bool) -> Response<Body> {
    let status = response.status();
    if !is_head && status != StatusCode::NO_CONTENT && status != StatusCode::NOT_MODIFIED {
        return response;
    }
    let (mut parts, content) = response.into_parts();
    if status == StatusCode::NO_CONTENT {
        parts.headers.remove(header::CONTENT_LENGTH);
    } else if is_head && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        // The length the content would have had, which is what a GET would be told.
        if let Some(length) = hyper::body::Body::size_hint(&content).exact().filter(|n| *n > 0) {
            parts.headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
        }
    }
    Response::from_parts(parts, empty())
}

/// An empty 200 response, for answers that are replaced before they are sent.
pub fn empty_response() -> Response<Body> {
    Response::new(empty())
}
