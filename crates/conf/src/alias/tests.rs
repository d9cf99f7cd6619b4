use super::*;
use crate::Config;

fn load(text: &str) -> Result<Config, crate::ConfigErrors> {
    Config::for_tests(&format!("Listen 127.0.0.1:0 http\n{text}"))
}

fn error(text: &str) -> String {
    match load(text) {
        Ok(_) => panic!("accepted: {text}"),
        Err(errors) => errors.to_string(),
    }
}

fn mapped(rules: &[AliasRule], path: &str) -> Option<(PathBuf, Vec<String>, AliasKind)> {
    map(rules, path).map(|found| {
        let found = found.expect("not escaped");
        (found.root, found.relative, found.kind)
    })
}

#[test]
fn an_alias_matches_whole_segments_and_its_trailing_slash() {
    let config =
        load("Alias /docs /srv/docs\nAlias /icons/ /srv/icons/\nAlias /robots.txt /srv/r.txt\n").unwrap();
    let rules = &config.url_aliases;
    let docs = PathBuf::from("/srv/docs");
    assert_eq!(mapped(rules, "/docs"), Some((docs.clone(), vec![], AliasKind::Files)));
    assert_eq!(mapped(rules, "/docs/"), Some((docs.clone(), vec![], AliasKind::Files)));
    assert_eq!(
        mapped(rules, "/docs/a/b.html"),
        Some((docs, vec!["a".into(), "b.html".into()], AliasKind::Files))
    );
    assert_eq!(mapped(rules, "/docsx"), None, "whole segments only");
    assert_eq!(mapped(rules, "/icons"), None, "the trailing slash must be in the request");
    assert_eq!(mapped(rules, "/icons/a.png").map(|m| m.1), Some(vec!["a.png".to_string()]));
    assert_eq!(mapped(rules, "/robots.txt").map(|m| m.0), Some(PathBuf::from("/srv/r.txt")));
    assert_eq!(mapped(rules, "/DOCS/a"), None, "case-sensitive, as Apache");
}

#[test]
fn the_first_alias_wins_and_a_vhost_comes_before_the_main_server() {
    let config = load(
        "Alias /a /srv/first\nAlias /a/b /srv/second\n<VirtualHost *:80>\nAlias /a /srv/vhost\n</VirtualHost>\n",
    )
    .unwrap();
    assert_eq!(mapped(&config.url_aliases, "/a/b/c").map(|m| m.0), Some(PathBuf::from("/srv/first")));
    assert_eq!(mapped(&config.vhosts[0].url_aliases, "/a/x").map(|m| m.0), Some(PathBuf::from("/srv/vhost")));
    assert_eq!(config.vhosts[0].url_aliases.len(), 3);
}

#[test]
fn a_substitution_never_climbs_out_of_its_directory() {
    let config = load(
        "AliasMatch ^/x(.*)$ /srv/x/$1\nScriptAliasMatch ^/run/([a-z]+)(.*) /srv/cgi/$1$2\nAliasMatch ^/p/(.*)$ /srv/pages/$1.html\n",
    )
    .unwrap();
    let rules = &config.url_aliases;
    assert_eq!(
        mapped(rules, "/x/a/b"),
        Some((PathBuf::from("/srv/x/"), vec!["a".into(), "b".into()], AliasKind::Files))
    );
    // A normalised path has no `..` segment, but a capture may start inside one.
    assert_eq!(map(rules, "/x.."), Some(Err(Escaped)));
    assert_eq!(map(rules, "/x../etc"), Some(Err(Escaped)));
    assert_eq!(map(rules, "/x."), Some(Err(Escaped)));
    assert_eq!(
        mapped(rules, "/run/env/extra"),
        Some((PathBuf::from("/srv/cgi/"), vec!["env".into(), "extra".into()], AliasKind::Scripts))
    );
    assert_eq!(mapped(rules, "/p/a").map(|m| m.1), Some(vec!["a.html".to_string()]));
    // `$1` = `..` made into `...html`: a plain name, inside the directory.
    assert_eq!(mapped(rules, "/p/..").map(|m| m.1), Some(vec!["...html".to_string()]));
}

#[test]
fn templates_substitute_groups_and_escapes() {
    let t = Template::parse(r"/a/$1/\$2/$0");
    let regex = compile("^/(x)").unwrap();
    let groups = regex.captures(b"/x/y").unwrap();
    assert_eq!(t.fill(&groups, str::to_string), "/a/x/$2//x");
}

#[test]
fn redirect_forms_and_statuses() {
    let config = load(
        "Redirect /a https://a.example/new\nRedirect permanent /b /bee\nRedirect 307 /c /see\n\
         Redirect gone /d\nRedirect 404 /e\nRedirectPermanent /f /eff/\nRedirectTemp /g https://g.example\n\
         RedirectMatch seeother ^/h/(.*)\\.gif$ /img/$1.png\nRedirectMatch ^/i(.*) /eye$1\nRedirect seeother /j /jay\n",
    )
    .unwrap();
    let r = |path: &str, query: Option<&str>| redirect(&config.redirects, path, query);
    let to = |status, location: &str| Some(Redirected { status, location: Some(location.to_string()) });
    assert_eq!(r("/a/x y", Some("q=1")), to(302, "https://a.example/new/x%20y?q=1"));
    assert_eq!(r("/ab", None), None, "whole segments");
    assert_eq!(r("/b", None), to(301, "/bee"));
    assert_eq!(r("/c/", None), to(307, "/see/"));
    assert_eq!(r("/d/x", None), Some(Redirected { status: 410, location: None }));
    assert_eq!(r("/e", None), Some(Redirected { status: 404, location: None }));
    assert_eq!(r("/f/x", None), to(301, "/eff/x"));
    assert_eq!(r("/g/x", None), to(302, "https://g.example/x"));
    assert_eq!(r("/g", None), to(302, "https://g.example/"));
    assert_eq!(r("/h/a b.gif", Some("v=2")), to(303, "/img/a%20b.png?v=2"));
    assert_eq!(r("/j", None), to(303, "/jay"));
    assert_eq!(r("/i%3F", None), to(302, "/eye%253F"), "a capture is encoded, never read as a query");
}

#[test]
fn a_whole_site_moves_with_its_paths_and_queries() {
    let config = load("Redirect permanent / https://new.example/\n").unwrap();
    let r =
        |path: &str, query: Option<&str>| redirect(&config.redirects, path, query).and_then(|r| r.location);
    assert_eq!(r("/", None).as_deref(), Some("https://new.example/"));
    assert_eq!(r("/a/b", Some("x=1&y")).as_deref(), Some("https://new.example/a/b?x=1&y"));
    assert_eq!(r("/a#b", None).as_deref(), Some("https://new.example/a%23b"));
}

#[test]
fn a_location_never_becomes_protocol_relative_or_another_host() {
    let config = load(
        "Redirect /old /\nRedirectMatch ^/go(.*)$ /$1\nRedirect /x https://x.example\nRedirect /y/ https://y.example\n",
    )
    .unwrap();
    let location = |path: &str| redirect(&config.redirects, path, None).and_then(|r| r.location);
    assert_eq!(location("/old/evil.example").as_deref(), Some("/evil.example"));
    assert_eq!(location("/old/evil.example/x").as_deref(), Some("/evil.example/x"));
    assert_eq!(location("/go/evil.example").as_deref(), Some("/evil.example"));
    assert_eq!(location("/go\\evil").as_deref(), Some("/%5Cevil"));
    assert_eq!(location("/x/@evil.example").as_deref(), Some("https://x.example/@evil.example"));
    assert_eq!(location("/y/.evil.example").as_deref(), Some("https://y.example/.evil.example"));
    for path in ["/old/evil.example", "/go/evil.example", "/go//evil"] {
        let found = location(path).unwrap();
        assert!(found.starts_with('/') && !found.starts_with("//"), "{path} -> {found}");
    }
}

#[test]
fn configtest_refuses_bad_lines_naming_them() {
    let text = error("ServerName a\nAliasMatch ^/(x /srv/$1\n");
    assert!(
        text.contains("line 3") && text.contains("AliasMatch") && text.contains("regular expression"),
        "{text}"
    );
    let text = error("RedirectMatch 301 ^/(a /b\n");
    assert!(text.contains("line 2") && text.contains("RedirectMatch"), "{text}");
    let text = error("Redirect sometimes /a /b\n");
    assert!(text.contains("line 2") && text.contains("Redirect"), "{text}");
    let text = error("Redirect 299 /a /b\n");
    assert!(text.contains("status from 300 to 599"), "{text}");
    let text = error("Redirect /a relative/path\n");
    assert!(text.contains("absolute URL") && text.contains("line 2"), "{text}");
    let text = error("Redirect /a //evil.example/\n");
    assert!(text.contains("another host"), "{text}");
    let text = error("RedirectMatch ^/a(.*) https://a.example$1\n");
    assert!(text.contains("choose the host"), "{text}");
    let text = error("RedirectMatch ^/a(.*) https://$1/\n");
    assert!(text.contains("names no host"), "{text}");
    let text = error("Redirect 301 /a\n");
    assert!(text.contains("needs a URL"), "{text}");
    let text = error("Redirect gone /a /b\n");
    assert!(text.contains("takes no URL"), "{text}");
    let text = error("Redirect 304 /a /b\n");
    assert!(text.contains("304"), "{text}");
    let text = error("Redirect /a\n");
    assert!(text.contains("line 2") && text.contains("Redirect takes"), "{text}");
    let text = error("Alias docs /srv/docs\n");
    assert!(text.contains("must start with /"), "{text}");
    let text = error("AliasMatch ^/(.*) $1\n");
    assert!(text.contains("absolute"), "{text}");
    let text = error("ScriptAliasMatch ^/(.*) /srv/../$1\n");
    assert!(text.contains(".."), "{text}");
    let text = error("RedirectTemp /a\n");
    assert!(text.contains("RedirectTemp"), "{text}");
    let text = error("<Location /old>\nRedirect /new\n</Location>\n");
    assert!(text.contains("line 3") && text.contains("outside the section"), "{text}");
    let text = error("<Location /docs>\nAlias /srv/docs\n</Location>\n");
    assert!(text.contains("line 3") && text.contains("Alias is not allowed inside <Location>"), "{text}");
}

#[test]
fn overlapping_aliases_are_warned_about() {
    let config = load(
        "ScriptAlias /cgi-bin/ /srv/cgi/\nAlias /docs /srv/docs\nAlias /docs/sub /srv/sub\nAlias /cgi-bin /srv/x\n\
         Alias /other /srv/other\n<VirtualHost *:80>\nAlias /a /srv/a\nAlias /a/b /srv/b\n</VirtualHost>\n",
    )
    .unwrap();
    let text = config.warnings.join("\n");
    assert!(
        text.contains("Alias /docs/sub will probably never match because it overlaps an earlier Alias /docs"),
        "{text}"
    );
    assert!(text.contains("Alias /cgi-bin overlaps ScriptAlias /cgi-bin/"), "{text}");
    assert!(text.contains("Alias /a/b in the <VirtualHost> at /etc/weir/weir.conf:7"), "{text}");
    assert!(!text.contains("/other"), "{text}");
}

/// `RedirectMatch ([a-z]{1,200}){1,200}/zq$ /q/$1` passed configtest and took 7 s of the edge's
/// own time for one 8 KB path, holding up every request meanwhile. Expressions are now compiled
/// as Apache's PCRE reads them (bytes, ASCII `\w`), within a size whose worst case is a few
/// tens of milliseconds.
#[test]
fn an_expression_too_costly_to_match_is_refused_and_ordinary_ones_are_not() {
    let refused = error("RedirectMatch ([a-z]{1,200}){1,200}/zq$ /q/$1\n");
    assert!(refused.contains("RedirectMatch") && refused.contains("size limit"), "{refused}");
    // Unicode \w made this one too large; ASCII \w, as PCRE has it, is small.
    let config = load("AliasMatch ^/u/(\\w{1,64})(?:/(\\w{1,64})){0,3}$ /srv/u/$1\n");
    assert!(config.is_ok(), "{:?}", config.err().map(|e| e.to_string()));
    let pattern = compile("^/(\\w+)$").unwrap();
    assert!(pattern.is_match(b"/abc_1"));
    assert!(!pattern.is_match("/é".as_bytes()), "\\w is ASCII only, as in PCRE");
}
