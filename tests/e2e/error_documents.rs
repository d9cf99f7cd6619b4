//! `ErrorDocument`: a text, a local path (a static file or a script, the error's status kept)
//! or a URL (a 302) in place of the built-in page, over HTTP/1.1 and h2; a document that cannot
//! be fetched (missing, denied, a dotfile, a script's own error) gives the built-in page with
//! the original status, never a 200, never a loop, never a file a request could not read.

use crate::support::client::{Client, Proto};
use crate::support::raw;
use crate::support::{Site, Weir};

/// Status, headers and body of one request, as a client sees it.
struct Answer {
    status: u16,
    content_type: Option<String>,
    content_length: Option<String>,
    location: Option<String>,
    body: String,
}

fn ask(weir: &Weir, proto: Proto, method: &str, target: &str, headers: &[(&str, &str)]) -> Answer {
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client
        .request_with(proto, method, target, headers, Vec::new())
        .unwrap_or_else(|e| panic!("{proto:?} {method} {target}: {e}\n{}", weir.logs()));
    Answer {
        status: reply.status,
        content_type: reply.header("content-type").map(str::to_string),
        content_length: reply.header("content-length").map(str::to_string),
        location: reply.header("location").map(str::to_string),
        body: reply.text(),
    }
}

const NOT_FOUND_PAGE: &str = "<h1>Our own 404 page</h1>\n";

#[test]
fn text_file_and_url_documents_over_h1_and_h2() {
    let site = Site::new();
    site.doc("errors/404.html", NOT_FOUND_PAGE.as_bytes());
    site.doc(".env", b"TOKEN=SECRET-DOTFILE\n");
    let weir = site.start(
        "ErrorDocument 404 /errors/404.html\n\
         ErrorDocument 403 \"<p>Not for you</p>\"\n\
         ErrorDocument 405 https://status.example.com/why\n",
    );
    for proto in [Proto::H1, Proto::H2] {
        // A local file: its body, the error's status, its own type and length.
        let answer = ask(&weir, proto, "GET", "/no/such/page", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (404, NOT_FOUND_PAGE), "{proto:?}");
        assert!(answer.content_type.as_deref().is_some_and(|t| t.starts_with("text/html")), "{proto:?}");
        // Conditions the client sent are not applied to the document: no 304 for an error.
        let answer = ask(
            &weir,
            proto,
            "GET",
            "/missing",
            &[("if-modified-since", "Sun, 01 Jan 2090 00:00:00 GMT"), ("range", "bytes=0-3")],
        );
        assert_eq!((answer.status, answer.body.as_str()), (404, NOT_FOUND_PAGE), "{proto:?}");
        // HEAD: the status and the length a GET would have, and no body.
        let answer = ask(&weir, proto, "HEAD", "/missing", &[]);
        assert_eq!(answer.status, 404, "{proto:?}");
        assert_eq!(answer.body, "", "{proto:?}");
        assert_eq!(
            answer.content_length.as_deref(),
            Some(NOT_FOUND_PAGE.len().to_string().as_str()),
            "{proto:?}"
        );
        // A text: sent as the body, text/html, the error's status.
        for spelling in ["/.env", "/%2eenv", "//.env", "/x/../.env"] {
            let answer = ask(&weir, proto, "GET", spelling, &[]);
            assert_eq!(
                (answer.status, answer.body.as_str()),
                (403, "<p>Not for you</p>"),
                "{proto:?} {spelling}"
            );
            assert!(answer.content_type.as_deref().is_some_and(|t| t.starts_with("text/html")), "{proto:?}");
        }
        // A URL: a 302 to it (the status is lost, as in Apache).
        let answer = ask(&weir, proto, "DELETE", "/index.html", &[]);
        assert_eq!(answer.status, 302, "{proto:?}");
        assert_eq!(answer.location.as_deref(), Some("https://status.example.com/why"), "{proto:?}");
        // Other statuses keep the built-in page.
        let answer = ask(&weir, proto, "GET", "/%zz", &[]);
        assert_eq!(answer.status, 400, "{proto:?}");
    }
}

#[test]
fn a_document_that_cannot_be_fetched_gives_the_builtin_page_never_a_secret() {
    let site = Site::new();
    site.doc(".secret", b"SECRET-DOTFILE\n");
    site.doc("private/page.html", b"SECRET-PRIVATE\n");
    site.doc("dir/index.html", b"directory index\n");
    let weir = site.start(
        "<Location /private>\nRequire all denied\n</Location>\n\
         ErrorDocument 404 /.secret\n\
         ErrorDocument 403 /private/page.html\n\
         ErrorDocument 405 /dir\n",
    );
    for proto in [Proto::H1, Proto::H2] {
        for (method, target, status) in [
            ("GET", "/nothing-here", 404),
            ("GET", "/.secret", 403),
            ("GET", "/private/page.html", 403),
            ("DELETE", "/index.html", 405),
        ] {
            let answer = ask(&weir, proto, method, target, &[]);
            assert_eq!(answer.status, status, "{proto:?} {method} {target}\n{}", answer.body);
            assert!(!answer.body.contains("SECRET"), "{proto:?} {target}: {}", answer.body);
            assert!(answer.body.contains("<html>"), "the built-in page: {proto:?} {target}: {}", answer.body);
            assert!(answer.location.is_none(), "{proto:?} {target}");
        }
    }
}

#[test]
fn a_document_in_the_script_directory_runs_and_never_sends_its_source() {
    let site = Site::new();
    // The script directory inside DocumentRoot, and the document named by a spelling of it.
    site.doc(
        "cgi-bin/page",
        b"#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nRAN-PAGE\\n'\n# SOURCE-MARKER\n",
    );
    let script = site.path().join("htdocs/cgi-bin/page");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let d = site.path().display().to_string();
    let conf = site.config("ErrorDocument 404 /%63gi-bin//page\n").replace(
        &format!("ScriptAlias /cgi-bin/ {d}/cgi-bin/"),
        &format!("ScriptAlias /cgi-bin/ {d}/htdocs/cgi-bin/"),
    );
    let weir = site.start_with(&conf);
    for proto in [Proto::H1, Proto::H2] {
        let answer = ask(&weir, proto, "GET", "/missing", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (404, "RAN-PAGE\n"), "{proto:?}");
    }
}

#[test]
fn a_script_document_runs_with_the_redirect_variables_and_keeps_the_status() {
    let site = Site::new();
    site.script(
        "oops",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
         echo \"REDIRECT_STATUS=$REDIRECT_STATUS\"\necho \"REDIRECT_URL=$REDIRECT_URL\"\n\
         echo \"REDIRECT_QUERY_STRING=$REDIRECT_QUERY_STRING\"\necho \"REDIRECT_REQUEST_METHOD=$REDIRECT_REQUEST_METHOD\"\n\
         echo \"REQUEST_METHOD=$REQUEST_METHOD\"\n",
    );
    site.script("failing", "#!/bin/sh\nprintf 'Status: 500 Broken\\r\\nContent-Type: text/plain\\r\\n\\r\\nFAILED-DOCUMENT\\n'\n");
    site.script("chosen", "#!/bin/sh\nprintf 'Status: 404 Gone Away\\r\\nContent-Type: text/plain\\r\\n\\r\\nTHE SCRIPT CHOSE THIS\\n'\n");
    site.script("env", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n");
    let weir = site.start(
        "ErrorDocument 404 /cgi-bin/oops\n\
         ErrorDocument 403 /cgi-bin/failing\n",
    );
    for proto in [Proto::H1, Proto::H2] {
        let answer = ask(&weir, proto, "GET", "/gone/away?x=1&y=2", &[]);
        assert_eq!(answer.status, 404, "{proto:?}: {}", answer.body);
        for line in [
            "REDIRECT_STATUS=404",
            "REDIRECT_URL=/gone/away",
            "REDIRECT_QUERY_STRING=x=1&y=2",
            "REDIRECT_REQUEST_METHOD=GET",
            "REQUEST_METHOD=GET",
        ] {
            assert!(answer.body.contains(line), "{proto:?}: {line} in\n{}", answer.body);
        }
        // A HEAD runs the document as a GET and sends no body.
        let answer = ask(&weir, proto, "HEAD", "/gone", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (404, ""), "{proto:?}");
        // The document's own error: the built-in page with the original status.
        let answer = ask(&weir, proto, "GET", "/.hidden", &[]);
        assert_eq!(answer.status, 403, "{proto:?}");
        assert!(!answer.body.contains("FAILED-DOCUMENT"), "{proto:?}: {}", answer.body);
        // A status a script chose with its own body is its own, as in Apache.
        let answer = ask(&weir, proto, "GET", "/cgi-bin/chosen", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (404, "THE SCRIPT CHOSE THIS\n"), "{proto:?}");
        // No client can claim to be an error document's fetch, in any spelling.
        let answer = ask(
            &weir,
            proto,
            "GET",
            "/cgi-bin/env",
            &[
                ("x-weir-redirect-status", "200"),
                ("X-Weir-Redirect-Url", "/forged"),
                ("redirect-status", "1"),
            ],
        );
        assert_eq!(answer.status, 200, "{proto:?}");
        assert!(!answer.body.lines().any(|l| l.starts_with("REDIRECT_")), "{proto:?}: {}", answer.body);
        assert!(!answer.body.contains("/forged"), "{proto:?}: {}", answer.body);
    }
    // Over HTTP/1.1 as raw bytes, with a duplicated and oddly cased forged header.
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let bytes = client
        .raw(b"GET /cgi-bin/env HTTP/1.1\r\nHost: localhost\r\nX-WEIR-REDIRECT-STATUS: 404\r\nx-weir-redirect-status: 404\r\nConnection: close\r\n\r\n")
        .unwrap();
    let responses = raw::responses(&bytes).unwrap();
    assert!(responses[0].text().contains("SCRIPT_NAME=/cgi-bin/env"), "{}", responses[0].text());
    assert!(!responses[0].text().lines().any(|l| l.starts_with("REDIRECT_")), "{}", responses[0].text());
}

#[test]
fn a_virtual_host_has_its_own_documents_over_the_main_servers() {
    let site = Site::new();
    site.doc("errors/404.html", NOT_FOUND_PAGE.as_bytes());
    let other = site.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("index.html"), "other\n").unwrap();
    let weir = site.start(&format!(
        "ErrorDocument 404 /errors/404.html\nErrorDocument 403 \"main 403\"\n\
         <VirtualHost *:*>\nServerName localhost\n</VirtualHost>\n\
         <VirtualHost *:*>\nServerName other.test\nDocumentRoot {}\nErrorDocument 404 \"other 404\"\n</VirtualHost>\n",
        other.display()
    ));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let bytes = client.raw(b"GET /missing HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").unwrap();
    let responses = raw::responses(&bytes).unwrap();
    assert_eq!((responses[0].status, responses[0].text().as_str()), (404, NOT_FOUND_PAGE));
    let bytes =
        client.raw(b"GET /missing HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n").unwrap();
    let responses = raw::responses(&bytes).unwrap();
    assert_eq!((responses[0].status, responses[0].text().as_str()), (404, "other 404"));
    let bytes = client.raw(b"GET /.git HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n").unwrap();
    let responses = raw::responses(&bytes).unwrap();
    assert_eq!((responses[0].status, responses[0].text().as_str()), (403, "main 403"), "inherited");
}

#[test]
fn a_location_has_its_own_documents_for_every_spelling_of_its_paths() {
    let site = Site::new();
    let weir = site.start(
        "ErrorDocument 404 \"site 404\"\n\
         <Location /app>\nErrorDocument 404 \"app 404\"\n</Location>\n\
         <Location /app/plain>\nErrorDocument 404 default\n</Location>\n",
    );
    for proto in [Proto::H1, Proto::H2] {
        for (target, body) in [
            ("/missing", Some("site 404")),
            ("/app/x", Some("app 404")),
            ("//app/%78", Some("app 404")),
            ("/other/../app/x", Some("app 404")),
            ("/%61pp/x", Some("app 404")),
            ("/app/plain/x", None),
            ("/app//plain/x", None),
        ] {
            let answer = ask(&weir, proto, "GET", target, &[]);
            assert_eq!(answer.status, 404, "{proto:?} {target}");
            match body {
                Some(body) => assert_eq!(answer.body, body, "{proto:?} {target}"),
                None => assert!(answer.body.contains("<html>"), "{proto:?} {target}: {}", answer.body),
            }
        }
    }
}

#[test]
fn a_challenge_keeps_its_header_and_a_refused_head_takes_a_text() {
    let site = Site::new();
    // bob's password is "password" ({SHA}, as htpasswd -s writes it).
    std::fs::write(site.path().join("users"), "bob:{SHA}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n").unwrap();
    site.doc("admin/index.html", b"admin\n");
    let users = site.path().join("users");
    let weir = site.start(&format!(
        "<Location /admin>\nAuthType Basic\nAuthName \"Admins\"\nAuthUserFile {}\nRequire valid-user\n</Location>\n\
         ErrorDocument 401 \"<p>Please log in</p>\"\n\
         ErrorDocument 431 \"<p>Too many or too long fields</p>\"\n\
         LimitRequestFieldSize 200\n",
        users.display()
    ));
    for proto in [Proto::H1, Proto::H2] {
        let client = Client::new(weir.addr(), &weir.cert_pem);
        let reply = client.request_with(proto, "GET", "/admin/", &[], Vec::new()).unwrap();
        assert_eq!(reply.status, 401, "{proto:?}");
        assert_eq!(reply.header("www-authenticate"), Some("Basic realm=\"Admins\""), "{proto:?}");
        assert_eq!(reply.text(), "<p>Please log in</p>", "{proto:?}");
        let reply = client
            .request_with(proto, "GET", "/admin/", &[("authorization", "Basic Ym9iOnBhc3N3b3Jk")], Vec::new())
            .unwrap();
        assert_eq!((reply.status, reply.text().as_str()), (200, "admin\n"), "{proto:?}");
    }
    // A head refused before it was read whole (a field beyond LimitRequestFieldSize).
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let long = "x".repeat(400);
    let bytes = client
        .raw(format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Long: {long}\r\n\r\n").as_bytes())
        .unwrap();
    let responses = raw::responses(&bytes).unwrap();
    assert_eq!(responses[0].status, 431);
    assert_eq!(responses[0].text(), "<p>Too many or too long fields</p>");
}

/// A script directory the edge cannot search (owned by the workers' account, mode 0700): the
/// edge cannot tell a missing script from its head, so the worker answers 404 itself, and that
/// answer takes the document too, as Apache's does.
#[test]
fn a_workers_own_refusal_of_a_script_takes_the_document() {
    if !crate::support::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let site = Site::new();
    site.script("present", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nPRESENT\\n'\n");
    let scripts = site.path().join("cgi-bin");
    for entry in [scripts.join("present"), scripts.clone()] {
        nix::unistd::chown(
            &entry,
            Some(nix::unistd::Uid::from_raw(65534)),
            Some(nix::unistd::Gid::from_raw(65534)),
        )
        .unwrap();
    }
    std::fs::set_permissions(&scripts, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let weir = site.start("User nobody\nGroup #65534\nErrorDocument 404 \"<p>No such script</p>\"\n");
    for proto in [Proto::H1, Proto::H2] {
        let answer = ask(&weir, proto, "GET", "/cgi-bin/present", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (200, "PRESENT\n"), "{proto:?}");
        let answer = ask(&weir, proto, "GET", "/cgi-bin/absent", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (404, "<p>No such script</p>"), "{proto:?}");
    }
}

/// The document path is mapped like any request: an `Alias` outside DocumentRoot serves it,
/// and a `Redirect gone` answer (410) takes the site's document too.
#[test]
fn a_document_behind_an_alias_and_a_gone_redirect() {
    let site = Site::new();
    let errors = site.path().join("errors");
    std::fs::create_dir_all(&errors).unwrap();
    std::fs::write(errors.join("404.html"), "aliased 404\n").unwrap();
    let weir = site.start(&format!(
        "Alias /errs/ {}/\nErrorDocument 404 /errs/404.html\n\
         Redirect gone /retired\nErrorDocument 410 \"<p>Retired for good</p>\"\n",
        errors.display()
    ));
    for proto in [Proto::H1, Proto::H2] {
        let answer = ask(&weir, proto, "GET", "/nowhere", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (404, "aliased 404\n"), "{proto:?}");
        let answer = ask(&weir, proto, "GET", "/retired/x", &[]);
        assert_eq!((answer.status, answer.body.as_str()), (410, "<p>Retired for good</p>"), "{proto:?}");
    }
}

/// A document script that answered 206 with a Content-Range had its partial body sent as the
/// error page, range and all. Only a whole answer (200) is a document now.
#[test]
fn a_document_script_that_answers_in_part_gives_the_builtin_page() {
    let site = Site::new();
    site.script(
        "partial",
        "#!/bin/sh\nprintf 'Status: 206 Partial Content\\r\\nContent-Range: bytes 0-1/10\\r\\nContent-Type: text/plain\\r\\n\\r\\nPA'\n",
    );
    let weir = site.start("ErrorDocument 404 /cgi-bin/partial\n");
    for proto in [Proto::H1, Proto::H2] {
        let client = Client::new(weir.addr(), &weir.cert_pem);
        let reply = client.request(proto, "GET", "/missing", Vec::new()).unwrap();
        assert_eq!(reply.status, 404, "{proto:?}");
        assert!(reply.header("content-range").is_none(), "{proto:?}");
        assert_ne!(reply.text(), "PA", "{proto:?}");
    }
}
