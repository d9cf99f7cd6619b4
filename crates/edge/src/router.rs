//! Where a request goes, decided once from its normalised target ([`weir_wire::target`]): the
//! `<Location>` sections that match it (merged, `Require` for every route), the dotfile rule,
//! server-status, TRACE, the pool (ScriptAlias, Handlers, CGIInterpreter), or a static file.
//! Every spelling of a path normalises to one path, and only that path is looked at here, so
//! two spellings cannot be routed apart.

use std::borrow::Cow;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use http::{Method, StatusCode};
use weir_conf::alias::{self, RedirectRule, Redirected};
use weir_conf::directory::{Options, Sections};
use weir_conf::location::{self, Effective, Location, Verdict, Who};
use weir_wire::target::{self, Target};

use crate::auth_basic::Challenge;

use crate::routes::PoolRoutes;
use crate::static_files::{Links, Resolved, StaticFiles};

/// Most directory entries a listing looks at (`Options Indexes`). At 10,000, names of 246
/// bytes made a 19.6 MB page, held whole for a client that read none of it.
const MAX_LISTED: usize = 2_000;

/// What the edge does with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// An error page with this status (400 bad target, 403, 404).
    Refuse(StatusCode),
    /// 405 with `Allow: GET, HEAD`: a static file asked for with another method.
    MethodNotAllowed,
    /// The server-status page.
    Status,
    /// TRACE (answered, or 405 when `TraceEnable Off`).
    Trace,
    /// 301 to this `Location` (a directory asked for without its slash).
    Redirect(String),
    /// A `Redirect` rule's answer: its status, and its `Location` for a 3xx.
    Moved(Redirected),
    /// A static file to send: its real path.
    File(PathBuf),
    /// A listing of a directory without an index (`Options Indexes`): the URL path (with its
    /// trailing slash) and the entries a client may reach, sorted.
    Listing(String, Vec<crate::listing::Entry>),
    /// The pool, with this origin-form target (the canonical encoding of the normalised path).
    Pool(String),
    /// A user must prove who they are (Basic): 401, or the route again with the user.
    Authenticate(Challenge),
    /// 401 to a user who proved who they are but is not let in here (Apache's answer, so the
    /// browser asks for another user), with the realm.
    Unauthorized(String),
    /// 500: the rules want a user and no authentication applies, or the reverse; the reason
    /// for the error log (Apache answers these with 500 too).
    Misconfigured(&'static str),
}

/// The routing state shared by every request.
#[derive(Debug, Clone)]
pub struct Router {
    pub routes: PoolRoutes,
    pub static_files: StaticFiles,
    /// `<Location>` sections in order of appearance (server-status among them).
    pub locations: Vec<Location>,
    /// Where scripts are (every site's), canonical: no static route may send a file from there.
    script_dirs: Vec<alias::Region>,
    /// The site's `Redirect` family, in order: answered before any alias or route.
    redirects: Vec<RedirectRule>,
    /// `<Directory>` and `<Files>` sections, matched against the path a request maps to.
    sections: Sections,
    /// DocumentRoot as configured (not resolved), which the sections' paths are written
    /// against; `static_files.root` is its real path.
    mapped_root: PathBuf,
}

/// What the sections that apply to a request say, merged.
struct Decided<'a> {
    rules: Effective<'a>,
    /// `Options` in force; `None` where none applies.
    options: Option<Options>,
    /// `DirectoryIndex` from the sections; `None`: the site's.
    index: Option<&'a [String]>,
    /// The file the request maps to, when sections were looked up for one.
    file: Option<PathBuf>,
}

impl Router {
    pub fn new(routes: PoolRoutes, static_files: StaticFiles, locations: Vec<Location>) -> Router {
        let script_dirs = routes
            .script_dirs
            .iter()
            .map(|dir| alias::Region::directory(dir.clone()))
            .chain(
                routes.url_aliases.iter().filter(|a| a.kind == alias::AliasKind::Scripts).map(|a| a.region()),
            )
            .filter_map(|region| region.canonical())
            .collect();
        let mapped_root = static_files.root.clone();
        Router {
            routes,
            static_files,
            locations,
            script_dirs,
            redirects: Vec::new(),
            sections: Sections::default(),
            mapped_root,
        }
    }

    /// With the site's `Redirect` rules.
    pub fn with_redirects(mut self, redirects: Vec<RedirectRule>) -> Router {
        self.redirects = redirects;
        self
    }

    /// With the site's `<Directory>` and `<Files>` sections, and its DocumentRoot as written.
    pub fn with_sections(mut self, sections: Sections, document_root: &Path) -> Router {
        self.sections = sections;
        self.mapped_root = document_root.to_path_buf();
        self
    }

    /// Also refuses to send files from these directories (every site's script directories:
    /// another site's DocumentRoot may hold them).
    pub fn refusing_script_dirs(mut self, regions: &[alias::Region]) -> Router {
        for region in regions.iter().filter_map(alias::Region::canonical) {
            if !self.script_dirs.contains(&region) {
                self.script_dirs.push(region);
            }
        }
        self
    }

    /// Routes a request from its method and its target as the client sent it (origin-form:
    /// path and query).
    pub fn route(&self, method: &Method, raw_target: &str, peer: IpAddr, local: IpAddr) -> Route {
        self.route_as(method, raw_target, &Who { peer, local, user: None })
    }

    /// Routes a request for `who`, with the user it has proved to be, once it has.
    pub fn route_as(&self, method: &Method, raw_target: &str, who: &Who<'_>) -> Route {
        let target = match Target::parse(raw_target) {
            Ok(target) => target,
            Err(error) => return Route::Refuse(status(error.status())),
        };
        self.route_target(method, &target, who)
    }

    /// `CGIPassAuth` where an origin-form target leads: whether scripts see `Authorization`.
    pub fn cgi_pass_auth(&self, raw_target: &str) -> bool {
        Target::parse(raw_target).is_ok_and(|t| self.decide(t.path()).rules.auth.cgi_pass_auth)
    }

    /// The sections for a normalised path: the `<Directory>` and `<Files>` sections of the
    /// file it maps to, then the `<Location>`s, merged in Apache's order.
    fn decide(&self, path: &str) -> Decided<'_> {
        let locations = self.locations.iter().filter(|l| l.matches(path));
        if self.sections.is_empty() {
            return Decided { rules: location::merge(locations), options: None, index: None, file: None };
        }
        let Some(file) = self.file_of(path) else {
            return Decided { rules: location::merge(locations), options: None, index: None, file: None };
        };
        // A stat only where the answer could change what applies.
        let is_dir = path.ends_with('/')
            || (self.sections.depends_on_kind(&file) && std::fs::metadata(&file).is_ok_and(|m| m.is_dir()));
        let mut decided = self.decide_for(&file, is_dir, path);
        decided.file = Some(file);
        decided
    }

    /// The sections for `file` (as mapped, in the configured root's spelling) reached by the
    /// URL path `path`.
    fn decide_for(&self, file: &Path, is_dir: bool, path: &str) -> Decided<'_> {
        let applied = self.sections.applied(file, is_dir);
        let locations = self.locations.iter().filter(|l| l.matches(path));
        Decided {
            rules: location::merge(applied.rules.into_iter().chain(locations)),
            options: applied.options,
            index: applied.index,
            file: None,
        }
    }

    /// The filesystem path a request maps to, before any symlink is followed: the script
    /// under a `ScriptAlias`, else where an `Alias` or DocumentRoot puts the path (a script
    /// there is the file up to its name). `None` for what has no file: Handlers and
    /// server-status (only `<Location>` applies to them), and a path no alias can map.
    fn file_of(&self, path: &str) -> Option<PathBuf> {
        self.place_of(path).map(|(_, file)| file)
    }

    /// [`Router::file_of`] with the root it is under (a script directory, an alias's, or
    /// DocumentRoot), as configured.
    fn place_of(&self, path: &str) -> Option<(PathBuf, PathBuf)> {
        let status = self
            .locations
            .iter()
            .filter(|l| l.matches(path))
            .filter_map(|l| l.handler.as_deref())
            .next_back();
        if status == Some("server-status")
            || self.routes.handler_paths.iter().any(|route| weir_wire::route_matches(route, path))
        {
            return None;
        }
        if let Some(index) = self.routes.script_prefixes.iter().position(|p| path.starts_with(p.as_str())) {
            let rest = &path[self.routes.script_prefixes[index].len()..];
            let dir = self.routes.script_dirs.get(index)?;
            let file = match weir_wire::script_path::in_alias(rest) {
                Some(found) => dir.join(found.name),
                None => dir.join(crate::static_files::relative_path(&format!("/{rest}"))?),
            };
            return Some((dir.clone(), file));
        }
        let (root, segments): (&Path, Vec<&str>) = match self.routes.alias(path) {
            Some(Ok(mapped)) => {
                let segments: Vec<&str> = mapped.relative.iter().map(String::as_str).collect();
                let end = if mapped.kind == weir_conf::alias::AliasKind::Scripts {
                    weir_wire::script_path::locate(&mapped.root, &segments).map_or(segments.len(), |i| i + 1)
                } else {
                    self.code_end(&segments)
                };
                let file = mapped.root.join(segments[..end].iter().collect::<PathBuf>());
                return Some((mapped.root.clone(), file));
            }
            Some(Err(_)) => return None,
            None if self.routes.code_extensions.is_empty() => {
                let file = self.mapped_root.join(crate::static_files::relative_path(path)?);
                return Some((self.mapped_root.clone(), file));
            }
            None => (&self.mapped_root, weir_wire::script_path::segments(path)?),
        };
        let end = self.code_end(&segments);
        Some((root.to_path_buf(), root.join(segments[..end].iter().collect::<PathBuf>())))
    }

    /// For a script, what its symlinks lead to: refused where `Options` follow none (or only
    /// their owner's), and the sections of where it really is must let the request in too, as
    /// for a static file, so a link cannot run a script a `<Directory>` closes. Only where
    /// sections exist (without them, nothing here could refuse).
    fn script_after_resolving(
        &self,
        path: &str,
        options: Option<weir_conf::directory::Options>,
        who: &Who<'_>,
    ) -> Option<Route> {
        if self.sections.is_empty() {
            return None;
        }
        let (root, file) = self.place_of(path)?;
        // Not there: the worker answers 404.
        let real = std::fs::canonicalize(&file).ok()?;
        let real_root = std::fs::canonicalize(&root).ok()?;
        let relative = file.strip_prefix(&root).ok()?;
        if !Links::of(options).allow(&root, relative) {
            return Some(Route::Refuse(StatusCode::FORBIDDEN));
        }
        // In the spelling the sections are written in: under the root as configured, or the
        // real path itself when a link leads out of the root.
        let mapped = match real.strip_prefix(&real_root) {
            Ok(inside) => root.join(inside),
            Err(_) => real,
        };
        if mapped == file {
            return None;
        }
        access(&self.decide_for(&mapped, false, path).rules, who)
    }

    /// Where the segments of a path end for the sections: after the first that names code
    /// (what follows is PATH_INFO, so `<Files admin.cgi>` holds for `/admin.cgi/x` too).
    fn code_end(&self, segments: &[&str]) -> usize {
        segments.iter().position(|s| self.routes.is_code(s)).map_or(segments.len(), |i| i + 1)
    }

    /// `Require` from the sections of what a request reaches after its symlinks and index are
    /// resolved, when that differs from the path it named: both must let it in, so a symlink
    /// cannot step around a denied directory, nor a `<Files>` around its file. `root` is the
    /// real directory the path was resolved under (DocumentRoot's or an alias's).
    fn access_after_resolving(
        &self,
        named: &str,
        file: Option<&Path>,
        root: &Path,
        real: &Path,
        is_dir: bool,
        who: &Who<'_>,
    ) -> Option<Route> {
        if self.sections.is_empty() {
            return None;
        }
        // The real path in the spelling the sections are written in: under the root as
        // configured (an alias's directory, or DocumentRoot).
        let configured = match self.routes.alias(named) {
            Some(Ok(mapped)) => mapped.root,
            Some(Err(_)) => return Some(Route::Refuse(StatusCode::NOT_FOUND)),
            None => self.mapped_root.clone(),
        };
        let Ok(inside) = real.strip_prefix(root) else {
            return Some(Route::Refuse(StatusCode::FORBIDDEN));
        };
        let mapped = if inside.as_os_str().is_empty() { configured } else { configured.join(inside) };
        if file == Some(mapped.as_path()) {
            return None;
        }
        access(&self.decide_for(&mapped, is_dir, named).rules, who)
    }

    fn route_target(&self, method: &Method, target: &Target, who: &Who<'_>) -> Route {
        let path = target.path();
        if self.dotfile_refused(path) {
            return Route::Refuse(StatusCode::FORBIDDEN);
        }
        let decided = self.decide(path);
        if let Some(refusal) = access(&decided.rules, who) {
            return refusal;
        }
        // After access (stricter than Apache, whose Redirect runs before it): a denied place
        // tells nothing, not even where it moved.
        if let Some(moved) = alias::redirect(&self.redirects, path, target.query()) {
            return Route::Moved(moved);
        }
        if decided.rules.handler == Some("server-status") {
            return Route::Status;
        }
        if method == Method::TRACE {
            return Route::Trace;
        }
        if self.routes.to_pool(path) {
            if let Some(status) = self.routes.refusal(path) {
                return Route::Refuse(status);
            }
            if !self.exec_cgi(path) {
                return Route::Refuse(StatusCode::FORBIDDEN);
            }
            if let Some(refusal) = self.script_after_resolving(path, decided.options, who) {
                return refusal;
            }
            return Route::Pool(target.encoded());
        }
        let (root, relative) = match self.file_system_place(path) {
            Ok(place) => place,
            Err(status) => return Route::Refuse(status),
        };
        let index = decided.index.unwrap_or(&self.static_files.index);
        let links = Links::of(decided.options);
        match self.static_files.resolve_under(method, path, (&root, &relative), links, index) {
            Resolved::File(real) => {
                if let Some(refusal) =
                    self.access_after_resolving(path, decided.file.as_deref(), &root, &real, false, who)
                {
                    return refusal;
                }
                self.checked_file(path, &root, real)
            }
            Resolved::NoIndex(real) => {
                if let Some(refusal) =
                    self.access_after_resolving(path, decided.file.as_deref(), &root, &real, true, who)
                {
                    return refusal;
                }
                if !decided.options.is_some_and(|o| o.indexes) {
                    return Route::Refuse(StatusCode::FORBIDDEN);
                }
                match self.checked_file(path, &root, real) {
                    Route::File(real) => Route::Listing(path.to_string(), self.listing(path, &real, who)),
                    refusal => refusal,
                }
            }
            Resolved::Code(index_path) => {
                let index_decided = self.decide(&index_path);
                if let Some(refusal) = access(&index_decided.rules, who) {
                    return refusal;
                }
                if !self.exec_cgi(&index_path) {
                    return Route::Refuse(StatusCode::FORBIDDEN);
                }
                if let Some(refusal) = self.script_after_resolving(&index_path, index_decided.options, who) {
                    return refusal;
                }
                let mut pool_target = target::encode_path(&index_path);
                if let Some(query) = target.query() {
                    pool_target.push('?');
                    pool_target.push_str(query);
                }
                Route::Pool(pool_target)
            }
            Resolved::Directory => {
                // Built from the normalised path, which starts with exactly one '/': never a
                // protocol-relative (`//host/`) or other-host URL.
                let mut location = target::encode_path(&format!("{path}/"));
                if let Some(query) = target.query() {
                    location.push('?');
                    location.push_str(query);
                }
                Route::Redirect(location)
            }
            Resolved::MethodNotAllowed => Route::MethodNotAllowed,
            Resolved::Refuse(status) => Route::Refuse(status),
        }
    }

    /// `Options ExecCGI` for an `AddHandler cgi-script` file under DocumentRoot (a
    /// ScriptAlias needs none, and `CGIInterpreter` files are run by their interpreter): where
    /// `Options` apply without it, 403, as Apache answers; where none applies, weir runs it as
    /// it always has. The worker checks the same before it runs anything.
    fn exec_cgi(&self, path: &str) -> bool {
        if self.sections.is_empty()
            || self.routes.script_prefixes.iter().any(|p| path.starts_with(p.as_str()))
        {
            return true;
        }
        let segments: Vec<String> = match self.routes.alias(path) {
            Some(Ok(mapped)) if mapped.kind == weir_conf::alias::AliasKind::Scripts => return true,
            Some(Ok(mapped)) => mapped.relative,
            Some(Err(_)) => return true,
            None => match weir_wire::script_path::segments(path) {
                Some(segments) => segments.into_iter().map(str::to_string).collect(),
                None => return true,
            },
        };
        let cgi = self.routes.cgi_script_extensions.iter().map(String::as_str);
        let Some(name) = segments.iter().find(|s| self.routes.is_code(s)) else {
            return true;
        };
        if !weir_wire::script_path::has_extension(name, cgi) {
            return true;
        }
        self.file_of(path).is_none_or(|file| weir_conf::directory::exec_cgi(&self.sections, &file))
    }

    /// The entries of a directory a listing may show: those whose own route is a file or a
    /// directory for this client (so no dotfile, script, denied section or refused symlink is
    /// named), sorted by name.
    fn listing(&self, path: &str, real: &Path, who: &Who<'_>) -> Vec<crate::listing::Entry> {
        let Ok(dir) = std::fs::read_dir(real) else {
            return Vec::new();
        };
        let mut entries: Vec<crate::listing::Entry> = dir
            // Each entry is routed (a few stats) on the runtime thread: a bound keeps one
            // request for a huge directory from holding it for long.
            .take(MAX_LISTED)
            .filter_map(|entry| {
                let name = entry.ok()?.file_name().into_string().ok()?;
                if name.starts_with('.') || self.routes.is_code(&name) {
                    return None;
                }
                let target = Target::parse(&target::encode_path(&format!("{path}{name}"))).ok()?;
                // Only names that normalise to themselves: nothing a listing links to may
                // route elsewhere.
                if target.path() != format!("{path}{name}") {
                    return None;
                }
                match self.route_target(&Method::GET, &target, who) {
                    Route::File(_) => Some(crate::listing::Entry { name, is_dir: false }),
                    Route::Redirect(_) => Some(crate::listing::Entry { name, is_dir: true }),
                    _ => None,
                }
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        entries
    }

    /// The one mapping from a normalised URL path to the file system, for what the edge
    /// serves itself: the first `Alias`/`AliasMatch` that takes the path (its directory,
    /// canonical, and the plain names under it), else DocumentRoot and the path's own
    /// segments. Whatever is found must stay under the root returned. `Err`: nothing there can
    /// answer (a capture that would climb out, a missing alias directory).
    pub fn file_system_place(&self, path: &str) -> Result<(Cow<'_, Path>, PathBuf), StatusCode> {
        match self.routes.alias(path) {
            None => match crate::static_files::relative_path(path) {
                Some(relative) => Ok((Cow::Borrowed(self.static_files.root.as_path()), relative)),
                None => Err(StatusCode::NOT_FOUND),
            },
            Some(Err(_)) => Err(StatusCode::NOT_FOUND),
            Some(Ok(mapped)) => match std::fs::canonicalize(&mapped.root) {
                Ok(root) => Ok((Cow::Owned(root), mapped.relative_path())),
                Err(_) => Err(StatusCode::NOT_FOUND),
            },
        }
    }

    /// Dotfiles: a path segment that starts with `.` is refused (403), as Apache's Debian default
    /// refuses `.ht*`, except `/.well-known/` (RFC 8615) and a segment that a matching
    /// `<Location>` names itself at that place (`<Location /app/.public>`), whose `Require`
    /// then decides. `.ht*` is refused always: no section reopens `.htaccess` or `.htpasswd`.
    fn dotfile_refused(&self, path: &str) -> bool {
        path.split('/').filter(|s| !s.is_empty()).enumerate().any(|(index, segment)| {
            if !segment.starts_with('.') {
                return false;
            }
            if is_ht(segment) {
                return true;
            }
            if index == 0 && segment == ".well-known" {
                return false;
            }
            !self.locations.iter().any(|section| {
                section.matches(path)
                    && section.path.split('/').filter(|s| !s.is_empty()).nth(index) == Some(segment)
            })
        })
    }

    /// The last checks on a file found for a static route: the real path (after symlinks) is
    /// no script directory's file, and holds no dotfile the URL did not name.
    fn checked_file(&self, path: &str, root: &Path, real: PathBuf) -> Route {
        if self.script_dirs.iter().any(|region| region.contains(&real)) {
            return Route::Refuse(StatusCode::FORBIDDEN);
        }
        // A dot name under the root is served only where the request names it as a whole
        // segment (one the dot-segment rule let through: `.well-known`, or a <Location> that
        // reopens it). A segment merely holding a dot name (`/.well-known/x-.env` mapped by
        // `AliasMatch ^/\.well-known/x-(.*)$ /srv/$1` to `/srv/.env`) names none.
        let relative = real.strip_prefix(root).unwrap_or(Path::new(""));
        let hidden = relative.components().any(|c| {
            let name = c.as_os_str().as_encoded_bytes();
            name.starts_with(b".") && (is_ht_bytes(name) || !path.split('/').any(|s| s.as_bytes() == name))
        });
        if hidden {
            return Route::Refuse(StatusCode::FORBIDDEN);
        }
        Route::File(real)
    }
}

/// What the merged `Require` rules say for `who`, as mod_authz_core's `authorize_user_core`
/// decides: `None` to go on. Before a user is known, a denial is 403 (no password would help);
/// a rule that wants a user asks for one; once a user is known and Basic applies, a denial is
/// 401, so the browser may ask for another.
fn access(sections: &Effective<'_>, who: &Who<'_>) -> Option<Route> {
    let auth = &sections.auth;
    match sections.verdict(who) {
        None if auth.basic => Some(Route::Misconfigured(
            "AH01627: AuthType configured with no corresponding authorization directives",
        )),
        None | Some(Verdict::Granted) => None,
        Some(Verdict::DeniedNoUser) => match (who.user, auth.basic, auth.realm, auth.user_file) {
            (Some(_), ..) => Some(Route::Unauthorized(auth.realm.unwrap_or_default().to_string())),
            (None, true, Some(realm), Some(file)) => Some(Route::Authenticate(Challenge {
                realm: realm.to_string(),
                user_file: file.to_path_buf(),
            })),
            (None, ..) => Some(Route::Misconfigured(
                "a Require rule wants a user, and no AuthType Basic with AuthName and AuthUserFile applies",
            )),
        },
        Some(Verdict::Denied | Verdict::Neutral) if who.user.is_some() && auth.basic => {
            Some(Route::Unauthorized(auth.realm.unwrap_or_default().to_string()))
        }
        Some(Verdict::Denied | Verdict::Neutral) => Some(Route::Refuse(StatusCode::FORBIDDEN)),
    }
}

/// `.ht…` in any case (`.htaccess`, `.htpasswd`, `.HTaccess`).
fn is_ht(segment: &str) -> bool {
    is_ht_bytes(segment.as_bytes())
}

fn is_ht_bytes(name: &[u8]) -> bool {
    name.len() >= 3 && name[..3].eq_ignore_ascii_case(b".ht")
}

fn status(code: u16) -> StatusCode {
    StatusCode::from_u16(code).unwrap_or(StatusCode::BAD_REQUEST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;
    use weir_conf::location::Require;

    /// A DocumentRoot with a script directory inside it (the layout that leaked script source),
    /// static files, dotfiles, a directory, and PHP files for a CGIInterpreter.
    struct Tree {
        dir: PathBuf,
        router: Router,
    }

    impl Drop for Tree {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn tree() -> Tree {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "weir-router-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let root = dir.join("htdocs");
        for sub in ["cgi-bin", "private", "assets", ".git", ".well-known/acme", "app"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        let files = [
            ("cgi-bin/env", "#!/bin/sh\necho SECRET-SCRIPT-SOURCE\n"),
            ("private/x.txt", "private"),
            ("assets/a.css", "css"),
            (".htaccess", "deny"),
            (".env", "TOKEN=1"),
            (".git/config", "token"),
            (".well-known/acme/token", "acme"),
            ("app/index.php", "<?php SECRET ?>"),
            ("index.html", "home"),
            ("é.txt", "accent"),
        ];
        for (name, text) in files {
            std::fs::write(root.join(name), text).unwrap();
        }
        std::fs::set_permissions(root.join("cgi-bin/env"), std::fs::Permissions::from_mode(0o755)).unwrap();
        // Outside DocumentRoot: an Alias and an AliasMatch directory, with a secret beside it.
        std::fs::create_dir_all(dir.join("outside/m")).unwrap();
        std::fs::write(dir.join("outside/pub.txt"), "public").unwrap();
        std::fs::write(dir.join("outside/.env"), "SECRET=1").unwrap();
        std::fs::write(dir.join("outside/m/x.txt"), "m").unwrap();
        std::fs::write(dir.join("secret.txt"), "SECRET").unwrap();
        let url_aliases = vec![
            weir_conf::alias::AliasRule::alias("/ext", dir.join("outside")).unwrap(),
            weir_conf::alias::AliasRule::matching(
                "AliasMatch",
                "^/m(.*)$",
                &format!("{}/outside/m/$1", dir.display()),
                alias::AliasKind::Files,
            )
            .unwrap(),
        ];
        // Another name for the script directory: a symlink under DocumentRoot.
        std::os::unix::fs::symlink(root.join("cgi-bin"), root.join("scripts")).unwrap();
        let root = std::fs::canonicalize(&root).unwrap();
        let routes = PoolRoutes {
            script_prefixes: vec!["/cgi-bin/".into()],
            script_dirs: vec![root.join("cgi-bin")],
            url_aliases,
            document_root: Some(root.clone()),
            handler_paths: vec!["/ingest".into()],
            code_extensions: vec![".php".into()],
            cgi_script_extensions: Vec::new(),
            runner: weir_wire::script_path::Runner::current(),
        };
        let static_files = StaticFiles {
            root,
            index: vec!["index.html".into(), "index.php".into()],
            routes: routes.clone(),
            types: Vec::new().into(),
        };
        let section = |path: &str, handler: Option<&str>, require: Vec<Require>| Location {
            handler: handler.map(str::to_string),
            require,
            ..Location::at(path)
        };
        let locations = vec![
            section("/private", None, vec![Require::AllDenied]),
            section("/server-status", Some("server-status"), vec![Require::Local]),
        ];
        Tree { router: Router::new(routes, static_files, locations), dir }
    }

    fn get(tree: &Tree, target: &str) -> Route {
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        tree.router.route(&Method::GET, target, peer, "192.0.2.1".parse().unwrap())
    }

    #[test]
    fn the_outside_reports_spellings() {
        let tree = tree();
        for spelling in
            ["/cgi-bin/env", "/%63gi-bin/env", "//cgi-bin/env", "/cgi%2Dbin/env", "/x/../cgi-bin/env"]
        {
            assert_eq!(get(&tree, spelling), Route::Pool("/cgi-bin/env".into()), "{spelling}");
        }
        assert_eq!(
            get(&tree, "/scripts/env"),
            Route::Refuse(StatusCode::FORBIDDEN),
            "script dir by a symlink"
        );
        for spelling in ["/private/x.txt", "/private//x.txt", "//private/x.txt", "/%70rivate/x.txt"] {
            assert_eq!(get(&tree, spelling), Route::Refuse(StatusCode::FORBIDDEN), "{spelling}");
        }
        for spelling in
            ["/.htaccess", "/.env", "/.git/config", "/%2ehtaccess", "/.HTaccess", "/assets/../.env"]
        {
            assert_eq!(get(&tree, spelling), Route::Refuse(StatusCode::FORBIDDEN), "{spelling}");
        }
        assert!(matches!(get(&tree, "/.well-known/acme/token"), Route::File(_)));
        assert!(matches!(get(&tree, "/ext/pub.txt"), Route::File(_)));
        assert!(matches!(get(&tree, "/m/x.txt"), Route::File(_)));
        assert_eq!(get(&tree, "/ext/.env"), Route::Refuse(StatusCode::FORBIDDEN));
        assert_eq!(get(&tree, "/m../secret.txt"), Route::Refuse(StatusCode::NOT_FOUND));
        assert_eq!(get(&tree, "/ext"), Route::Redirect("/ext/".into()));
        assert_eq!(get(&tree, "/%C3%A9php"), Route::Refuse(StatusCode::NOT_FOUND));
        assert_eq!(get(&tree, "/a/%FFphp"), Route::Refuse(StatusCode::BAD_REQUEST));
        assert_eq!(get(&tree, "//assets"), Route::Redirect("/assets/".into()));
        assert_eq!(get(&tree, "/assets?x=1"), Route::Redirect("/assets/?x=1".into()));
        assert_eq!(get(&tree, "/app/"), Route::Pool("/app/index.php".into()));
        assert_eq!(get(&tree, "/%2Fetc/passwd"), Route::Refuse(StatusCode::NOT_FOUND));
        assert_eq!(get(&tree, "/../etc/passwd"), Route::Refuse(StatusCode::BAD_REQUEST));
    }

    #[test]
    fn a_location_that_names_a_dot_segment_reopens_it() {
        let mut tree = tree();
        tree.router.locations.push(Location { require: vec![Require::AllGranted], ..Location::at("/.git") });
        assert!(matches!(get(&tree, "/.git/config"), Route::File(_)));
        assert_eq!(get(&tree, "/.env"), Route::Refuse(StatusCode::FORBIDDEN));
        // `/` names no dot segment: it reopens nothing.
        tree.router.locations.push(Location { require: vec![Require::AllGranted], ..Location::at("/") });
        assert_eq!(get(&tree, "/.env"), Route::Refuse(StatusCode::FORBIDDEN));
        assert_eq!(get(&tree, "/.htaccess"), Route::Refuse(StatusCode::FORBIDDEN));
    }

    /// Raw targets over the tree's names, in many spellings.
    fn raw_target() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            Just("cgi-bin"),
            Just("%63gi-bin"),
            Just("cgi%2Dbin"),
            Just("CGI-BIN"),
            Just("scripts"),
            Just("env"),
            Just("%65nv"),
            Just("private"),
            Just("%70rivate"),
            Just("x.txt"),
            Just("assets"),
            Just("a.css"),
            Just("app"),
            Just("index.php"),
            Just("index%2Ephp"),
            Just(".git"),
            Just("%2egit"),
            Just("config"),
            Just(".htaccess"),
            Just(".well-known"),
            Just("acme"),
            Just("token"),
            Just("ingest"),
            Just("server-status"),
            Just("%C3%A9.txt"),
            Just("%FF"),
            Just("%2F"),
            Just("ext"),
            Just("pub.txt"),
            Just(".env"),
            Just("m.."),
            Just("m%2e%2e"),
            Just("m"),
            Just("secret.txt"),
            Just("."),
            Just(".."),
            Just("%2e%2e"),
            Just(""),
        ];
        (proptest::collection::vec(segment, 0..6), proptest::option::of(Just("q=1"))).prop_map(
            |(segments, query)| {
                let mut target = format!("/{}", segments.join("/"));
                if let Some(query) = query {
                    target.push('?');
                    target.push_str(query);
                }
                target
            },
        )
    }

    /// The route of a raw target is the route of its normalised form, and no route sends the
    /// bytes of a file in a script directory, of a denied `<Location>`, or of a dotfile other
    /// than `.well-known`'s.
    #[test]
    fn every_spelling_routes_as_its_normal_form() {
        let tree = tree();
        let root = tree.router.static_files.root.clone();
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(3000));
        let outcome = runner.run(&raw_target(), |raw| {
            let route = get(&tree, &raw);
            if let Ok(target) = Target::parse(&raw) {
                prop_assert_eq!(
                    &route,
                    &get(&tree, &target.encoded()),
                    "{} normalised to {}",
                    raw,
                    target.encoded()
                );
            }
            if let Route::File(real) = &route {
                let text = std::fs::read_to_string(real).unwrap_or_default();
                prop_assert!(!text.contains("SECRET"), "{} sent {}", raw, real.display());
                for hidden in ["cgi-bin", ".git", ".htaccess", ".env", "private"] {
                    prop_assert!(!real.starts_with(root.join(hidden)), "{} sent {}", raw, real.display());
                }
            }
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
    }

    /// With `<Directory>` and `<Files>` sections in place of the `<Location>`: no spelling
    /// sends a file they deny, and no listing names one.
    #[test]
    fn no_spelling_steps_around_a_directory_or_files_section() {
        let mut tree = tree();
        let root = tree.router.static_files.root.clone();
        std::os::unix::fs::symlink(root.join("assets"), root.join("app/assets-link")).unwrap();
        let text = format!(
            "Listen 80\n<Directory {r}>\n Options Indexes FollowSymLinks\n</Directory>\n\
             <Directory {r}/assets>\n Require all denied\n</Directory>\n\
             <FilesMatch \"\\.txt$\">\n Require all denied\n</FilesMatch>\n",
            r = root.display()
        );
        let config = weir_conf::Config::from_text(
            &text,
            Path::new("t.conf"),
            weir_conf::Source::BuiltIn,
            root.clone(),
        )
        .unwrap();
        tree.router = tree.router.clone().with_sections(config.sections.clone(), &root);
        tree.router.locations.clear();
        assert_eq!(get(&tree, "/assets/a.css"), Route::Refuse(StatusCode::FORBIDDEN));
        assert_eq!(get(&tree, "/app/assets-link/a.css"), Route::Refuse(StatusCode::FORBIDDEN));
        assert_eq!(get(&tree, "/private/x.txt"), Route::Refuse(StatusCode::FORBIDDEN));
        assert!(matches!(get(&tree, "/private/"), Route::Listing(..)));
        let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(2000));
        let outcome = runner.run(&raw_target(), |raw| {
            let route = get(&tree, &raw);
            if let Ok(target) = Target::parse(&raw) {
                prop_assert_eq!(&route, &get(&tree, &target.encoded()), "{}", raw);
            }
            match &route {
                Route::File(real) => {
                    prop_assert!(!real.starts_with(root.join("assets")), "{} sent {}", raw, real.display());
                    prop_assert!(
                        !real.to_string_lossy().ends_with(".txt"),
                        "{} sent {}",
                        raw,
                        real.display()
                    );
                }
                Route::Listing(_, entries) => {
                    for entry in entries {
                        prop_assert!(
                            !entry.name.ends_with(".txt") && !entry.name.starts_with('.'),
                            "{}",
                            raw
                        );
                        prop_assert!(entry.name != "cgi-bin" && entry.name != "scripts", "{}", raw);
                    }
                }
                _ => {}
            }
            Ok(())
        });
        if let Err(failure) = outcome {
            panic!("{failure}");
        }
    }
}
