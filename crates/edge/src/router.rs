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
use weir_conf::location::{self, Effective, Location, Verdict, Who};
use weir_wire::target::{self, Target};

use crate::auth_basic::Challenge;

use crate::routes::PoolRoutes;
use crate::static_files::{Resolved, StaticFiles};

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
    /// Script directories, canonical: no static route may send a file from one.
    script_dirs: Vec<PathBuf>,
    /// The site's `Redirect` family, in order: answered before any alias or route.
    redirects: Vec<RedirectRule>,
}

impl Router {
    pub fn new(routes: PoolRoutes, static_files: StaticFiles, locations: Vec<Location>) -> Router {
        let script_dirs = routes
            .script_dirs
            .iter()
            .map(PathBuf::as_path)
            .chain(
                routes
                    .url_aliases
                    .iter()
                    .filter(|a| a.kind == alias::AliasKind::Scripts)
                    .map(|a| a.directory()),
            )
            .filter_map(|dir| std::fs::canonicalize(dir).ok())
            .collect();
        Router { routes, static_files, locations, script_dirs, redirects: Vec::new() }
    }

    /// With the site's `Redirect` rules.
    pub fn with_redirects(mut self, redirects: Vec<RedirectRule>) -> Router {
        self.redirects = redirects;
        self
    }

    /// Also refuses to send files from these directories (every site's script directories:
    /// another site's DocumentRoot may hold them).
    pub fn refusing_script_dirs(mut self, dirs: &[PathBuf]) -> Router {
        for dir in dirs.iter().filter_map(|dir| std::fs::canonicalize(dir).ok()) {
            if !self.script_dirs.contains(&dir) {
                self.script_dirs.push(dir);
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
        Target::parse(raw_target)
            .is_ok_and(|t| location::effective(&self.locations, t.path()).auth.cgi_pass_auth)
    }

    fn route_target(&self, method: &Method, target: &Target, who: &Who<'_>) -> Route {
        let path = target.path();
        let sections = location::effective(&self.locations, path);
        if self.dotfile_refused(path) {
            return Route::Refuse(StatusCode::FORBIDDEN);
        }
        if let Some(refusal) = access(&sections, who) {
            return refusal;
        }
        // After access (stricter than Apache, whose Redirect runs before it): a denied place
        // tells nothing, not even where it moved.
        if let Some(moved) = alias::redirect(&self.redirects, path, target.query()) {
            return Route::Moved(moved);
        }
        if sections.handler == Some("server-status") {
            return Route::Status;
        }
        if method == Method::TRACE {
            return Route::Trace;
        }
        if self.routes.to_pool(path) {
            if let Some(status) = self.routes.refusal(path) {
                return Route::Refuse(status);
            }
            return Route::Pool(target.encoded());
        }
        let (root, relative) = match self.file_system_place(path) {
            Ok(place) => place,
            Err(status) => return Route::Refuse(status),
        };
        let resolved = self.static_files.resolve_under(method, path, &root, &relative);
        match resolved {
            Resolved::File(real) => self.checked_file(path, &root, real),
            Resolved::Code(index_path) => {
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
        if self.script_dirs.iter().any(|dir| real.starts_with(dir)) {
            return Route::Refuse(StatusCode::FORBIDDEN);
        }
        let url_names_a_dotfile = path.split('/').any(|s| s.starts_with('.'));
        let relative = real.strip_prefix(root).unwrap_or(Path::new(""));
        let hidden = relative.components().any(|c| {
            let name = c.as_os_str().as_encoded_bytes();
            name.starts_with(b".") && (is_ht_bytes(name) || !url_names_a_dotfile)
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
}
