use super::*;
use crate::config::Source;
use crate::location::{self, Require};
use crate::Config;

fn load(text: &str) -> Result<Config, crate::ConfigErrors> {
    Config::from_text(text, Path::new("t.conf"), Source::BuiltIn, PathBuf::from("/r"))
}

/// The `Require` verdict for a file and a URL path, with the sections merged as the edge does.
fn verdict(config: &Config, file: &str, url: &str) -> Option<location::Verdict> {
    let applied = config.sections.applied(Path::new(file), file.ends_with('/'));
    let merged = location::merge(
        applied.rules.iter().copied().chain(config.locations.iter().filter(|l| l.matches(url))),
    );
    let who =
        location::Who { peer: "192.0.2.9".parse().unwrap(), local: "192.0.2.1".parse().unwrap(), user: None };
    merged.verdict(&who)
}

const DEBIAN: &str = "Listen 80\n\
<Directory />\n\tOptions FollowSymLinks\n\tAllowOverride None\n\tRequire all denied\n</Directory>\n\
<Directory /usr/share>\n\tAllowOverride None\n\tRequire all granted\n</Directory>\n\
<Directory /var/www/>\n\tOptions Indexes FollowSymLinks\n\tAllowOverride None\n\tRequire all granted\n</Directory>\n\
<FilesMatch \"^\\.ht\">\n\tRequire all denied\n</FilesMatch>\n";

#[test]
fn debians_sections_mean_what_they_mean_in_apache() {
    use location::Verdict::*;
    let config = load(DEBIAN).unwrap();
    assert_eq!(config.sections.directories.len(), 3);
    assert_eq!(verdict(&config, "/var/www/html/index.html", "/index.html"), Some(Granted));
    assert_eq!(verdict(&config, "/var/www/html/.htpasswd", "/.htpasswd"), Some(Denied));
    assert_eq!(verdict(&config, "/etc/passwd", "/passwd"), Some(Denied));
    assert_eq!(verdict(&config, "/var/wwwx/a", "/a"), Some(Denied), "components, not a string prefix");
    assert_eq!(verdict(&config, "/usr/share/doc/x", "/x"), Some(Granted));
    let www = config.sections.applied(Path::new("/var/www/html/a.txt"), false);
    assert_eq!(www.options, Some(Options { indexes: true, follow_symlinks: true, ..Options::default() }));
    assert!(!config.sections.depends_on_kind(Path::new("/var/www/html/a.txt")));
    assert!(config.sections.depends_on_kind(Path::new("/var/www")));
    assert!(config.sections.depends_on_kind(Path::new("/usr/share")));
    let root = config.sections.applied(Path::new("/srv/a.txt"), false);
    assert_eq!(root.options, Some(Options::APACHE_DEFAULT));
    assert_eq!(config.sections.applied(Path::new("/srv/a.txt"), false).rules.len(), 1);
}

#[test]
fn merge_order_is_apaches() {
    use location::Verdict::*;
    // Written longest first and regex first: the order of merging is still Apache's.
    let config = load(
        "Listen 80\n\
         <Files secret.txt>\n Require all denied\n</Files>\n\
         <DirectoryMatch \"^/srv/www/(.+/)?[0-9]{3}/\">\n Require all denied\n</DirectoryMatch>\n\
         <Directory /srv/www/open>\n Require all granted\n</Directory>\n\
         <Directory /srv/www>\n Require all denied\n</Directory>\n\
         <Location /reopened>\n Require all granted\n</Location>\n",
    )
    .unwrap();
    assert_eq!(
        verdict(&config, "/srv/www/open/a", "/open/a"),
        Some(Granted),
        "longer directory after shorter"
    );
    assert_eq!(verdict(&config, "/srv/www/a", "/a"), Some(Denied));
    assert_eq!(verdict(&config, "/srv/www/open/123/a", "/open/123/a"), Some(Denied), "regex after plain");
    assert_eq!(
        verdict(&config, "/srv/www/open/secret.txt", "/open/secret.txt"),
        Some(Denied),
        "files after dirs"
    );
    assert_eq!(verdict(&config, "/srv/www/a", "/reopened/a"), Some(Granted), "Location last");
    // And the reverse: a Location denies what a Directory grants.
    let config =
        load("Listen 80\n<Location /x>\n Require all denied\n</Location>\n<Directory /srv>\n Require all granted\n</Directory>\n")
            .unwrap();
    assert_eq!(verdict(&config, "/srv/x/a", "/x/a"), Some(Denied));
    assert_eq!(verdict(&config, "/srv/y/a", "/y/a"), Some(Granted));
}

#[test]
fn nested_files_apply_only_inside_their_directory() {
    use location::Verdict::*;
    let config = load(
        "Listen 80\n<Directory /srv/cgi-bin>\n <Files \"*.bak\">\n  Require all denied\n </Files>\n</Directory>\n\
         <Files ~ \"\\.old$\">\n Require all denied\n</Files>\n",
    )
    .unwrap();
    assert_eq!(verdict(&config, "/srv/cgi-bin/x.bak", "/x.bak"), Some(Denied));
    assert_eq!(verdict(&config, "/srv/other/x.bak", "/x.bak"), None);
    assert_eq!(verdict(&config, "/srv/other/x.old", "/x.old"), Some(Denied));
    assert_eq!(verdict(&config, "/srv/other/x.older", "/x.older"), None);
}

#[test]
fn ifmodule_inside_a_section_takes_apaches_branch() {
    let config = load(
        "Listen 80\n<Directory /a>\n <IfModule mod_rewrite.c>\n  RewriteEngine On\n </IfModule>\n          <IfModule authz_core_module>\n  Require all denied\n </IfModule>\n</Directory>\n",
    )
    .unwrap();
    assert_eq!(verdict(&config, "/a/x", "/x"), Some(location::Verdict::Denied));
}

#[test]
fn wildcards_cover_one_component_each() {
    let config =
        load("Listen 80\n<Directory /home/*/public_html>\n Options +Indexes\n</Directory>\n").unwrap();
    let applied = |path: &str| config.sections.applied(Path::new(path), false).options;
    assert_eq!(applied("/home/ann/public_html/a/b.txt").map(|o| o.indexes), Some(true));
    assert_eq!(applied("/home/ann/x/public_html/b.txt"), None);
    assert_eq!(applied("/home/public_html/b.txt"), None);
}

#[test]
fn options_merge_with_plus_and_minus() {
    let config = load(
        "Listen 80\nOptions None\n<Directory /a>\n Options +Indexes +ExecCGI\n</Directory>\n\
         <Directory /a/b>\n Options -Indexes\n Options +SymLinksIfOwnerMatch\n</Directory>\n\
         <Directory /a/b/c>\n Options All\n</Directory>\n<Files z>\n Options None\n</Files>\n",
    )
    .unwrap();
    let options = |path: &str| config.sections.applied(Path::new(path), false).options.unwrap();
    assert_eq!(options("/x/y"), Options::default());
    assert_eq!(options("/a/y"), Options { indexes: true, exec_cgi: true, ..Options::default() });
    assert_eq!(
        options("/a/b/y"),
        Options { exec_cgi: true, symlinks_if_owner_match: true, ..Options::default() }
    );
    assert!(options("/a/b/c/y").follow_symlinks && options("/a/b/c/y").indexes);
    assert_eq!(options("/a/b/c/z"), Options::default());
    // With no Options anywhere, none applies: the edge keeps its defaults.
    let config = load("Listen 80\n<Directory /a>\n Require all granted\n</Directory>\n").unwrap();
    assert_eq!(config.sections.applied(Path::new("/a/x"), false).options, None);
}

#[test]
fn refusals_name_the_line() {
    for (text, line, words) in [
        ("<Directory /a>\n Options MultiViews\n</Directory>\n", 3, "mod_negotiation"),
        ("<Directory /a>\n Options +Includes\n</Directory>\n", 3, "server-side includes"),
        ("<Directory /a>\n Options Indexes +ExecCGI\n</Directory>\n", 3, "Either all Options"),
        ("<Directory /a>\n AllowOverride All\n</Directory>\n", 3, "no .htaccess"),
        ("<Directory /a>\n DocumentRoot /x\n</Directory>\n", 3, "DocumentRoot"),
        ("<Directory /a>\n SetHandler server-status\n</Directory>\n", 3, "SetHandler none"),
        ("<Directory /a>\n RewriteEngine On\n</Directory>\n", 3, "mod_rewrite"),
        ("<Directory /a>\n <Directory /a/b>\n </Directory>\n</Directory>\n", 3, "cannot occur within"),
        ("<Files a>\n <Files b>\n </Files>\n</Files>\n", 3, "cannot occur within"),
        ("<DirectoryMatch \"(?<=x)y\">\n</DirectoryMatch>\n", 2, "look-around"),
        ("<FilesMatch ~ x>\n</FilesMatch>\n", 2, "one argument"),
        ("<Directory /a/../b>\n</Directory>\n", 2, ". or .."),
        (
            "<Directory /a>\n SSLOptions +ExportCertData\n</Directory>\n",
            3,
            "<VirtualHost>, not per directory",
        ),
        ("<Directory /a>\n CGIPassAuth On\n</Directory>\n", 3, "<Location>"),
        (
            "<Files a>\n ErrorDocument 404 /missing.html\n</Files>\n",
            3,
            "not read ErrorDocument in <Files> sections",
        ),
    ] {
        let text = format!("Listen 80\n{text}");
        let errors = load(&text).unwrap_err().to_string();
        assert!(
            errors.contains(&format!("line {line} of t.conf")) && errors.contains(words),
            "{text}: {errors}"
        );
    }
}

#[test]
fn vhost_sections_follow_the_main_servers() {
    use location::Verdict::*;
    let config = load(
        "Listen 80\n<Directory /srv>\n Require all denied\n</Directory>\n\
         <VirtualHost *:80>\n ServerName a.example\n <Directory /srv>\n  Require all granted\n </Directory>\n Options +Indexes\n</VirtualHost>\n",
    )
    .unwrap();
    let host = &config.vhosts[0];
    assert_eq!(host.sections.directories.len(), 3);
    let applied = host.sections.applied(Path::new("/srv/a"), false);
    let merged = location::merge(applied.rules.iter().copied());
    let who =
        location::Who { peer: "192.0.2.9".parse().unwrap(), local: "192.0.2.1".parse().unwrap(), user: None };
    assert_eq!(merged.verdict(&who), Some(Granted));
    assert_eq!(applied.options.map(|o| o.indexes), Some(true));
    assert!(config.sections.directories.len() == 1, "the host's sections stay in it");
    assert_eq!(verdict(&config, "/srv/a", "/a"), Some(Denied));
    let _ = Require::AllGranted;
}

/// Debian's serve-cgi-bin.conf writes `Options +ExecCGI -MultiViews +SymLinksIfOwnerMatch`:
/// taking away what weir never does loads; asking for it is still refused.
#[test]
fn taking_away_multiviews_or_includes_is_accepted() {
    let config = load(
        "Listen 80\n<Directory /usr/lib/cgi-bin>\nOptions +ExecCGI -MultiViews +SymLinksIfOwnerMatch\n</Directory>\n",
    );
    assert!(config.is_ok(), "{:?}", config.err().map(|e| e.to_string()));
    assert!(load("Listen 80\n<Directory /srv>\nOptions -Includes -IncludesNOEXEC\n</Directory>\n").is_ok());
    assert!(load("Listen 80\n<Directory /srv>\nOptions +MultiViews\n</Directory>\n").is_err());
}
