//! A `<VirtualHost>`'s own `ErrorLog`: the lines about its requests (its scripts' stderr, the
//! edge's per-request errors) go to its file and no other; process-wide lines stay in the main
//! one; a reload reopens every file (logrotate's way).

use std::path::Path;
use std::time::Duration;

use crate::support::client::Client;
use crate::support::raw;
use crate::support::{wait_until, Site, Weir};

fn get(weir: &Weir, host: &str, path: &str) -> u16 {
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let bytes = client.raw(request.as_bytes()).unwrap_or_else(|e| panic!("GET {path}: {e}"));
    raw::responses(&bytes).unwrap_or_else(|e| panic!("{e}\n{}", weir.logs()))[0].status
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn wait_for(path: &Path, needle: &str, weir: &Weir) {
    assert!(
        wait_until(Duration::from_secs(20), || read(path).contains(needle)),
        "{needle} not in {}:\n{}\n{}",
        path.display(),
        read(path),
        weir.logs()
    );
}

#[test]
fn each_site_gets_only_its_own_lines_and_a_reload_reopens_them() {
    let site = Site::new();
    site.script("talk", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nok\\n'\necho \"STDERR-FROM-$SERVER_NAME\" >&2\n");
    let d = site.path().display().to_string();
    for name in ["a", "b"] {
        std::fs::create_dir_all(site.path().join(name)).unwrap();
        std::fs::write(site.path().join(name).join("index.html"), name).unwrap();
    }
    let weir = site.start(&format!(
        "<VirtualHost *:*>\nServerName a.test\nDocumentRoot {d}/a\nErrorLog {d}/logs/a-error.log\n\
         <Location /broken>\nAuthType Basic\n</Location>\n</VirtualHost>\n\
         <VirtualHost *:*>\nServerName b.test\nDocumentRoot {d}/b\nErrorLog {d}/logs/b-error.log\n</VirtualHost>\n\
         <VirtualHost *:*>\nServerName c.test\nDocumentRoot {d}/b\n</VirtualHost>\n"
    ));
    let (a_log, b_log, main_log) = (
        weir.path().join("logs/a-error.log"),
        weir.path().join("logs/b-error.log"),
        weir.path().join("error.log"),
    );
    assert_eq!(get(&weir, "a.test", "/cgi-bin/talk"), 200);
    assert_eq!(get(&weir, "b.test", "/cgi-bin/talk"), 200);
    assert_eq!(get(&weir, "c.test", "/cgi-bin/talk"), 200);
    // An error the edge logs about one request of site a.
    assert_eq!(get(&weir, "a.test", "/broken"), 500);
    wait_for(&a_log, "STDERR-FROM-a.test", &weir);
    wait_for(&a_log, "AH01627", &weir);
    wait_for(&b_log, "STDERR-FROM-b.test", &weir);
    // A site without an ErrorLog of its own writes to the main one.
    wait_for(&main_log, "STDERR-FROM-c.test", &weir);
    let (a, b, main) = (read(&a_log), read(&b_log), read(&main_log));
    assert!(!a.contains("b.test") && !a.contains("c.test"), "{a}");
    assert!(!b.contains("a.test") && !b.contains("c.test") && !b.contains("AH01627"), "{b}");
    assert!(
        !main.contains("STDERR-FROM-a") && !main.contains("STDERR-FROM-b") && !main.contains("AH01627"),
        "{main}"
    );
    // Process-wide lines stay in the main log.
    assert!(main.contains("resuming normal operations"), "{main}");
    assert!(!a.contains("resuming normal operations"), "{a}");
    // Moved away as logrotate does, then a reload: new lines go to a new file.
    let rotated = weir.path().join("logs/a-error.log.1");
    std::fs::rename(&a_log, &rotated).unwrap();
    let before = read(&main_log).matches("resuming normal operations").count();
    // SAFETY: kill with a pid of the server this test started.
    unsafe { libc::kill(weir.pid(), libc::SIGHUP) };
    assert!(
        wait_until(Duration::from_secs(30), || read(&main_log).matches("resuming normal operations").count()
            > before),
        "the reload did not finish\n{}",
        weir.logs()
    );
    assert!(a_log.exists(), "the reload did not reopen the site's ErrorLog");
    // The old generation's workers may still serve a request or two: ask until a new one does.
    assert!(
        wait_until(Duration::from_secs(20), || {
            get(&weir, "a.test", "/cgi-bin/talk") == 200 && read(&a_log).contains("STDERR-FROM-a.test")
        }),
        "no line in the reopened log\n{}\n{}",
        read(&a_log),
        weir.logs()
    );
    assert!(!read(&b_log).contains("a.test"));
}
