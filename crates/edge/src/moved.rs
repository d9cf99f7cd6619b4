//! The answer to a `Redirect` rule, made by the edge from the request's head alone (no body is
//! read, no worker is asked): the rule's status, its `Location`, and Apache's small HTML page.

use http::{header, HeaderValue, Response, StatusCode};
use weir_conf::alias::Redirected;

use crate::body::{self, Body};

/// The response for a rule's answer. A status that is not a redirect (`gone`) is an error page.
pub fn response(moved: &Redirected) -> Response<Body> {
    let status = StatusCode::from_u16(moved.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let Some(location) = &moved.location else {
        return match status {
            StatusCode::GONE => page(
                status,
                "<p>The requested resource is no longer available on this server and there is no forwarding address.\nPlease remove all references to this resource.</p>\n",
            ),
            _ => body::error_page(status),
        };
    };
    // The location is the configuration's text and percent-encoded path pieces: always a
    // valid header value; should it not be, no Location is better than a broken one.
    let Ok(value) = HeaderValue::from_str(location) else {
        return body::error_page(StatusCode::INTERNAL_SERVER_ERROR);
    };
    let link = format!("<a href=\"{}\">here</a>", escape(location));
    let text = match status {
        StatusCode::SEE_OTHER => format!("<p>The answer to your request is located {link}.</p>\n"),
        StatusCode::MULTIPLE_CHOICES => format!("<p>The document name you requested could not be found on this server.\nHowever, we found documents with names similar to the one you requested.<p>Available documents:\n<ul>\n<li>{link}</li>\n</ul>\n"),
        _ => format!("<p>The document has moved {link}.</p>\n"),
    };
    let mut response = page(status, &text);
    response.headers_mut().insert(header::LOCATION, value);
    response
}

/// Apache's page for these answers: title, heading, one paragraph. Not marked as an edge error
/// page: the signature would replace the paragraph, which is the point of the page.
fn page(status: StatusCode, paragraph: &str) -> Response<Body> {
    let reason = status.canonical_reason().unwrap_or("Redirect");
    let html = format!(
        "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n<title>{code} {reason}</title>\n</head><body>\n<h1>{reason}</h1>\n{paragraph}</body></html>\n",
        code = status.as_u16()
    );
    let mut response = Response::new(body::full(html));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=iso-8859-1"));
    response
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_headers() {
        let moved = response(&Redirected { status: 301, location: Some("/new?a=1&b=\"2\"".into()) });
        assert_eq!(moved.status(), 301);
        assert_eq!(moved.headers()[header::LOCATION], "/new?a=1&b=\"2\"");
        let gone = response(&Redirected { status: 410, location: None });
        assert_eq!(gone.status(), 410);
        assert!(gone.headers().get(header::LOCATION).is_none());
        assert_eq!(response(&Redirected { status: 403, location: None }).status(), 403);
    }
}
