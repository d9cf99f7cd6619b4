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
use http::{header, HeaderMap, HeaderValue, Method, Response, StatusCode, Version};
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
    /// `AddType`: extension (lower case) to media type, looked up before the built-in table.
    pub types: std::sync::Arc<[(String, String)]>,
}

/// What the static side finds for a normalised path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolved {
    /// A regular file inside the root: its real path.
    File(PathBuf),
    /// The directory's index is code (`index.php`): the pool must run this path instead.
    Code(String),
    /// A directory asked for without its trailing slash: redirect to it.
    Directory,
    /// Not GET or HEAD.
    MethodNotAllowed,
    /// A directory without an index (its real path): listed where `Options Indexes` is on,
    /// else 403, as Apache answers.
    NoIndex(PathBuf),
    /// 403 (code reached by another name, a symlink `Options` refuse) or 404.
    Refuse(StatusCode),
}

/// Which symlinks may be followed under the root (`Options`); weir follows none that leads
/// out of the root whatever they say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// `FollowSymLinks`, and weir's behaviour where no `Options` applies.
    Follow,
    /// `SymLinksIfOwnerMatch`: a link whose owner is its target's.
    IfOwnerMatch,
    /// Neither: any symlink is refused (403).
    Refuse,
}

impl Links {
    /// From the `Options` in force (`None`: none applies, weir follows as it always has).
    pub fn of(options: Option<weir_conf::directory::Options>) -> Links {
        match options {
            None => Links::Follow,
            Some(o) if o.follow_symlinks => Links::Follow,
            Some(o) if o.symlinks_if_owner_match => Links::IfOwnerMatch,
            Some(_) => Links::Refuse,
        }
    }

    /// Whether `relative` (plain names) can be walked down from `base` (a real directory):
    /// every symlink on the way is one these options follow. Only called when the walk's real
    /// path differs from the path as named, so a tree without links costs nothing more.
    pub(crate) fn allow(self, base: &Path, relative: &Path) -> bool {
        use std::os::unix::fs::MetadataExt;
        if self == Links::Follow {
            return true;
        }
        let mut at = base.to_path_buf();
        for component in relative.components() {
            at.push(component);
            let Ok(link) = std::fs::symlink_metadata(&at) else {
                return false;
            };
            if !link.file_type().is_symlink() {
                continue;
            }
            if self == Links::Refuse {
                return false;
            }
            match std::fs::metadata(&at) {
                Ok(target) if target.uid() == link.uid() => {}
                _ => return false,
            }
        }
        true
    }
}

/// Longest URL path accepted for a file lookup.
const MAX_PATH: usize = 4096;

/// Files (or ranges) up to this size are read whole on the runtime thread and sent from memory.
const IN_MEMORY: u64 = 64 * 1024;

/// Larger files are read in pieces of this size over HTTP/1.1, one blocking-pool hand-off each.
const H1_READ: usize = 64 * 1024;
/// Over h2, in the 16 KiB pieces h2_activity hands over: a connection carries up to 100 streams,
/// and each may hold a piece read while its client reads nothing (measured with 495 such streams:
/// 207 KiB each with 64 KiB reads, 110 KiB with 16 KiB ones).
const H2_READ: usize = 16 * 1024;

impl StaticFiles {
    /// Finds what a GET or HEAD of `path` (normalised and decoded, [`weir_wire::target`]) names
    /// as `relative` (plain names) under `root` (canonical): DocumentRoot, or the directory an
    /// `Alias` maps it to ([`crate::router::Router::file_system_place`]). Nothing outside `root`
    /// is served. `links` says which symlinks `Options` let it follow, `index` the
    /// `DirectoryIndex` names in force.
    pub fn resolve_under(
        &self,
        method: &Method,
        path: &str,
        place: (&Path, &Path),
        links: Links,
        index: &[String],
    ) -> Resolved {
        let (root, relative) = place;
        if method != Method::GET && method != Method::HEAD {
            return Resolved::MethodNotAllowed;
        }
        if path.len() > MAX_PATH || !relative.components().all(|c| matches!(c, Component::Normal(_))) {
            return Resolved::Refuse(StatusCode::NOT_FOUND);
        }
        // `Alias /favicon.ico /srv/favicon.ico` maps to the root itself; joining "" would add a
        // trailing slash, which no file has.
        let wanted = if relative.as_os_str().is_empty() { root.to_path_buf() } else { root.join(relative) };
        let Ok(real) = std::fs::canonicalize(wanted) else {
            return Resolved::Refuse(StatusCode::NOT_FOUND);
        };
        // A symlink may lead anywhere; only what resolves inside the root is served.
        if !real.starts_with(root) {
            return Resolved::Refuse(StatusCode::NOT_FOUND);
        }
        if links != Links::Follow && real != root.join(relative) && !links.allow(root, relative) {
            return Resolved::Refuse(StatusCode::FORBIDDEN);
        }
        let Ok(meta) = std::fs::metadata(&real) else {
            return Resolved::Refuse(StatusCode::NOT_FOUND);
        };
        if meta.is_dir() {
            if !path.ends_with('/') {
                return Resolved::Directory;
            }
            let found = index.iter().find_map(|name| {
                let candidate = std::fs::canonicalize(real.join(name)).ok()?;
                let is_file = std::fs::metadata(&candidate).ok()?.is_file();
                (candidate.starts_with(root) && is_file).then_some((candidate, name))
            });
            return match found {
                None => Resolved::NoIndex(real),
                Some((candidate, name))
                    if links != Links::Follow
                        && candidate != real.join(name)
                        && !links.allow(&real, Path::new(name)) =>
                {
                    Resolved::Refuse(StatusCode::FORBIDDEN)
                }
                Some((_, name)) if self.routes.is_code(name) => Resolved::Code(format!("{path}{name}")),
                Some((candidate, _)) => self.file(candidate),
            };
        }
        // A file named with a trailing slash (`/index.html/`) is no directory: 404, as Apache
        // answers without AcceptPathInfo.
        if !meta.is_file() || path.ends_with('/') {
            return Resolved::Refuse(StatusCode::NOT_FOUND);
        }
        self.file(real)
    }

    /// The Content-Type for a file: AddType by its last extension, else the built-in table.
    fn media_type(&self, real: &Path) -> &str {
        let ext = real.extension().and_then(|e| e.to_str());
        let added = ext.and_then(|ext| self.types.iter().find(|(known, _)| known.eq_ignore_ascii_case(ext)));
        match added {
            Some((_, media)) => media,
            None => mime_guess::from_path(real).first_raw().unwrap_or("application/octet-stream"),
        }
    }

    fn file(&self, real: PathBuf) -> Resolved {
        let real_name = real.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if self.routes.is_code(real_name) {
            // Code reached through another name (a symlink): its source is never sent.
            return Resolved::Refuse(StatusCode::FORBIDDEN);
        }
        Resolved::File(real)
    }

    /// Sends a file [`StaticFiles::resolve_under`] found, honouring conditional and range requests.
    pub fn send(
        &self,
        method: &Method,
        real: &Path,
        headers: &HeaderMap,
        version: Version,
    ) -> Response<Body> {
        let Ok(file) = open_checked(real) else {
            return body::error_page(StatusCode::FORBIDDEN);
        };
        let Ok(meta) = file.metadata() else {
            return body::error_page(StatusCode::NOT_FOUND);
        };
        let size = meta.len();
        let validators = Validators::for_file(size, meta.modified().ok());
        let mime = self.media_type(real);
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
        builder =
            builder.status(status).header(header::CONTENT_TYPE, mime).header(header::CONTENT_LENGTH, length);
        if status == StatusCode::PARTIAL_CONTENT {
            builder = builder
                .header(header::CONTENT_RANGE, format!("bytes {}-{}/{size}", range.start(), range.end()));
        }
        let body = if method == Method::HEAD {
            body::empty()
        } else {
            let read = if version == Version::HTTP_2 { H2_READ } else { H1_READ };
            match file_body(file, *range.start(), length, read) {
                Ok(body) => body,
                Err(_) => return body::error_page(StatusCode::INTERNAL_SERVER_ERROR),
            }
        };
        builder.body(body).unwrap_or_else(|_| body::error_page(StatusCode::INTERNAL_SERVER_ERROR))
    }
}

/// `length` bytes from `start`: read whole now if small, else streamed in pieces of `read` bytes
/// (large files are never read whole into memory).
fn file_body(mut file: std::fs::File, start: u64, length: u64, read: usize) -> std::io::Result<Body> {
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
    let frames = ReaderStream::with_capacity(file.take(length), read).map(|piece| piece.map(Frame::data));
    Ok(BodyExt::boxed(StreamBody::new(frames)))
}

/// The path relative to the root of a normalised path: its segments, each a plain name.
/// `None` (answered 404) when it is too long or, defensively, when any segment is not a plain
/// name (a normalised path has none).
pub(crate) fn relative_path(path: &str) -> Option<PathBuf> {
    if path.len() > MAX_PATH {
        return None;
    }
    let relative: PathBuf = weir_wire::script_path::segments(path)?.into_iter().collect();
    relative.components().all(|c| matches!(c, Component::Normal(_))).then_some(relative)
}

/// Opens a file [`StaticFiles::resolve_under`] checked, following no symlink on the way. The
/// checked path is canonical, so a symlink found on it now was put there since the check: a
/// client renaming a link into place between check and open (`renameat2` RENAME_EXCHANGE) got
/// a denied file in 4 % of tries, and `/etc/passwd` through a swapped directory.
fn open_checked(real: &Path) -> std::io::Result<std::fs::File> {
    use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag, AT_FDCWD};
    let how =
        OpenHow::new().flags(OFlag::O_RDONLY | OFlag::O_CLOEXEC).resolve(ResolveFlag::RESOLVE_NO_SYMLINKS);
    match openat2(AT_FDCWD, real, how) {
        Ok(fd) => Ok(std::fs::File::from(fd)),
        // Before Linux 5.6: open, then make sure the file opened is the one checked.
        Err(nix::errno::Errno::ENOSYS) => {
            use std::os::fd::AsRawFd;
            let file = std::fs::File::open(real)?;
            let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))?;
            if opened != real {
                return Err(std::io::ErrorKind::PermissionDenied.into());
            }
            Ok(file)
        }
        Err(errno) => Err(errno.into()),
    }
}

/// Canonicalizes DocumentRoot once, at start.
pub fn canonical_root(root: &Path) -> std::io::Result<PathBuf> {
    std::fs::canonicalize(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory on a checked (canonical) path swapped for a symlink before the open: the
    /// open fails instead of following it.
    #[test]
    fn a_symlink_put_on_a_checked_path_is_not_followed() {
        let dir = std::env::temp_dir().join(format!("weir-open-checked-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("pub")).unwrap();
        std::fs::create_dir_all(dir.join("admin")).unwrap();
        std::fs::write(dir.join("pub/x.txt"), "public").unwrap();
        std::fs::write(dir.join("admin/x.txt"), "secret").unwrap();
        let real = std::fs::canonicalize(dir.join("pub/x.txt")).unwrap();
        assert!(open_checked(&real).is_ok());
        std::fs::rename(dir.join("pub"), dir.join("pub-away")).unwrap();
        std::os::unix::fs::symlink(dir.join("admin"), dir.join("pub")).unwrap();
        assert!(open_checked(&real).is_err(), "followed a symlink put there after the check");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn relative_paths_are_plain_names_only() {
        assert_eq!(relative_path("/a/b c.html"), Some(PathBuf::from("a/b c.html")));
        assert_eq!(relative_path("/"), Some(PathBuf::new()));
        assert_eq!(relative_path("/a/../b"), None);
        assert_eq!(relative_path(&format!("/{}", "a".repeat(5000))), None);
    }
}
