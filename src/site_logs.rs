//! Each `<VirtualHost>`'s own `ErrorLog`: the lines about one site's requests (its scripts'
//! stderr, its refusals and access errors) go to its file, every other line to the main one.
//!
//! The supervisor opens the files as root, as it opens the main ErrorLog, before it forks a
//! generation's roles: they inherit the descriptors (and this table, by fork), and workers
//! inherit them from the pool master. A reload opens them again (so logrotate's moved files
//! are let go) and puts the old ones back if the new generation never becomes ready. A line
//! belongs to a site when it is logged inside that site's `site` span (see [`SITE_SPAN`]); the
//! main server's requests open no span, so they cost nothing.

use std::fs::File;
use std::os::fd::{AsRawFd, RawFd};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use weir_conf::Config;

/// The name of the span a site's request is served in, with its number as the `site` field.
pub const SITE_SPAN: &str = "site";

/// The open files, by site number (0, the main server, is always `None`: its lines go to
/// standard error, which is the main ErrorLog).
static SITE_LOGS: RwLock<Vec<Option<Arc<File>>>> = RwLock::new(Vec::new());

/// The table as it was before [`open`]: put back by [`Previous::restore`].
pub struct Previous(Vec<Option<Arc<File>>>);

impl Previous {
    pub fn restore(self) {
        if let Ok(mut logs) = SITE_LOGS.write() {
            *logs = self.0;
        }
    }
}

/// Opens every site's own ErrorLog (one descriptor per file, shared by the sites naming it)
/// and makes them the table; a site naming the main server's file, or none, gets `None`.
pub fn open(config: &Config) -> Result<Previous, String> {
    let mut opened: Vec<(PathBuf, Arc<File>)> = Vec::new();
    let mut table = Vec::new();
    for (number, site) in config.sites().iter().enumerate() {
        let own =
            site.error_log.as_ref().filter(|path| number > 0 && Some(*path) != config.error_log.as_ref());
        let Some(path) = own else {
            table.push(None);
            continue;
        };
        let file = match opened.iter().find(|(known, _)| known == path) {
            Some((_, file)) => file.clone(),
            None => {
                let file = weir_edge::access_log::open_log_file(path)
                    .map_err(|e| format!("ErrorLog {} of {}: {e}", path.display(), site.label()))?;
                let file = Arc::new(file);
                opened.push((path.clone(), file.clone()));
                file
            }
        };
        table.push(Some(file));
    }
    let mut logs = SITE_LOGS.write().map_err(|_| "the site error logs' table is poisoned".to_string())?;
    Ok(Previous(std::mem::replace(&mut *logs, table)))
}

/// The descriptors of the open files: kept open across the fork of each role and worker.
pub fn descriptors() -> Vec<RawFd> {
    let Ok(logs) = SITE_LOGS.read() else {
        return Vec::new();
    };
    let mut fds: Vec<RawFd> = logs.iter().flatten().map(|file| file.as_raw_fd()).collect();
    fds.sort_unstable();
    fds.dedup();
    fds
}

/// The file of site `number`, if it has one of its own.
pub fn file(number: usize) -> Option<Arc<File>> {
    SITE_LOGS.read().ok()?.get(number).cloned().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_descriptor_per_file_and_none_for_the_main_log() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        let text = format!(
            "Listen 127.0.0.1:0 http\nErrorLog {d}/main.log\n\
             <VirtualHost *:*>\nServerName a.test\nErrorLog {d}/a.log\n</VirtualHost>\n\
             <VirtualHost *:*>\nServerName b.test\nErrorLog {d}/a.log\n</VirtualHost>\n\
             <VirtualHost *:*>\nServerName c.test\nErrorLog {d}/main.log\n</VirtualHost>\n\
             <VirtualHost *:*>\nServerName d.test\n</VirtualHost>\n"
        );
        let config = Config::from_text(
            &text,
            &dir.path().join("weir.conf"),
            weir_conf::Source::File(dir.path().join("weir.conf")),
            dir.path().to_path_buf(),
        )
        .unwrap();
        let previous = open(&config).unwrap();
        let table: Vec<bool> = (0..6).map(|n| file(n).is_some()).collect();
        assert_eq!(table, [false, true, true, false, false, false]);
        assert_eq!(descriptors().len(), 1, "a.test and b.test share one file");
        assert!(dir.path().join("a.log").exists());
        previous.restore();
        assert!(file(1).is_none(), "restored");
    }
}
