//! One meaning per request: every spelling of a path is routed, checked against `<Location>` and
//! `Require`, and answered as its normalised form, over HTTP/1.1 and h2 alike. Each test is one
//! of the ways an outside review walked around the edge by spelling a path differently.

use crate::support::client::Proto;
use crate::support::{Answer, Site, Weir};

fn get(weir: &Weir, proto: Proto, target: &str) -> Answer {
    crate::support::get_as_written(weir, proto, target)
}

/// A site whose script directory lies inside DocumentRoot, the layout in which `/%63gi-bin/env`
/// used to send the script's source.
fn scripts_under_document_root(extra: &str) -> Weir {
    let site = Site::new();
    site.doc(
        "cgi-bin/env",
        b"#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"RAN SCRIPT_NAME=$SCRIPT_NAME\"\necho \"PATH_INFO=$PATH_INFO\"\necho \"PATH_TRANSLATED=$PATH_TRANSLATED\"\n# SOURCE-MARKER\n",
    );
    let script = site.path().join("htdocs/cgi-bin/env");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let d = site.path().display().to_string();
    let conf = site.config(extra).replace(
        &format!("ScriptAlias /cgi-bin/ {d}/cgi-bin/"),
        &format!("ScriptAlias /cgi-bin/ {d}/htdocs/cgi-bin/"),
    );
    site.start_with(&conf)
}

#[test]
fn no_spelling_of_a_script_path_sends_its_source() {
    let weir = scripts_under_document_root("");
    for proto in [Proto::H1, Proto::H2] {
        for spelling in
            ["/cgi-bin/env", "/%63gi-bin/env", "//cgi-bin/env", "/cgi%2Dbin/env", "/x/../cgi-bin/env"]
        {
            let answer = get(&weir, proto, spelling);
            assert!(!answer.body.contains("SOURCE-MARKER"), "{proto:?} {spelling} sent the script's source");
            assert_eq!(answer.status, 200, "{proto:?} {spelling}: {}", answer.body);
            assert!(
                answer.body.contains("RAN SCRIPT_NAME=/cgi-bin/env"),
                "{proto:?} {spelling}: {}",
                answer.body
            );
        }
        // The directory's own name, and spellings of it, never list or send it.
        for spelling in ["/cgi-bin/", "/%63gi-bin/", "/cgi-bin"] {
            let answer = get(&weir, proto, spelling);
            assert!(!answer.body.contains("SOURCE-MARKER"), "{proto:?} {spelling}");
            assert_ne!(answer.status, 200, "{proto:?} {spelling}");
        }
    }
}

#[test]
fn a_symlink_to_the_script_directory_does_not_send_its_files() {
    let weir = scripts_under_document_root("");
    std::os::unix::fs::symlink(weir.path().join("htdocs/cgi-bin"), weir.path().join("htdocs/scripts"))
        .unwrap();
    for proto in [Proto::H1, Proto::H2] {
        let answer = get(&weir, proto, "/scripts/env");
        assert!(!answer.body.contains("SOURCE-MARKER"), "{proto:?}: the script's source through a symlink");
        assert_eq!(answer.status, 403, "{proto:?}");
    }
}

#[test]
fn require_in_any_location_holds_for_every_spelling() {
    let site = Site::new();
    site.doc("private/x.txt", b"PRIVATE\n");
    site.doc("private/open/y.txt", b"OPEN\n");
    site.doc("public.txt", b"PUBLIC\n");
    let weir = site.start(
        "<Location /private>\n  Require all denied\n</Location>\n\
         <Location /private/open>\n  Require all granted\n</Location>\n",
    );
    for proto in [Proto::H1, Proto::H2] {
        for spelling in [
            "/private/x.txt",
            "/private//x.txt",
            "//private/x.txt",
            "/%70rivate/x.txt",
            "/a/../private/x.txt",
        ] {
            let answer = get(&weir, proto, spelling);
            assert_eq!(answer.status, 403, "{proto:?} {spelling}: {}", answer.body);
            assert!(!answer.body.contains("PRIVATE"), "{proto:?} {spelling}");
        }
        // Every matching section applies in order; the later, more specific one wins here.
        let open = get(&weir, proto, "/private/open/y.txt");
        assert_eq!((open.status, open.body.as_str()), (200, "OPEN\n"), "{proto:?}");
        assert_eq!(get(&weir, proto, "/public.txt").status, 200, "{proto:?}");
    }
}

#[test]
fn require_holds_for_scripts_and_status_too() {
    let site = Site::new();
    site.script("env", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nRAN\\n'\n");
    let weir = site.start(
        "<Location /cgi-bin>\n  Require ip 192.0.2.0/24\n</Location>\n\
         <Location /server-status>\n  SetHandler server-status\n  Require all granted\n</Location>\n\
         <Location /server-status>\n  Require all denied\n</Location>\n",
    );
    for proto in [Proto::H1, Proto::H2] {
        for spelling in ["/cgi-bin/env", "//cgi-bin/env", "/%63gi-bin/env"] {
            let answer = get(&weir, proto, spelling);
            assert_eq!(answer.status, 403, "{proto:?} {spelling}: {}", answer.body);
            assert!(!answer.body.contains("RAN"), "{proto:?} {spelling}");
        }
        // Two sections for one path: the later Require replaces the earlier one, as in Apache.
        assert_eq!(get(&weir, proto, "/server-status").status, 403, "{proto:?}");
        assert_eq!(get(&weir, proto, "/server-status?auto").status, 403, "{proto:?}");
    }
}

#[test]
fn dotfiles_are_refused_except_well_known() {
    let site = Site::new();
    for (name, text) in [
        (".htaccess", "HIDDEN"),
        (".htpasswd", "HIDDEN"),
        (".git/config", "HIDDEN token"),
        (".svn/entries", "HIDDEN"),
        (".env", "HIDDEN"),
        ("sub/.env", "HIDDEN"),
        (".well-known/acme-challenge/t", "ACME"),
    ] {
        site.doc(name, text.as_bytes());
    }
    let weir = site.start("");
    for proto in [Proto::H1, Proto::H2] {
        for spelling in [
            "/.htaccess",
            "/.htpasswd",
            "/%2ehtpasswd",
            "/.git/config",
            "/.svn/entries",
            "/.env",
            "/sub/.env",
            "/sub/%2Eenv",
            "/.well-known/../.env",
        ] {
            let answer = get(&weir, proto, spelling);
            assert_eq!(answer.status, 403, "{proto:?} {spelling}: {}", answer.body);
            assert!(!answer.body.contains("HIDDEN"), "{proto:?} {spelling}");
        }
        let acme = get(&weir, proto, "/.well-known/acme-challenge/t");
        assert_eq!((acme.status, acme.body.as_str()), (200, "ACME"), "{proto:?}");
    }
}

#[test]
fn a_location_that_names_a_dotfile_directory_reopens_it_and_no_other() {
    let site = Site::new();
    site.doc(".public/x.txt", b"REOPENED");
    site.doc(".env", b"HIDDEN");
    site.doc(".htpasswd", b"HIDDEN");
    let weir = site.start("<Location /.public>\n  Require all granted\n</Location>\n<Location />\n  Require all granted\n</Location>\n");
    for proto in [Proto::H1, Proto::H2] {
        let reopened = get(&weir, proto, "/.public/x.txt");
        assert_eq!((reopened.status, reopened.body.as_str()), (200, "REOPENED"), "{proto:?}");
        assert_eq!(get(&weir, proto, "/.env").status, 403, "{proto:?}: `<Location />` reopens nothing");
        assert_eq!(get(&weir, proto, "/.htpasswd").status, 403, "{proto:?}");
    }
}

#[test]
fn undecodable_paths_next_to_an_interpreter_are_refused_without_a_panic() {
    let site = Site::new();
    site.doc("index.php", b"<?php echo 1;");
    let weir = site.start("CGIInterpreter .php /bin/cat\n");
    for proto in [Proto::H1, Proto::H2] {
        for (spelling, status) in
            [("/%C3%A9php", 404), ("/a/%FFphp", 400), ("/%C3php", 400), ("/%E2%82php", 400)]
        {
            let answer = get(&weir, proto, spelling);
            assert_eq!(answer.status, status, "{proto:?} {spelling}");
        }
    }
    assert!(!weir.logs().contains("panicked"), "a panic was logged:\n{}", weir.logs());
}

#[test]
fn a_directory_redirect_never_leaves_the_site() {
    let site = Site::new();
    site.doc("assets/a.css", b"css");
    let weir = site.start("");
    for proto in [Proto::H1, Proto::H2] {
        for (spelling, location) in [
            ("//assets", "/assets/"),
            ("/assets", "/assets/"),
            ("///assets?x=1", "/assets/?x=1"),
            ("/%61ssets", "/assets/"),
        ] {
            let answer = get(&weir, proto, spelling);
            assert_eq!(answer.status, 301, "{proto:?} {spelling}");
            assert_eq!(answer.location.as_deref(), Some(location), "{proto:?} {spelling}");
        }
    }
}

#[test]
fn path_info_and_path_translated_come_from_the_normalised_path() {
    let weir = scripts_under_document_root("");
    let root = std::fs::canonicalize(weir.path().join("htdocs")).unwrap();
    for proto in [Proto::H1, Proto::H2] {
        let answer = get(&weir, proto, "/cgi-bin/env/a/%2e%2e/b%20c/./d");
        assert_eq!(answer.status, 200, "{proto:?}: {}", answer.body);
        assert!(answer.body.contains("PATH_INFO=/b c/d\n"), "{proto:?}: {}", answer.body);
        let translated = format!("PATH_TRANSLATED={}/b c/d\n", root.display());
        assert!(answer.body.contains(&translated), "{proto:?}: {}", answer.body);
        // Climbing out of the script's PATH_INFO leaves the script: it is another path.
        let out = get(&weir, proto, "/cgi-bin/env/%2e%2e/%2e%2e/etc/passwd");
        assert!(!out.body.contains("RAN"), "{proto:?}: {}", out.body);
        assert_eq!(out.status, 404, "{proto:?}");
    }
}

#[test]
fn bad_targets_are_refused_as_apache_refuses_them() {
    let site = Site::new();
    site.doc("a/b.txt", b"B");
    let weir = site.start("");
    for proto in [Proto::H1, Proto::H2] {
        for (spelling, status) in [
            ("/a%2fb.txt", 404),
            ("/a%5cb.txt", 404),
            ("/../a/b.txt", 400),
            ("/a/%2e%2e/%2e%2e/a/b.txt", 400),
            ("/a/b.txt%00", 400),
            ("/a/b%zz", 400),
            ("/a/%0d%0aX-Injected:1", 400),
        ] {
            assert_eq!(get(&weir, proto, spelling).status, status, "{proto:?} {spelling}");
        }
        assert_eq!(get(&weir, proto, "/a/./b.txt").body, "B", "{proto:?}");
    }
}

#[test]
fn a_file_named_as_a_directory_is_not_found() {
    let site = Site::new();
    site.doc("page.html", b"PAGE");
    let weir = site.start("");
    for proto in [Proto::H1, Proto::H2] {
        assert_eq!(get(&weir, proto, "/page.html").body, "PAGE", "{proto:?}");
        for spelling in ["/page.html/", "/page.html//", "/page.html/."] {
            let answer = get(&weir, proto, spelling);
            assert_eq!(answer.status, 404, "{proto:?} {spelling}");
            assert!(!answer.body.contains("PAGE"), "{proto:?} {spelling}");
        }
    }
}

#[test]
fn a_script_is_not_told_the_edge_workers_connection_header() {
    let site = Site::new();
    site.script(
        "conn",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"CONNECTION=${HTTP_CONNECTION-unset}\"\n",
    );
    let weir = site.start("");
    for proto in [Proto::H1, Proto::H2] {
        let answer = get(&weir, proto, "/cgi-bin/conn");
        assert_eq!(answer.status, 200, "{proto:?}");
        assert!(answer.body.contains("CONNECTION=unset"), "{proto:?}: {}", answer.body);
    }
}
