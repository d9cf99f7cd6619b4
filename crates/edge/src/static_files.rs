//! Static files under DocumentRoot, served by the edge itself: they need no isolation, and a trip
//! to a worker would cost two process wake-ups for nothing.
//!
//! Resolving, `stat`ing and opening a file are done right on the runtime thread, as nginx does on
//! its event loop: they are dentry- and page-cache lookups of a few microseconds, where a hand-off
//! to tokio's blocking pool costs two thread wake-ups each (measured: the hand-offs took about
//! 40 % of the edge's CPU for a 1 KiB file). Small files are read whole the same way and sent
//! from memory with their head; only large files are streamed, through the blocking pool, where
//! one hand-off per 64 KiB is cheap next to the copy.

use std::path::{Component, Path, PathBuf};

use std::io::{Read, Seek};

use futures_util::StreamExt;
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use crate::body::{self, Body};
use crate::conditional::{self, Outcome, Validators};
use crate::routes::PoolRoutes;

/// Where static files come from.
#[derive(Debug, Clone)]
pub struct StaticFiles {
    /// DocumentRoot, canonicalized once at start so every check compares real paths.
    pub root: PathBuf,
    /// DirectoryIndex names, tried in order.
    pub index: Vec<String>,
    /// Which files are code (`CGIInterpreter` extensions): those are never sent as they are.
    pub routes: PoolRoutes,
}

/// What the static side makes of a request.
pub enum Served {
    /// The answer.
    Response(Response<Body>),
    /// The directory's index is code (`index.php`): the pool must run this URL path instead.
    Code(String),
}

/// Longest URL path accepted for a file lookup.
const MAX_PATH: usize = 4096;

/// Files (or ranges) up to this size are read whole on the runtime thread and sent from memory.
const IN_MEMORY: u64 = 64 * 1024;

impl StaticFiles {
    /// Answers a GET or HEAD for `raw_path` (still percent-encoded).
    pub fn serve(&self, method: &Method, raw_path: &str, headers: &HeaderMap) -> Served {
        let mut index_name = None;
        let response = self.respond(method, raw_path, headers, &mut index_name);
        match index_name {
            Some(name) if self.routes.is_code(&name) => Served::Code(format!("{raw_path}{name}")),
            _ => Served::Response(response),
        }
    }

    fn respond(
        &self,
        method: &Method,
        raw_path: &str,
        headers: &HeaderMap,
        index_name: &mut Option<String>,
    ) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut response = body::error_page(StatusCode::METHOD_NOT_ALLOWED);
            response.headers_mut().insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let Some(relative) = safe_relative_path(raw_path) else {
            return body::error_page(StatusCode::NOT_FOUND);
        };
        let mut path = self.root.join(&relative);
        let Ok(mut real) = std::fs::canonicalize(&path) else {
            return body::error_page(StatusCode::NOT_FOUND);
        };
        // A symlink may lead anywhere; only what resolves inside the root is served.
        if !real.starts_with(&self.root) {
            return body::error_page(StatusCode::NOT_FOUND);
        }
        let Ok(mut meta) = std::fs::metadata(&real) else {
            return body::error_page(StatusCode::NOT_FOUND);
        };
        if meta.is_dir() {
            if !raw_path.ends_with('/') {
                return redirect_to_directory(raw_path);
            }
            let mut found = None;
            for name in &self.index {
                path = real.join(name);
                if let Ok(candidate) = std::fs::canonicalize(&path) {
                    if candidate.starts_with(&self.root) {
                        if let Ok(m) = std::fs::metadata(&candidate) {
                            if m.is_file() {
                                found = Some((candidate, m));
                                *index_name = Some(name.clone());
                                break;
                            }
                        }
                    }
                }
            }
            // No index: 403, as Apache does without `Options Indexes`; weir never lists.
            let Some((candidate, m)) = found else {
                return body::error_page(StatusCode::FORBIDDEN);
            };
            real = candidate;
            meta = m;
        }
        if !meta.is_file() {
            return body::error_page(StatusCode::NOT_FOUND);
        }
        if index_name.as_deref().is_some_and(|name| self.routes.is_code(name)) {
            // The caller hands this request to the pool; nothing of the file is sent.
            return body::empty_response();
        }
        let real_name = real.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if self.routes.is_code(real_name) {
            // Code reached through another name (a symlink): its source is never sent.
            return body::error_page(StatusCode::FORBIDDEN);
        }
        let Ok(file) = std::fs::File::open(&real) else {
            return body::error_page(StatusCode::FORBIDDEN);
        };
        let size = meta.len();
        let validators = Validators::for_file(size, meta.modified().ok());
        let mime = mime_guess::from_path(&real).first_or_octet_stream();
        let mut builder =
            Response::builder().header(header::ETAG, &validators.etag).header(header::ACCEPT_RANGES, "bytes");
        if let Some(modified) = validators.modified {
            builder = builder.header(header::LAST_MODIFIED, httpdate::fmt_http_date(modified));
        }
        let (status, range) = match conditional::evaluate(method, headers, size, &validators) {
            Outcome::Full => (StatusCode::OK, 0..=size.saturating_sub(1)),
            Outcome::Partial(range) => (StatusCode::PARTIAL_CONTENT, range),
            Outcome::NotModified => {
                return builder
                    .status(StatusCode::NOT_MODIFIED)
                    .body(body::empty())
                    .unwrap_or_else(|_| body::error_page(StatusCode::INTERNAL_SERVER_ERROR));
            }
            Outcome::PreconditionFailed => return body::error_page(StatusCode::PRECONDITION_FAILED),
            Outcome::Unsatisfiable => {
                let mut response = body::error_page(StatusCode::RANGE_NOT_SATISFIABLE);
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    response.headers_mut().insert(header::CONTENT_RANGE, value);
                }
                return response;
            }
        };
        let length = if size == 0 { 0 } else { range.end() - range.start() + 1 };
        builder = builder
            .status(status)
            .header(header::CONTENT_TYPE, mime.as_ref())
            .header(header::CONTENT_LENGTH, length);
        if status == StatusCode::PARTIAL_CONTENT {
            builder = builder
                .header(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", range.start(), range.end()));
        }
        let body = if method == Method::HEAD {
            body::empty()
        } else {
            match file_body(file, *range.start(), length) {
                Ok(body) => body,
                Err(_) => return body::error_page(StatusCode::INTERNAL_SERVER_ERROR),
            }
        };
        builder.body(body).unwrap_or_else(|_| body::error_page(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

/// `length` bytes from `start`: read whole now if small, else streamed in 64 KiB pieces (large
/// files are never read whole into memory).
fn file_body(mut file: std::fs::File, start: u64, length: u64) -> std::io::Result<Body> {
    if start > 0 {
        file.seek(std::io::SeekFrom::Start(start))?;
    }
    if length <= IN_MEMORY {
        let mut bytes = Vec::with_capacity(length as usize);
        file.take(length).read_to_end(&mut bytes)?;
        if bytes.len() as u64 != length {
            // The file shrank since its size was read: the promised length cannot be kept.
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        return Ok(body::full(bytes));
    }
    let file = tokio::fs::File::from_std(file);
    let frames =
        ReaderStream::with_capacity(file.take(length), 64 * 1024).map(|piece| piece.map(Frame::data));
    Ok(BodyExt::boxed(StreamBody::new(frames)))
}

/// Decodes and checks a URL path: no `..`, no `.`, no encoded `/` or `\`, no NUL, not too long.
/// Returns the path relative to the root, or `None` to answer 404.
pub fn safe_relative_path(raw_path: &str) -> Option<PathBuf> {
    if raw_path.len() > MAX_PATH || !raw_path.starts_with('/') {
        return None;
    }
    let mut relative = PathBuf::new();
    for segment in raw_path.split('/') {
        let decoded = percent_encoding::percent_decode_str(segment).decode_utf8().ok()?;
        if decoded.contains(['/', '\\', '\0']) || decoded == ".." || decoded == "." {
            return None;
        }
        if decoded.is_empty() {
            continue;
        }
        relative.push(decoded.as_ref());
    }
    // Belt and braces: the result must be plain names only.
    relative.components().all(|c| matches!(c, Component::Normal(_))).then_some(relative)
}

fn redirect_to_directory(raw_path: &str) -> Response<Body> {
    let mut response = body::error_page(StatusCode::MOVED_PERMANENTLY);
    if let Ok(location) = HeaderValue::from_str(&format!("{raw_path}/")) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// Canonicalizes DocumentRoot once, at start.
pub fn canonical_root(root: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_refused() {
        for bad in [
            "/../etc/passwd",
            "/a/../../etc/passwd",
            "/%2e%2e/etc/passwd",
            "/%2E%2E%2Fetc%2Fpasswd",
            "/a%2f..%2f..%2fetc",
            "/a%5c..%5cetc",
            "/x%00.html",
            "/./a",
            "relative",
        ] {
            assert_eq!(safe_relative_path(bad), None, "{bad}");
        }
        assert_eq!(safe_relative_path("/a/b%20c.html"), Some(PathBuf::from("a/b c.html")));
        assert_eq!(safe_relative_path("/"), Some(PathBuf::new()));
        assert_eq!(safe_relative_path(&format!("/{}", "a".repeat(5000))), None);
    }
}
