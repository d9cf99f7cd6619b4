//! Which requests go to the pool: the edge serves everything else itself.

use std::path::{Path, PathBuf};

use http::StatusCode;
use weir_conf::alias::{self, AliasKind, AliasRule, Mapped};
use weir_conf::vhost::VirtualHost;
use weir_conf::Config;
use weir_wire::script_path::{self, Verdict};
use weir_wire::{self as wire, target};

/// The paths that name code: script directories, handler paths, interpreter extensions.
#[derive(Debug, Clone, Default)]
pub struct PoolRoutes {
    /// `ScriptAlias` URL prefixes (slashes merged), matched as string prefixes of the
    /// normalised path, as Apache does.
    pub script_prefixes: Vec<String>,
    /// The directory of each prefix in `script_prefixes`, in the same order.
    pub script_dirs: Vec<PathBuf>,
    /// `Alias`, `AliasMatch`, `ScriptAliasMatch`, in order: tried after `script_prefixes`.
    pub url_aliases: Vec<AliasRule>,
    /// DocumentRoot, canonical, where `CGIInterpreter` files are looked up; `None`: no lookups.
    pub document_root: Option<PathBuf>,
    /// Paths of registered Rust handlers (the path and everything below it).
    pub handler_paths: Vec<String>,
    /// `CGIInterpreter` and `AddHandler cgi-script` extensions, with their dot.
    pub code_extensions: Vec<String>,
    /// `AddHandler cgi-script` extensions: such files are run themselves, so must be executable.
    pub cgi_script_extensions: Vec<String>,
    /// Who runs the scripts (the workers' account), for the permission check made from the
    /// head; this process's own identity when weir runs as one user.
    pub runner: script_path::Runner,
}

impl PoolRoutes {
    pub fn new(config: &Config, handler_paths: Vec<String>) -> PoolRoutes {
        PoolRoutes::for_site(config, &config.main_site(), handler_paths)
    }

    /// The pool routes of one site (the main server or a `<VirtualHost>`); `AddHandler
    /// cgi-script` is the server's.
    pub fn for_site(config: &Config, site: &VirtualHost, handler_paths: Vec<String>) -> PoolRoutes {
        PoolRoutes {
            script_prefixes: site
                .script_aliases
                .iter()
                .map(|a| target::merge_slashes(&a.url_prefix))
                .collect(),
            script_dirs: site.script_aliases.iter().map(|a| a.dir.clone()).collect(),
            url_aliases: site.url_aliases.clone(),
            document_root: std::fs::canonicalize(&site.document_root).ok(),
            handler_paths,
            code_extensions: site
                .cgi_interpreters
                .iter()
                .map(|(ext, _)| ext.clone())
                .chain(config.cgi_script_extensions.iter().cloned())
                .collect(),
            cgi_script_extensions: config.cgi_script_extensions.clone(),
            runner: script_path::Runner::current(),
        }
    }

    /// Whether a normalised path ([`weir_wire::target`]) goes to the pool: a Handler's, a
    /// script directory's, or one naming code (by the file-system names an alias maps it to,
    /// else by its own segments under DocumentRoot).
    pub fn to_pool(&self, path: &str) -> bool {
        if self.script_prefix(path).is_some()
            || self.handler_paths.iter().any(|route| wire::route_matches(route, path))
        {
            return true;
        }
        match self.alias(path) {
            Some(Ok(mapped)) => {
                mapped.kind == AliasKind::Scripts || mapped.relative.iter().any(|s| self.is_code(s))
            }
            Some(Err(_)) => false,
            None => path.split('/').any(|segment| self.is_code(segment)),
        }
    }

    /// The `ScriptAlias` a path falls under: its index in `script_prefixes`.
    fn script_prefix(&self, path: &str) -> Option<usize> {
        self.script_prefixes.iter().position(|prefix| path.starts_with(prefix.as_str()))
    }

    /// Where the site's aliases map a normalised path (URL path to file-system path: the one
    /// mapping the edge and the worker share, [`weir_conf::alias`]); `None`: no alias takes it.
    pub fn alias(&self, path: &str) -> Option<Result<Mapped, alias::Escaped>> {
        alias::map(&self.url_aliases, path)
    }

    /// Whether a file name has an interpreter's extension: such a file is run, never sent.
    pub fn is_code(&self, name: &str) -> bool {
        script_path::has_extension(name, self.code_extensions.iter().map(String::as_str))
    }

    /// For a path that goes to the pool: the status the worker would certainly answer without
    /// running anything (a script that is not there, 404, or may not run, 403), decided here
    /// from the head so that its body is never read and stored. `None`: the worker decides
    /// (a Handler's path, a script that can run, or a file that could not be looked at).
    /// Worker and edge share the rules of `weir_wire::script_path`; the lookups are dentry-cache
    /// stats on the runtime thread, as for static files.
    pub fn refusal(&self, path: &str) -> Option<StatusCode> {
        // A Handler answers before CGI in the worker.
        if self.handler_paths.iter().any(|route| wire::route_matches(route, path)) {
            return None;
        }
        if let Some(index) = self.script_prefix(path) {
            let Some(found) = script_path::in_alias(&path[self.script_prefixes[index].len()..]) else {
                return Some(StatusCode::NOT_FOUND);
            };
            let file = self.script_dirs.get(index)?.join(found.name);
            return verdict_status(script_path::alias_verdict(&file, self.is_code(found.name), self.runner));
        }
        match self.alias(path) {
            Some(Err(_)) => Some(StatusCode::NOT_FOUND),
            Some(Ok(mapped)) if mapped.kind == AliasKind::Scripts => {
                let segments: Vec<&str> = mapped.relative.iter().map(String::as_str).collect();
                match script_path::locate(&mapped.root, &segments) {
                    Ok(index) => {
                        let file = mapped.root.join(segments[..=index].iter().collect::<PathBuf>());
                        verdict_status(script_path::alias_verdict(
                            &file,
                            self.is_code(segments[index]),
                            self.runner,
                        ))
                    }
                    Err(verdict) => verdict_status(verdict),
                }
            }
            Some(Ok(mapped)) => {
                let Ok(root) = std::fs::canonicalize(&mapped.root) else {
                    return Some(StatusCode::NOT_FOUND);
                };
                let segments: Vec<&str> = mapped.relative.iter().map(String::as_str).collect();
                self.code_refusal(&root, &segments)
            }
            None => {
                let root = self.document_root.as_ref()?;
                // A segment that is no plain name: the worker finds no script either.
                let Some(segments) = script_path::segments(path) else {
                    return Some(StatusCode::NOT_FOUND);
                };
                self.code_refusal(root, &segments)
            }
        }
    }

    /// The refusal for code named by `segments` under `root` (canonical): the first segment
    /// with a code extension is the file, as the worker finds it.
    fn code_refusal(&self, root: &Path, segments: &[&str]) -> Option<StatusCode> {
        let Some(index) = segments.iter().position(|segment| self.is_code(segment)) else {
            // No code at all (an alias's URL named some): the worker finds no script.
            return Some(StatusCode::NOT_FOUND);
        };
        let relative: PathBuf = segments[..=index].iter().collect();
        match std::fs::canonicalize(root.join(relative)) {
            // Out of the root (a symlink) or not a file: the worker's 404 too.
            Ok(file) if !file.starts_with(root) || !file.is_file() => Some(StatusCode::NOT_FOUND),
            // A cgi-script file the workers may not execute: the worker's 403 too.
            Ok(file)
                if script_path::has_extension(
                    segments[index],
                    self.cgi_script_extensions.iter().map(String::as_str),
                ) && script_path::alias_verdict(&file, false, self.runner) == Verdict::Forbidden =>
            {
                Some(StatusCode::FORBIDDEN)
            }
            Ok(_) => None,
            Err(error) if script_path::missing(&error) => Some(StatusCode::NOT_FOUND),
            Err(_) => None,
        }
    }
}

/// The status the worker answers a script's verdict with; `None`: it runs (or the worker looks).
fn verdict_status(verdict: Verdict) -> Option<StatusCode> {
    match verdict {
        Verdict::NotFound => Some(StatusCode::NOT_FOUND),
        Verdict::Forbidden => Some(StatusCode::FORBIDDEN),
        Verdict::Run | Verdict::Unknown => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing() {
        let routes = PoolRoutes {
            script_prefixes: vec!["/cgi-bin/".into()],
            handler_paths: vec!["/ingest".into()],
            code_extensions: vec![".php".into()],
            ..PoolRoutes::default()
        };
        assert!(routes.to_pool("/cgi-bin/x"));
        assert!(routes.to_pool("/ingest"));
        assert!(routes.to_pool("/ingest/count"));
        assert!(!routes.to_pool("/ingestion"));
        assert!(routes.to_pool("/app/index.php/extra"));
        assert!(routes.to_pool("/INDEX.PHP"));
        assert!(!routes.to_pool("/php/readme.txt"));
        assert!(!routes.to_pool("/.php"));
    }
}
