//! mod_alias: `Alias` and `AliasMatch` serve files from outside DocumentRoot (and run the code
//! found there), `ScriptAliasMatch` runs the script the edge routed, and the `Redirect` family is
//! answered by the edge; each over HTTP/1.1 and h2, per `<VirtualHost>`, against odd spellings.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::client::{Client, Proto, Reply};
use crate::support::{Site, Weir};

const SHOW: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\n\
                    echo \"SCRIPT_NAME=$SCRIPT_NAME\"\necho \"PATH_INFO=$PATH_INFO\"\n\
                    echo \"QUERY_STRING=$QUERY_STRING\"\necho \"SCRIPT_FILENAME=$SCRIPT_FILENAME\"\n\
                    # SCRIPT-SOURCE-MARK\n";

fn write(path: &Path, text: &str, mode: u32) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).unwrap();
        std::fs::set_permissions(parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Directories outside DocumentRoot: static files, a directory with an index, a CGI script,
/// a dotfile, a manual for AliasMatch, a tools directory for ScriptAliasMatch, and a secret
/// beside them that no substitution may reach.
fn outside(site: &Site) {
    let d = site.path();
    write(&d.join("outside/docs/a.txt"), "alias file A\n", 0o644);
    write(&d.join("outside/docs/sub/index.html"), "sub index\n", 0o644);
    write(
        &d.join("outside/docs/hello.cgi"),
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nran hello\\n'\n# CGI-SOURCE-MARK\n",
        0o755,
    );
    write(&d.join("outside/docs/.secret"), "DOTFILE-MARK\n", 0o644);
    write(&d.join("outside/docs/app/index.cgi"), SHOW, 0o755);
    write(&d.join("outside/icons/i.txt"), "icon\n", 0o644);
    write(&d.join("outside/manual/intro.txt"), "manual intro\n", 0o644);
    write(&d.join("outside/files/f.txt"), "files f\n", 0o644);
    write(&d.join("outside/secret.txt"), "SECRET-MARK\n", 0o644);
    write(&d.join("outside/other/sub/index.html"), "WRONG-ALIAS\n", 0o644);
    write(&d.join("tools/show"), SHOW, 0o755);
    write(&d.join("tools/readme.txt"), "not a script\n", 0o644);
}

fn start() -> Weir {
    let site = Site::new();
    outside(&site);
    let d = site.path().display().to_string();
    site.start(&format!(
        "Listen 127.0.0.1:0 http\n\
         AddHandler cgi-script .cgi\n\
         DirectoryIndex index.html index.cgi\n\
         Redirect /docs/moved https://moved.example/new\n\
         Alias /docs {d}/outside/docs\n\
         Alias /docs/sub {d}/outside/other/sub\n\
         Alias /icons/ {d}/outside/icons/\n\
         AliasMatch ^/manual/([a-z]+)\\.html$ {d}/outside/manual/$1.txt\n\
         AliasMatch ^/f(.*)$ {d}/outside/files/$1\n\
         AliasMatch ^/page/([a-z]+)$ {d}/outside/docs/$1.cgi\n\
         ScriptAliasMatch ^/tools/(.*) {d}/tools/$1\n\
         Alias /toolsrc {d}/tools\n\
         Alias /one.txt {d}/outside/docs/a.txt\n\
         Alias /run-me {d}/outside/docs/hello.cgi\n\
         <Location /docs/private>\nRequire all denied\n</Location>\n\
         Redirect /docs/private/moved /elsewhere\n"
    ))
}

/// One raw HTTP/1.1 request over TLS (any spelling): status, headers block, body.
fn raw(weir: &Weir, target: &str) -> (u16, String, String) {
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    let bytes = client.raw(request.as_bytes()).unwrap_or_default();
    split(&String::from_utf8_lossy(&bytes))
}

fn split(text: &str) -> (u16, String, String) {
    let status = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    (status, head.to_ascii_lowercase(), body.to_string())
}

fn location(head: &str) -> Option<String> {
    head.lines().find_map(|line| line.strip_prefix("location: ")).map(str::to_string)
}

fn get(client: &Client, proto: Proto, path: &str) -> Reply {
    client.request(proto, "GET", path, Vec::new()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn alias_serves_files_and_runs_code_from_outside_the_document_root() {
    let weir = start();
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for proto in [Proto::H1, Proto::H2] {
        let reply = get(&client, proto, "/docs/a.txt");
        assert_eq!((reply.status, reply.text().as_str()), (200, "alias file A\n"), "{proto:?}");
        let reply = get(&client, proto, "/docs");
        assert_eq!((reply.status, reply.header("location")), (301, Some("/docs/")), "{proto:?}");
        // The first Alias that matches wins: /docs, before the later /docs/sub.
        let reply = get(&client, proto, "/docs/sub/");
        assert_eq!((reply.status, reply.text().as_str()), (200, "sub index\n"), "{proto:?}");
        // Code found through an alias runs; its source is never sent.
        let reply = get(&client, proto, "/docs/hello.cgi");
        assert_eq!((reply.status, reply.text().as_str()), (200, "ran hello\n"), "{proto:?}");
        let reply = get(&client, proto, "/manual/intro.html");
        assert_eq!((reply.status, reply.text().as_str()), (200, "manual intro\n"), "{proto:?}");
        let reply = get(&client, proto, "/icons/i.txt");
        assert_eq!(reply.status, 200, "{proto:?}");
    }
    // A directory index that is code runs in a worker, which finds it through the same Alias.
    let reply = get(&client, Proto::H2, "/docs/app/?k=v");
    let text = reply.text();
    assert_eq!(reply.status, 200, "{text}");
    assert!(
        text.contains("SCRIPT_NAME=/docs/app/index.cgi\n") && text.contains("QUERY_STRING=k=v\n"),
        "{text}"
    );
    assert!(!text.contains("SCRIPT-SOURCE-MARK"), "{text}");
    // An Alias to one file; to a script file, 403: never its source.
    assert_eq!(get(&client, Proto::H1, "/one.txt").text(), "alias file A\n");
    assert_eq!(get(&client, Proto::H1, "/one.txt/").status, 404);
    let reply = get(&client, Proto::H1, "/run-me");
    assert_eq!(reply.status, 403);
    assert!(!reply.text().contains("CGI-SOURCE-MARK"));
    // Whole segments, and a trailing slash in the url-path must be in the request.
    assert_eq!(get(&client, Proto::H1, "/docsx/a.txt").status, 404);
    assert_eq!(get(&client, Proto::H1, "/icons").status, 404);
    // Odd spellings of the same paths reach the same files, and no more.
    for spelling in ["/docs//a.txt", "/%64ocs/a.txt", "/x/../docs/a.txt", "/docs/./a.txt", "//docs/a.txt"] {
        let (status, _, body) = raw(&weir, spelling);
        assert_eq!((status, body.as_str()), (200, "alias file A\n"), "{spelling}");
    }
    for spelling in
        ["/docs/.secret", "/docs/%2esecret", "/docs/sub/../.secret", "/DOCS/a.txt", "/docs/a.txt/"]
    {
        let (status, _, body) = raw(&weir, spelling);
        assert!(status == 403 || status == 404, "{spelling}: {status}");
        assert!(!body.contains("DOTFILE-MARK"), "{spelling}");
    }
    for spelling in ["/docs/hello.cgi", "/docs/HELLO.CGI", "/docs/hello%2Ecgi", "/docs//hello.cgi"] {
        let (_, _, body) = raw(&weir, spelling);
        assert!(!body.contains("CGI-SOURCE-MARK"), "{spelling} sent the script's source");
    }
}

#[test]
fn substitutions_never_climb_out_and_scripts_are_never_sent() {
    let weir = start();
    assert_eq!(raw(&weir, "/f/f.txt").2, "files f\n");
    // `$1` starting inside a segment: `..` climbs out of files/ to the secret beside it.
    for spelling in [
        "/f../secret.txt",
        "/f%2e%2e/secret.txt",
        "/f%2E%2E/secret.txt",
        "/f.%2e/secret.txt",
        "/f%2F..%2Fsecret.txt",
        "/f/..%2Fsecret.txt",
        "/f/../secret.txt",
        "/f/%2e%2e/secret.txt",
        "/f..",
        "/f../",
    ] {
        let (status, _, body) = raw(&weir, spelling);
        assert!(status == 404 || status == 400 || status == 403, "{spelling}: {status}");
        assert!(!body.contains("SECRET-MARK"), "{spelling} climbed out");
    }
    // A ScriptAliasMatch directory's files are scripts: never sent, by it or through an Alias.
    for spelling in ["/toolsrc/show", "/toolsrc/readme.txt", "/tools/readme.txt", "/tools/", "/tools/nope"] {
        let (status, _, body) = raw(&weir, spelling);
        assert!(status == 403 || status == 404, "{spelling}: {status}");
        assert!(!body.contains("SCRIPT-SOURCE-MARK"), "{spelling}");
    }
}

#[test]
fn script_alias_match_runs_the_script_the_edge_routed() {
    let weir = start();
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let d = weir.path().display().to_string();
    for proto in [Proto::H1, Proto::H2] {
        let reply = get(&client, proto, "/tools/show/extra/path?x=1");
        let text = reply.text();
        assert_eq!(reply.status, 200, "{proto:?}: {text}");
        assert!(text.contains("SCRIPT_NAME=/tools/show\n"), "{proto:?}: {text}");
        assert!(text.contains("PATH_INFO=/extra/path\n"), "{proto:?}: {text}");
        assert!(text.contains("QUERY_STRING=x=1\n"), "{proto:?}: {text}");
        assert!(text.contains(&format!("SCRIPT_FILENAME={d}/tools/show\n")), "{proto:?}: {text}");
        assert!(!text.contains("SCRIPT-SOURCE-MARK"));
    }
    let (status, _, body) = raw(&weir, "/tools//show/%61");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("PATH_INFO=/a\n"), "{body}");
    // The URL names no code, the file an AliasMatch maps it to is: run, never sent.
    for proto in [Proto::H1, Proto::H2] {
        let reply = get(&client, proto, "/page/hello");
        assert_eq!((reply.status, reply.text().as_str()), (200, "ran hello\n"), "{proto:?}");
    }
    // A missing script is refused from the head: a body announced and never sent is not
    // waited for.
    let started = Instant::now();
    let bytes = client
        .raw(b"POST /tools/nope HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n")
        .unwrap();
    assert_eq!(split(&String::from_utf8_lossy(&bytes)).0, 404);
    assert!(started.elapsed() < Duration::from_secs(10), "waited for the body: {:?}", started.elapsed());
}

#[test]
fn require_holds_before_a_redirect_and_a_redirect_before_an_alias() {
    let weir = start();
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for proto in [Proto::H1, Proto::H2] {
        // Stricter than Apache: a denied place does not say where it moved.
        let reply = get(&client, proto, "/docs/private/moved");
        assert_eq!((reply.status, reply.header("location")), (403, None), "{proto:?}");
        // The Redirect comes before the Alias that would also take the path.
        let reply = get(&client, proto, "/docs/moved/x?q=1");
        assert_eq!(reply.status, 302, "{proto:?}");
        assert_eq!(reply.header("location"), Some("https://moved.example/new/x?q=1"), "{proto:?}");
    }
    let (status, _, _) = raw(&weir, "/%64ocs/private/../private/moved");
    assert_eq!(status, 403);
}

/// The statuses, Locations and bodies of every form, answered without a worker and without
/// reading a body.
#[test]
fn every_redirect_form_is_answered_by_the_edge() {
    let site = Site::new();
    let weir = site.start(
        "Redirect /a https://a.example/new\n\
         Redirect permanent /b /bee\n\
         Redirect 307 /c /see/\n\
         Redirect seeother /d /dee\n\
         Redirect gone /e\n\
         Redirect 404 /f\n\
         RedirectPermanent /g /gee/\n\
         RedirectTemp /h https://h.example\n\
         RedirectMatch 301 ^/img/(.*)\\.gif$ /img/$1.png\n\
         RedirectMatch ^/q/(.*)$ /target?fixed=1\n",
    );
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let cases: &[(&str, u16, Option<&str>)] = &[
        ("/a/x/y?k=v", 302, Some("https://a.example/new/x/y?k=v")),
        ("/a", 302, Some("https://a.example/new")),
        ("/b", 301, Some("/bee")),
        ("/b/x%20y", 301, Some("/bee/x%20y")),
        ("/c/", 307, Some("/see/")),
        ("/d?z", 303, Some("/dee?z")),
        ("/e/anything", 410, None),
        ("/f", 404, None),
        ("/g/1", 301, Some("/gee/1")),
        ("/h/x", 302, Some("https://h.example/x")),
        ("/img/a/b.gif?v=2", 301, Some("/img/a/b.png?v=2")),
        ("/q/anything?dropped=1", 302, Some("/target?fixed=1")),
    ];
    for proto in [Proto::H1, Proto::H2] {
        for (path, status, location) in cases {
            let reply = get(&client, proto, path);
            assert_eq!((reply.status, reply.header("location")), (*status, *location), "{proto:?} {path}");
            if *status == 410 {
                assert!(reply.text().contains("no longer available"), "{}", reply.text());
            } else if let Some(location) = location {
                assert!(
                    reply.text().contains(&format!("<a href=\"{location}\">here</a>")),
                    "{}",
                    reply.text()
                );
            }
        }
    }
    // Not whole segments: no redirect.
    assert_eq!(get(&client, Proto::H1, "/bx").status, 404);
    assert_eq!(get(&client, Proto::H1, "/B").status, 404);
    // No body is read: a POST announcing a body it never sends is answered at once.
    let started = Instant::now();
    let bytes = client
        .raw(b"POST /b HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, head, _) = split(&String::from_utf8_lossy(&bytes));
    assert_eq!((status, location(&head).as_deref()), (301, Some("/bee")), "{head}");
    assert!(started.elapsed() < Duration::from_secs(10), "waited for the body: {:?}", started.elapsed());
}

#[test]
fn a_redirect_never_names_another_host() {
    let site = Site::new();
    let weir = site.start(
        "Redirect /old /\n\
         Redirect /up /\n\
         RedirectMatch ^/go(.*)$ /$1\n\
         RedirectMatch ^/to/(.*)$ https://safe.example/$1\n\
         Redirect /abs https://abs.example\n",
    );
    let spellings = [
        "/old//evil.example",
        "/old/%2F%2Fevil.example",
        "/old/%2Fevil.example",
        "/old/%5Cevil.example",
        "/old/%5C%5Cevil.example",
        "/old///evil.example/x",
        "/up/./evil.example",
        "/go//evil.example",
        "/go/%2F/evil.example",
        "/go/evil.example",
        "/go%2F%2Fevil.example",
        "/to//evil.example",
        "/to/@evil.example",
        "/abs/.evil.example",
        "/abs@evil.example",
        "/abs/%40evil.example",
    ];
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for spelling in spellings {
        let (status, head, _) = raw(&weir, spelling);
        let found = location(&head);
        if let Some(found) = &found {
            let safe = (found.starts_with('/') && !found.starts_with("//") && !found.starts_with("/\\"))
                || found.starts_with("https://safe.example/")
                || found.starts_with("https://abs.example/");
            assert!(safe, "{spelling} -> {status} Location {found}");
            assert!(!found.contains('\\'), "{spelling} -> {found}");
        }
        // The same over h2 (where the client can spell it).
        if let Ok(reply) = client.request(Proto::H2, "GET", spelling, Vec::new()) {
            if let Some(found) = reply.header("location") {
                assert!(!found.starts_with("//") && !found.starts_with("/\\"), "h2 {spelling} -> {found}");
            }
        }
    }
    let (status, head, _) = raw(&weir, "/old//evil.example");
    assert_eq!((status, location(&head).as_deref()), (302, Some("/evil.example")));
    let (_, head, _) = raw(&weir, "/go/evil.example");
    assert_eq!(location(&head).as_deref(), Some("/evil.example"));
}

/// One HTTP/1.1 GET over plain TCP naming `host`: status, headers, body.
fn plain_get(addr: SocketAddr, host: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    split(&String::from_utf8_lossy(&out))
}

#[test]
fn each_virtual_host_has_its_own_aliases_and_redirects() {
    let site = Site::new();
    let d = site.path().display().to_string();
    write(&site.path().join("a-files/x.txt"), "site A file\n", 0o644);
    write(&site.path().join("b-files/x.txt"), "site B file\n", 0o644);
    write(&site.path().join("main-files/m.txt"), "main file\n", 0o644);
    let weir = site.start(&format!(
        "Listen 127.0.0.1:0 http\n\
         Alias /shared {d}/main-files\n\
         <VirtualHost *:*>\nServerName a.test\nAlias /files {d}/a-files\nRedirect /go /a-went\n</VirtualHost>\n\
         <VirtualHost *:*>\nServerName b.test\nAliasMatch ^/files/(.*)$ {d}/b-files/$1\n</VirtualHost>\n"
    ));
    let http = weir.http[0];
    assert_eq!(plain_get(http, "a.test", "/files/x.txt").2, "site A file\n");
    assert_eq!(plain_get(http, "b.test", "/files/x.txt").2, "site B file\n");
    let (status, head, _) = plain_get(http, "a.test", "/go");
    assert_eq!((status, location(&head).as_deref()), (302, Some("/a-went")));
    let (status, _, _) = plain_get(http, "b.test", "/go");
    assert_eq!(status, 404, "a.test's Redirect stays in a.test");
    // The main server's aliases reach every host, as Apache merges them.
    assert_eq!(plain_get(http, "b.test", "/shared/m.txt").2, "main file\n");
    assert_eq!(plain_get(http, "a.test", "/shared/m.txt").2, "main file\n");
}

/// Two rules an outside review broke: `AliasMatch ^/\.well-known/x-(.*)$ DIR/$1` sent DIR's
/// `.env` and `.git/config` (the URL's only dot segment, `.well-known`, let every dot name of
/// the file's path through); and `ScriptAliasMatch ^/tools2(.*)$ DIR/scripts2$1` made every
/// static file under DIR a script's, 403 for the whole site.
#[test]
fn a_substitution_hands_out_no_dot_name_and_script_rules_refuse_only_their_files() {
    let site = Site::new();
    let d = site.path().display().to_string();
    write(&site.path().join("ext/.env"), "DOT-ENV-MARK\n", 0o644);
    write(&site.path().join("ext/.git/config"), "DOT-GIT-MARK\n", 0o644);
    write(&site.path().join("ext/pub.txt"), "public\n", 0o644);
    write(&site.path().join("scripts2/show"), SHOW, 0o755);
    write(&site.path().join("scripts2-more/show"), SHOW, 0o755);
    write(&site.path().join("plain/readme.txt"), "plain file\n", 0o644);
    let weir = site.start(&format!(
        "AliasMatch ^/\\.well-known/x-(.*)$ {d}/ext/$1\n\
         ScriptAliasMatch ^/tools2(.*)$ {d}/scripts2$1\n\
         Alias /plain {d}/plain\n\
         Alias /near {d}/scripts2-more\n"
    ));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for proto in [Proto::H1, Proto::H2] {
        let get = |target: &str| get(&client, proto, target);
        for target in ["/.well-known/x-.env", "/.well-known/x-.git/config", "/.well-known/x-%2eenv"] {
            let reply = get(target);
            assert!(!reply.text().contains("-MARK"), "{proto:?} {target}: {} {}", reply.status, reply.text());
            assert_ne!(reply.status, 200, "{proto:?} {target}");
        }
        assert_eq!(get("/.well-known/x-pub.txt").text(), "public\n", "{proto:?}");
        // The script rule's files are its own only: DocumentRoot and a plain Alias beside it serve.
        assert_eq!(get("/index.html").status, 200, "{proto:?}");
        assert_eq!(get("/plain/readme.txt").text(), "plain file\n", "{proto:?}");
        assert!(get("/tools2/show").text().contains("SCRIPT_NAME=/tools2/show"), "{proto:?}");
        // What the rule can reach (scripts2…, scripts2-more too) is never sent.
        let reply = get("/near/show");
        assert!(!reply.text().contains("SCRIPT-SOURCE-MARK"), "{proto:?}: {}", reply.text());
    }
}
