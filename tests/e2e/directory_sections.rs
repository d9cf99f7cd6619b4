//! `<Directory>`, `<DirectoryMatch>`, `<Files>`, `<FilesMatch>` and `Options`: sections chosen
//! from the file a request maps to, merged with `<Location>` in Apache's order, checked at the
//! edge over HTTP/1.1 and h2, whatever the spelling of the path or the symlinks on the way.

use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use crate::support::client::{Client, Proto};
use crate::support::{raw, weir_command, Site, Weir};

/// Status and body of a GET of `target` as written.
fn get(weir: &Weir, proto: Proto, target: &str) -> (u16, String) {
    let answer = crate::support::get_as_written(weir, proto, target);
    (answer.status, answer.body)
}

/// Asserts the status of each target over both protocols.
fn expect(weir: &Weir, cases: &[(&str, u16)]) {
    for proto in [Proto::H1, Proto::H2] {
        for (target, status) in cases {
            let (got, body) = get(weir, proto, target);
            assert_eq!(got, *status, "{proto:?} GET {target}: {body}\n{}", weir.logs());
            if *status != 200 {
                assert!(!body.contains("SECRET"), "{proto:?} GET {target} sent {body}");
            }
        }
    }
}

fn executable(path: &Path) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// The `<Directory>` and `<FilesMatch>` blocks of a file, as written.
fn sections_of(text: &str) -> String {
    let mut out = String::new();
    let mut inside = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("<Directory") || trimmed.starts_with("<FilesMatch") {
            inside = true;
        }
        if inside {
            out.push_str(line);
            out.push('\n');
        }
        if trimmed.starts_with("</Directory") || trimmed.starts_with("</FilesMatch") {
            inside = false;
        }
    }
    out
}

const APACHE2_CONF: &str = "/etc/apache2/apache2.conf";

#[test]
fn debians_apache2_conf_sections_load_and_mean_what_they_mean_in_apache() {
    let text = match std::fs::read_to_string(APACHE2_CONF) {
        Ok(text) if Path::new("/var/www/html/index.html").exists() => text,
        _ => {
            assert_ne!(std::env::var("WEIR_REQUIRE_APACHE").as_deref(), Ok("1"), "apache2 is not installed");
            eprintln!("skipped: Debian's apache2 package is not installed");
            return;
        }
    };
    let sections = sections_of(&text);
    assert!(sections.contains("<Directory />") && sections.contains("<FilesMatch"), "{sections}");
    // /var/www/html, which <Directory /var/www/> grants (with Indexes) over <Directory />.
    let site = Site::new();
    let conf = site
        .config(&sections)
        .replace(&format!("DocumentRoot {}/htdocs", site.path().display()), "DocumentRoot /var/www/html");
    let conf_path = site.path().join("check.conf");
    std::fs::write(&conf_path, &conf).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf_path).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let weir = site.start_with(&conf);
    let index = std::fs::read_to_string("/var/www/html/index.html").unwrap();
    for proto in [Proto::H1, Proto::H2] {
        assert_eq!(get(&weir, proto, "/"), (200, index.clone()), "{proto:?}");
    }
    expect(&weir, &[("/index.html", 200), ("/.htaccess", 403), ("/.htpasswd", 403)]);
    drop(weir);
    // Any other directory: <Directory /> denies it, as in Apache.
    let site = Site::new();
    site.doc("page.html", b"SECRET page\n");
    let weir = site.start(&sections);
    expect(&weir, &[("/page.html", 403), ("/", 403), ("//page.html", 403), ("/%70age.html", 403)]);
}

#[test]
fn a_later_location_reopens_what_a_directory_denies_and_the_reverse() {
    let site = Site::new();
    for (name, text) in [
        ("private/x.txt", "SECRET x\n"),
        ("private/open/z.txt", "z\n"),
        ("public/y.txt", "y\n"),
        ("public/closed/w.txt", "SECRET w\n"),
    ] {
        site.doc(name, text.as_bytes());
    }
    // A symlink from the open directory into the closed one.
    symlink(site.path().join("htdocs/private"), site.path().join("htdocs/public/link")).unwrap();
    site.script("hello", "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nSECRET ran\\n'\n");
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "<Location /private/open>\n Require all granted\n</Location>\n\
         <Directory {d}/htdocs/private>\n Require all denied\n</Directory>\n\
         <Location /public/closed>\n Require all denied\n</Location>\n\
         <Directory {d}/htdocs/public/>\n Require all granted\n</Directory>\n\
         <Directory {d}/cgi-bin>\n Require all denied\n</Directory>\n"
    ));
    expect(
        &weir,
        &[
            ("/private/x.txt", 403),
            ("/%70rivate/x.txt", 403),
            ("//private//x.txt", 403),
            ("/public/../private/x.txt", 403),
            ("/public/%2e%2e/private/x.txt", 403),
            ("/private/./x.txt", 403),
            ("/private/", 403),
            ("/private", 403),
            ("/private/open/z.txt", 200),
            ("/public/y.txt", 200),
            ("/public/closed/w.txt", 403),
            ("/public/link/x.txt", 403),
            // The real file lies in the denied directory, and the Location that reopens
            // /private/open does not cover this URL: both must let it in, so neither does.
            ("/public/link/open/z.txt", 403),
            ("/cgi-bin/hello", 403),
            ("/%63gi-bin/hello", 403),
        ],
    );
    for target in ["/PRIVATE/x.txt", "/private./x.txt", "/private/x.txt.", "/private%2Fx.txt"] {
        let (status, body) = get(&weir, Proto::H1, target);
        assert!(status >= 400 && !body.contains("SECRET"), "{target}: {status} {body}");
    }
    // Refused before the body is read: the answer comes with a megabyte still unsent.
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let head = "POST /cgi-bin/hello HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000000\r\n\r\n";
    let bytes = client.raw(head.as_bytes()).unwrap();
    let responses = raw::responses(&bytes).unwrap();
    assert_eq!(responses.first().map(|r| r.status), Some(403), "{}", String::from_utf8_lossy(&bytes));
}

#[test]
fn regex_sections_and_files_nested_in_a_directory() {
    let site = Site::new();
    for name in [
        "123/a.txt",
        "abc/a.txt",
        "docs/a.bak",
        "docs/a.txt",
        "other/a.bak",
        "other/x.orig",
        "other/x.origin",
    ] {
        site.doc(name, format!("SECRET {name}\n").as_bytes());
    }
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "<DirectoryMatch \"/htdocs/[0-9]+/$\">\n Require all denied\n</DirectoryMatch>\n\
         <Directory {d}/htdocs/docs>\n <Files \"*.bak\">\n  Require all denied\n </Files>\n</Directory>\n\
         <FilesMatch \"\\.(orig|swp)$\">\n Require all denied\n</FilesMatch>\n\
         <Files ~ \"^a\\.txt$\">\n Require ip 192.0.2.1\n</Files>\n\
         <Directory ~ \"/htdocs/abc/$\">\n Require all granted\n</Directory>\n"
    ));
    expect(
        &weir,
        &[
            ("/123/a.txt", 403),
            ("/12%33/a.txt", 403),
            ("/docs/a.bak", 403),
            ("/docs//a.bak", 403),
            ("/other/a.bak", 200),
            ("/other/x.orig", 403),
            ("/other/x.origin", 200),
            // <Files ~ "^a\.txt$"> comes after the directories: it wins over the regex grant.
            ("/abc/a.txt", 403),
            ("/docs/a.txt", 403),
        ],
    );
}

#[test]
fn indexes_lists_escaped_names_and_hides_what_is_refused() {
    let site = Site::new();
    for name in [
        "list/<script>.txt",
        "list/a\"b",
        "list/.secret",
        "list/x.cgi",
        "list/denied.txt",
        "list/sub/f",
        "nolist/f",
    ] {
        site.doc(name, b"SECRET\n");
    }
    // An index the site's DirectoryIndex would not find, named by the directory's section; and
    // one a section disables, so the directory is listed instead.
    site.doc("start/start.html", b"start page\n");
    site.doc("list/sub/index.html", b"SECRET sub index\n");
    executable(&site.path().join("htdocs/list/x.cgi"));
    symlink("/etc", site.path().join("htdocs/list/etc")).unwrap();
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "AddHandler cgi-script .cgi\n\
         <Directory {d}/htdocs/list>\n Options +Indexes\n</Directory>\n\
         <Directory {d}/htdocs/list/sub>\n DirectoryIndex disabled\n</Directory>\n\
         <Directory {d}/htdocs/start>\n DirectoryIndex missing.html start.html\n</Directory>\n\
         <Files denied.txt>\n Require all denied\n</Files>\n"
    ));
    for proto in [Proto::H1, Proto::H2] {
        let (status, page) = get(&weir, proto, "/list/");
        assert_eq!(status, 200, "{proto:?}: {page}\n{}", weir.logs());
        assert!(
            page.contains(">&lt;script&gt;.txt<") && page.contains("href=\"./%3Cscript%3E.txt\""),
            "{page}"
        );
        assert!(page.contains(">a&quot;b<") && page.contains("href=\"./a%22b\""), "{page}");
        assert!(page.contains("href=\"./sub/\""), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        for hidden in [".secret", "x.cgi", "denied.txt", "etc"] {
            assert!(!page.contains(hidden), "{hidden} listed: {page}");
        }
        let order: Vec<usize> =
            ["%3Cscript%3E.txt", "a%22b", "sub/"].iter().map(|n| page.find(n).unwrap()).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "sorted: {page}");
    }
    expect(&weir, &[("/list/%3Cscript%3E.txt", 200), ("/list/sub/", 200), ("/nolist/", 403), ("/", 200)]);
    let (_, sub) = get(&weir, Proto::H1, "/list/sub/");
    assert!(sub.contains("href=\"./f\"") && sub.contains("href=\"../\""), "{sub}");
    assert!(
        sub.contains("href=\"./index.html\""),
        "listed, not served, where DirectoryIndex is disabled: {sub}"
    );
    for proto in [Proto::H1, Proto::H2] {
        assert_eq!(get(&weir, proto, "/start/"), (200, "start page\n".into()), "{proto:?}");
    }
}

#[test]
fn symlinks_follow_options_and_never_leave_the_root() {
    let site = Site::new();
    site.doc("real/f.txt", b"target\n");
    let docs = site.path().join("htdocs");
    for dir in ["nofollow", "follow", "owner", "default"] {
        std::fs::create_dir_all(docs.join(dir)).unwrap();
        symlink(docs.join("real/f.txt"), docs.join(dir).join("link.txt")).unwrap();
    }
    symlink(docs.join("real"), docs.join("nofollow/dir")).unwrap();
    symlink(docs.join("real/f.txt"), docs.join("owner/other.txt")).unwrap();
    let root = crate::support::is_root();
    if root {
        // A link owned by someone else than its target's owner.
        std::os::unix::fs::lchown(docs.join("owner/other.txt"), Some(65534), Some(65534)).unwrap();
    }
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "<Directory {d}/htdocs/nofollow>\n Options None\n</Directory>\n\
         <Directory {d}/htdocs/follow>\n Options FollowSymLinks\n</Directory>\n\
         <Directory {d}/htdocs/owner>\n Options SymLinksIfOwnerMatch\n</Directory>\n"
    ));
    let mut cases = vec![
        ("/nofollow/link.txt", 403),
        ("/nofollow/dir/f.txt", 403),
        ("/NOFOLLOW/link.txt", 404),
        ("/follow/link.txt", 200),
        ("/owner/link.txt", 200),
        ("/default/link.txt", 200),
    ];
    if root {
        cases.push(("/owner/other.txt", 403));
    }
    expect(&weir, &cases);
}

#[test]
fn execcgi_gates_addhandler_scripts_outside_scriptalias() {
    let site = Site::new();
    let script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\necho \"ran $SCRIPT_NAME\"\n# SECRET source\n";
    for file in ["run/hello.cgi", "run/admin.cgi", "norun/hello.cgi", "plain/hello.cgi"] {
        site.doc(file, script.as_bytes());
        executable(&site.path().join("htdocs").join(file));
    }
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "AddHandler cgi-script .cgi\n\
         <Directory {d}/htdocs>\n Options FollowSymLinks\n</Directory>\n\
         <Directory {d}/htdocs/run>\n Options +ExecCGI\n <Files admin.cgi>\n  Require all denied\n </Files>\n</Directory>\n\
         <Directory {d}/htdocs/norun>\n Options Indexes\n</Directory>\n"
    ));
    expect(
        &weir,
        &[
            ("/norun/hello.cgi", 403),
            ("/norun/hello.cgi/extra", 403),
            ("/plain/hello.cgi", 403),
            // <Files> names the script, whatever PATH_INFO follows it.
            ("/run/admin.cgi", 403),
            ("/run/admin.cgi/x.txt", 403),
            ("/run/admin.cgi/", 403),
        ],
    );
    for proto in [Proto::H1, Proto::H2] {
        assert_eq!(get(&weir, proto, "/run/hello.cgi"), (200, "ran /run/hello.cgi\n".into()), "{proto:?}");
        assert_eq!(get(&weir, proto, "/r%75n/hello.cgi"), (200, "ran /run/hello.cgi\n".into()), "{proto:?}");
    }
}

#[test]
fn a_virtual_hosts_sections_apply_after_the_main_servers_and_only_to_it() {
    let site = Site::new();
    site.doc("private/x.txt", b"SECRET x\n");
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "ServerName localhost\n\
         <Directory {d}/htdocs/private>\n Require all denied\n</Directory>\n\
         <VirtualHost *:*>\n ServerName localhost\n</VirtualHost>\n\
         <VirtualHost *:*>\n ServerName a.test\n\
          <Directory {d}/htdocs/private>\n  Require all granted\n </Directory>\n\
          <FilesMatch \"^index\">\n  Require all denied\n </FilesMatch>\n</VirtualHost>\n"
    ));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let status = |host: &str, path: &str| {
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
        let bytes = client.raw(request.as_bytes()).unwrap();
        raw::responses(&bytes).unwrap().last().map(|r| r.status)
    };
    assert_eq!(status("a.test", "/private/x.txt"), Some(200), "{}", weir.logs());
    assert_eq!(status("a.test", "/index.html"), Some(403));
    assert_eq!(status("a.test", "/"), Some(403), "the index file's <Files> holds for its directory");
    assert_eq!(status("localhost", "/private/x.txt"), Some(403));
    assert_eq!(status("localhost", "/index.html"), Some(200));
    assert_eq!(status("localhost", "/"), Some(200));
}

#[test]
fn basic_authentication_inside_a_directory_section() {
    let site = Site::new();
    let users = site.path().join("users");
    let made =
        std::process::Command::new("htpasswd").arg("-cbB").arg(&users).args(["bob", "secret"]).output();
    if !made.is_ok_and(|o| o.status.success()) {
        assert_ne!(std::env::var("WEIR_REQUIRE_HTPASSWD").as_deref(), Ok("1"), "htpasswd is missing");
        eprintln!("skipped: htpasswd (apache2-utils) is not installed");
        return;
    }
    site.doc("members/m.txt", b"SECRET members\n");
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "<Directory {d}/htdocs/members>\n AuthType Basic\n AuthName \"Members\"\n AuthBasicProvider file\n \
         AuthUserFile {d}/users\n Require valid-user\n</Directory>\n"
    ));
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for proto in [Proto::H1, Proto::H2] {
        let ask = |authorization: Option<&str>| {
            let headers: Vec<(&str, &str)> =
                authorization.map(|a| ("authorization", a)).into_iter().collect();
            client.request_with(proto, "GET", "/members/m.txt", &headers, Vec::new()).unwrap()
        };
        let reply = ask(None);
        assert_eq!(reply.status, 401, "{proto:?}\n{}", weir.logs());
        assert_eq!(reply.header("www-authenticate"), Some("Basic realm=\"Members\""));
        assert_eq!(ask(Some("Basic Ym9iOndyb25n")).status, 401, "{proto:?}: a wrong password");
        let reply = ask(Some("Basic Ym9iOnNlY3JldA=="));
        assert_eq!((reply.status, reply.text().as_str()), (200, "SECRET members\n"), "{proto:?}");
    }
    expect(&weir, &[("/index.html", 200)]);
}

#[test]
fn sections_follow_an_alias_to_the_directory_it_maps_to() {
    let site = Site::new();
    let outside = site.path().join("outside");
    for (name, text) in [("ok.txt", "ok\n"), ("private/x.txt", "SECRET x\n"), ("a.bak", "SECRET bak\n")] {
        let file = outside.join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, text).unwrap();
    }
    let script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nran\\n'\n# SECRET source\n";
    std::fs::write(outside.join("run.cgi"), script).unwrap();
    executable(&outside.join("run.cgi"));
    // DocumentRoot's twin of the denied directory: the sections are chosen by the file, not
    // by the URL.
    site.doc("docs/private/x.txt", b"docroot x\n");
    let d = site.path().display().to_string();
    let weir = site.start(&format!(
        "AddHandler cgi-script .cgi\n\
         Alias /docs {d}/outside\n\
         <Directory {d}/outside>\n Options Indexes\n <Files \"*.bak\">\n  Require all denied\n </Files>\n</Directory>\n\
         <Directory {d}/outside/private>\n Require all denied\n</Directory>\n"
    ));
    expect(
        &weir,
        &[
            ("/docs/ok.txt", 200),
            ("/docs/private/x.txt", 403),
            ("/d%6fcs/private//x.txt", 403),
            ("/docs/a.bak", 403),
            ("/docs/run.cgi", 403),
            ("/docs/run.cgi/x", 403),
            ("/docs/", 200),
        ],
    );
    let (_, listing) = get(&weir, Proto::H2, "/docs/");
    assert!(
        listing.contains("./ok.txt") && !listing.contains("a.bak") && !listing.contains("run.cgi"),
        "{listing}"
    );
}

/// An outside review ran scripts a `<Directory>` closes, through symlinks: a file link, a link
/// to the closed directory, an index script linked there, and links where `Options` follow none.
/// Static files through the same links were refused; scripts now are too.
#[test]
fn a_symlink_never_runs_a_script_a_directory_closes() {
    let site = Site::new();
    let htdocs = site.path().join("htdocs");
    let script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nSECRET-SCRIPT-RAN\\n'\n";
    let open = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nopen script\\n'\n";
    for (name, text) in [("admin/secret.cgi", script), ("pub/ok.cgi", open), ("idx/index.cgi", open)] {
        site.doc(name, text.as_bytes());
        executable(&htdocs.join(name));
    }
    std::fs::create_dir_all(htdocs.join("nolinks")).unwrap();
    symlink("../admin/secret.cgi", htdocs.join("pub/adm.cgi")).unwrap();
    symlink("../admin", htdocs.join("pub/link-admin")).unwrap();
    std::fs::remove_file(htdocs.join("idx/index.cgi")).unwrap();
    symlink("../admin/secret.cgi", htdocs.join("idx/index.cgi")).unwrap();
    symlink("../pub/ok.cgi", htdocs.join("nolinks/l.cgi")).unwrap();
    let h = htdocs.display().to_string();
    let weir = site.start(&format!(
        "AddHandler cgi-script .cgi\nDirectoryIndex index.html index.cgi\n\
         <Directory {h}>\nOptions ExecCGI FollowSymLinks\n</Directory>\n\
         <Directory {h}/admin>\nRequire all denied\n</Directory>\n\
         <Directory {h}/nolinks>\nOptions ExecCGI\n</Directory>\n"
    ));
    expect(
        &weir,
        &[
            ("/pub/ok.cgi", 200),
            ("/admin/secret.cgi", 403),
            ("/pub/adm.cgi", 403),
            ("/pub/adm.cgi/more", 403),
            ("/pub/link-admin/secret.cgi", 403),
            ("/idx/", 403),
            ("/nolinks/l.cgi", 403),
        ],
    );
}
