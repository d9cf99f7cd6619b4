//! `Options Indexes`: a plain HTML listing of a directory without an index. The router picks
//! the entries (only names whose own route is a file or a directory for this client); this
//! module only writes them, every name HTML-escaped in the text and percent-encoded in its
//! link, each link relative (`./name`) so no name can be read as a scheme or another host.

use http::{header, Response, StatusCode};

use crate::body::{self, Body};

/// One name in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub is_dir: bool,
}

/// The listing page of `path` (the normalised URL path, with its trailing slash).
pub fn page(path: &str, entries: &[Entry], head_only: bool) -> Response<Body> {
    let title = format!("Index of {}", crate::body::html_escape(path));
    let mut html = format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n<ul>\n"
    );
    if path != "/" {
        html.push_str("<li><a href=\"../\">Parent Directory</a></li>\n");
    }
    for entry in entries {
        let slash = if entry.is_dir { "/" } else { "" };
        html.push_str(&format!(
            "<li><a href=\"./{}{slash}\">{}{slash}</a></li>\n",
            encode_component(&entry.name),
            crate::body::html_escape(&entry.name)
        ));
    }
    html.push_str("</ul>\n</body></html>\n");
    let length = html.len();
    let body = if head_only { body::empty() } else { body::full(html.into_bytes()) };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .unwrap_or_else(|_| body::error_page(StatusCode::INTERNAL_SERVER_ERROR))
}

/// A name's link: every byte but RFC 3986's unreserved characters percent-encoded, so nothing
/// in it can end the attribute or be read as a query, fragment, scheme or path separator.
fn encode_component(name: &str) -> String {
    use std::fmt::Write;
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            // Writing to a String cannot fail.
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_escaped_in_text_and_encoded_in_links() {
        assert_eq!(crate::body::html_escape("<script>\"a'&"), "&lt;script&gt;&quot;a&#39;&amp;");
        assert_eq!(encode_component("a\"b <c>?#:%é"), "a%22b%20%3Cc%3E%3F%23%3A%25%C3%A9");
        assert_eq!(encode_component("javascript:x"), "javascript%3Ax");
    }
}
