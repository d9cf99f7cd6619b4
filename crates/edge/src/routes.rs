//! Which requests go to the pool: the edge serves everything else itself.

use weir_conf::{wire, Config};

/// The paths that name code: script directories, handler paths, interpreter extensions.
#[derive(Debug, Clone, Default)]
pub struct PoolRoutes {
    /// `ScriptAlias` URL prefixes, matched literally as Apache does.
    pub script_prefixes: Vec<String>,
    /// Paths of registered Rust handlers (the path and everything below it).
    pub handler_paths: Vec<String>,
    /// `CGIInterpreter` extensions, with their dot.
    pub code_extensions: Vec<String>,
}

impl PoolRoutes {
    pub fn new(config: &Config, handler_paths: Vec<String>) -> PoolRoutes {
        PoolRoutes {
            script_prefixes: config.script_aliases.iter().map(|a| a.url_prefix.clone()).collect(),
            handler_paths,
            code_extensions: config.cgi_interpreters.iter().map(|(ext, _)| ext.clone()).collect(),
        }
    }

    /// Whether a (still encoded) URL path goes to the pool.
    pub fn to_pool(&self, path: &str) -> bool {
        self.script_prefixes.iter().any(|prefix| path.starts_with(prefix.as_str()))
            || self.handler_paths.iter().any(|route| wire::route_matches(route, path))
            || path.split('/').any(|segment| {
                let decoded = percent_encoding::percent_decode_str(segment).decode_utf8_lossy();
                self.is_code(&decoded)
            })
    }

    /// Whether a file name has an interpreter's extension: such a file is run, never sent.
    pub fn is_code(&self, name: &str) -> bool {
        self.code_extensions
            .iter()
            .any(|ext| name.len() > ext.len() && name[name.len() - ext.len()..].eq_ignore_ascii_case(ext))
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
        };
        assert!(routes.to_pool("/cgi-bin/x"));
        assert!(routes.to_pool("/ingest"));
        assert!(routes.to_pool("/ingest/count"));
        assert!(!routes.to_pool("/ingestion"));
        assert!(routes.to_pool("/app/index.php/extra"));
        assert!(routes.to_pool("/app/index%2Ephp"));
        assert!(routes.to_pool("/INDEX.PHP"));
        assert!(!routes.to_pool("/php/readme.txt"));
        assert!(!routes.to_pool("/.php"));
    }
}
