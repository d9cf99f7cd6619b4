use std::path::Path;

use super::*;
use crate::config::Config;

fn args(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_string).collect()
}

fn load(text: &str) -> Result<Config, crate::ConfigErrors> {
    Config::for_tests(&format!("Listen 80\n{text}"))
}

fn error(text: &str) -> String {
    load(text).unwrap_err().to_string()
}

const SERVER: &str = "192.0.2.10";

fn who<'a>(peer: &str, user: Option<&'a str>) -> Who<'a> {
    Who { peer: peer.parse().unwrap(), local: SERVER.parse().unwrap(), user }
}

/// The merged verdict for `path` of the config's sections.
fn verdict(config: &Config, path: &str, peer: &str, user: Option<&str>) -> Option<Verdict> {
    effective(&config.locations, path).verdict(&who(peer, user))
}

#[test]
fn require_forms() {
    assert_eq!(require(&args("all granted")), Ok(Require::AllGranted));
    assert_eq!(require(&args("local")), Ok(Require::Local));
    assert_eq!(require(&args("valid-user")), Ok(Require::ValidUser));
    assert_eq!(require(&args("user bob alice")), Ok(Require::User(vec!["bob".into(), "alice".into()])));
    assert_eq!(
        require(&args("not ip 10.0.0.1")),
        Ok(Require::Not(Box::new(require(&args("ip 10.0.0.1")).unwrap())))
    );
    let server: IpAddr = SERVER.parse().unwrap();
    let at = |text: &str| text.parse::<IpAddr>().unwrap();
    let ip = require(&args("ip 10.0.0.0/8 192.168.1.7 ::1")).unwrap();
    assert!(ip.allows(at("10.2.3.4"), server));
    assert!(ip.allows(at("192.168.1.7"), server));
    assert!(!ip.allows(at("192.168.1.8"), server));
    assert!(ip.allows(at("::1"), server));
    assert!(Require::Local.allows(at("127.0.0.1"), server));
    assert!(Require::Local.allows(at("::ffff:127.0.0.1"), server));
    assert!(Require::Local.allows(at("192.0.2.10"), server), "the server's own address");
    assert!(!Require::Local.allows(at("127.0.0.2"), at("127.0.0.1")));
    assert!(!Require::Local.allows(at("10.1.1.1"), server));
    assert!(require(&args("ip 10.0.0.0/33")).is_err());
    assert!(require(&args("user")).is_err());
    assert!(require(&args("valid-user x")).is_err());
    assert!(require(&args("group admins")).unwrap_err().to_string().contains("no group files"));
    assert!(require(&args("not not local")).is_err());
}

#[test]
fn user_rules_ask_for_a_user_then_decide() {
    let valid = Require::ValidUser;
    assert_eq!(valid.check(&who("10.0.0.1", None)), Verdict::DeniedNoUser);
    assert_eq!(valid.check(&who("10.0.0.1", Some("bob"))), Verdict::Granted);
    let user = require(&args("user bob")).unwrap();
    assert_eq!(user.check(&who("10.0.0.1", Some("bob"))), Verdict::Granted);
    assert_eq!(user.check(&who("10.0.0.1", Some("Bob"))), Verdict::Denied, "exact, as Apache");
    assert_eq!(user.check(&who("10.0.0.1", None)), Verdict::DeniedNoUser);
}

#[test]
fn every_matching_section_applies_and_later_ones_win() {
    let section = |path: &str, handler: Option<&str>, require: Vec<Require>| Location {
        handler: handler.map(str::to_string),
        require,
        ..Location::at(path)
    };
    let locations = vec![
        section("/", None, vec![Require::AllGranted]),
        section("/private", None, vec![Require::AllDenied]),
        section("/private/open", None, vec![Require::AllGranted]),
        section("/status", Some("server-status"), vec![Require::Local]),
        section("/status/off", Some("none"), vec![]),
    ];
    let rules =
        |path: &str| effective(&locations, path).require.iter().map(|(_, r)| r.to_vec()).collect::<Vec<_>>();
    assert_eq!(rules("/x"), vec![vec![Require::AllGranted]]);
    assert_eq!(rules("/private/x"), vec![vec![Require::AllDenied]]);
    assert_eq!(rules("/privatex"), vec![vec![Require::AllDenied]], "Apache's prefix");
    assert_eq!(rules("/private/open/x"), vec![vec![Require::AllGranted]]);
    let status = effective(&locations, "/status");
    assert_eq!(status.handler, Some("server-status"));
    assert_eq!(rules("/status"), vec![vec![Require::Local]]);
    let off = effective(&locations, "/status/off");
    assert_eq!(off.handler, None, "handler undone");
    assert_eq!(rules("/status/off"), vec![vec![Require::Local]], "Require kept");
}

#[test]
fn a_site_with_basic_auth_loads() {
    let config = load(
        "<Location /private>\n AuthType Basic\n AuthName \"Meter \\\"A\\\" admin\"\n AuthBasicProvider file\n AuthUserFile users\n Require valid-user\n CGIPassAuth On\n</Location>\n",
    )
    .unwrap();
    let merged = effective(&config.locations, "/private/x");
    assert!(merged.auth.basic);
    assert_eq!(merged.auth.realm, Some("Meter \"A\" admin"));
    assert_eq!(merged.auth.user_file, Some(Path::new("/etc/weir/users")));
    assert!(merged.auth.cgi_pass_auth);
    assert_eq!(verdict(&config, "/private/x", "10.0.0.1", None), Some(Verdict::DeniedNoUser));
    assert_eq!(verdict(&config, "/private/x", "10.0.0.1", Some("u")), Some(Verdict::Granted));
    assert_eq!(verdict(&config, "/public", "10.0.0.1", None), None);
}

/// The containers, as mod_authz_core evaluates them.
#[test]
fn containers_combine_as_apache_does() {
    let auth = "AuthType Basic\nAuthName r\nAuthUserFile users\n";
    // An office network, or a password from anywhere else.
    let config = load(&format!(
        "<Location /a>\n{auth}<RequireAny>\nRequire ip 10.0.0.0/8\nRequire valid-user\n</RequireAny>\n</Location>\n"
    ))
    .unwrap();
    assert_eq!(verdict(&config, "/a", "10.1.1.1", None), Some(Verdict::Granted));
    assert_eq!(verdict(&config, "/a", "192.0.2.1", None), Some(Verdict::DeniedNoUser));
    // The office network and a password: from elsewhere no password helps (403, never 401).
    let config = load(&format!(
        "<Location /a>\n{auth}<RequireAll>\nRequire ip 10.0.0.0/8\nRequire user bob\n</RequireAll>\n</Location>\n"
    ))
    .unwrap();
    assert_eq!(verdict(&config, "/a", "192.0.2.1", None), Some(Verdict::Denied));
    assert_eq!(verdict(&config, "/a", "10.1.1.1", None), Some(Verdict::DeniedNoUser));
    assert_eq!(verdict(&config, "/a", "10.1.1.1", Some("bob")), Some(Verdict::Granted));
    assert_eq!(verdict(&config, "/a", "10.1.1.1", Some("eve")), Some(Verdict::Denied));
    // Any valid user but one, and not from a banned block.
    let config = load(&format!(
        "<Location /a>\n{auth}<RequireAll>\nRequire valid-user\nRequire not user mallory\n<RequireNone>\nRequire ip 203.0.113.0/24\n</RequireNone>\n</RequireAll>\n</Location>\n"
    ))
    .unwrap();
    assert_eq!(verdict(&config, "/a", "10.1.1.1", Some("bob")), Some(Verdict::Granted));
    assert_eq!(verdict(&config, "/a", "10.1.1.1", Some("mallory")), Some(Verdict::Denied));
    assert_eq!(verdict(&config, "/a", "203.0.113.9", Some("bob")), Some(Verdict::Denied));
    assert_eq!(verdict(&config, "/a", "203.0.113.9", None), Some(Verdict::Denied), "no password asked");
    assert_eq!(verdict(&config, "/a", "10.1.1.1", None), Some(Verdict::DeniedNoUser));
    // Nested: (local, or bob) and not all denied is just (local or bob).
    let config = load(&format!(
        "<Location /a>\n{auth}<RequireAll>\n<RequireAny>\nRequire local\nRequire user bob\n</RequireAny>\nRequire not ip 192.0.2.99\n</RequireAll>\n</Location>\n"
    ))
    .unwrap();
    assert_eq!(verdict(&config, "/a", "127.0.0.1", None), Some(Verdict::Granted));
    assert_eq!(verdict(&config, "/a", "192.0.2.1", Some("bob")), Some(Verdict::Granted));
    assert_eq!(verdict(&config, "/a", "192.0.2.99", Some("bob")), Some(Verdict::Denied));
}

#[test]
fn several_require_lines_are_an_implicit_require_any() {
    let config =
        load("<Location /a>\nAuthType Basic\nAuthName r\nAuthUserFile u\nRequire ip 10.0.0.0/8\nRequire user bob\n</Location>\n")
            .unwrap();
    assert_eq!(verdict(&config, "/a", "10.9.9.9", None), Some(Verdict::Granted));
    assert_eq!(verdict(&config, "/a", "192.0.2.1", None), Some(Verdict::DeniedNoUser));
    assert_eq!(verdict(&config, "/a", "192.0.2.1", Some("eve")), Some(Verdict::Denied));
}

#[test]
fn auth_merging() {
    let base =
        "<Location />\nAuthType Basic\nAuthName site\nAuthUserFile u\nRequire valid-user\n</Location>\n";
    // Off (the default): the later section's lines replace, its settings inherit.
    let config = load(&format!("{base}<Location /open>\nRequire all granted\n</Location>\n")).unwrap();
    assert_eq!(verdict(&config, "/open/x", "192.0.2.1", None), Some(Verdict::Granted));
    assert_eq!(effective(&config.locations, "/open").auth.realm, Some("site"));
    // A later section with no Require keeps the earlier ones.
    let config = load(&format!("{base}<Location /x>\nAuthName other\n</Location>\n")).unwrap();
    assert_eq!(verdict(&config, "/x", "192.0.2.1", None), Some(Verdict::DeniedNoUser));
    assert_eq!(effective(&config.locations, "/x").auth.realm, Some("other"));
    // And: both must grant.
    let config =
        load(&format!("{base}<Location /lan>\nAuthMerging And\nRequire ip 10.0.0.0/8\n</Location>\n"))
            .unwrap();
    assert_eq!(verdict(&config, "/lan", "10.0.0.1", None), Some(Verdict::DeniedNoUser));
    assert_eq!(verdict(&config, "/lan", "10.0.0.1", Some("bob")), Some(Verdict::Granted));
    assert_eq!(verdict(&config, "/lan", "192.0.2.1", Some("bob")), Some(Verdict::Denied));
    // Or: either.
    let config =
        load(&format!("{base}<Location /lan>\nAuthMerging Or\nRequire ip 10.0.0.0/8\n</Location>\n"))
            .unwrap();
    assert_eq!(verdict(&config, "/lan", "10.0.0.1", None), Some(Verdict::Granted));
    assert_eq!(verdict(&config, "/lan", "192.0.2.1", None), Some(Verdict::DeniedNoUser));
    // An explicit Off with no Require of its own removes the earlier rules, as in Apache.
    let config = load(&format!("{base}<Location /free>\nAuthMerging Off\n</Location>\n")).unwrap();
    assert_eq!(verdict(&config, "/free", "192.0.2.1", None), None);
}

/// Apache's placement rules and their words.
#[test]
fn misplaced_rules_are_refused_as_apache_refuses_them() {
    let loc = |body: &str| {
        error(&format!("<Location /a>\nAuthType Basic\nAuthName r\nAuthUserFile u\n{body}</Location>\n"))
    };
    let text = loc("Require not ip 10.0.0.1\n");
    assert!(
        text.contains("line 6")
            && text.contains("negative Require directive has no effect in <RequireAny> directive"),
        "{text}"
    );
    let text = loc("<RequireNone>\nRequire ip 10.0.0.1\n</RequireNone>\n");
    assert!(text.contains("<RequireNone> directive has no effect in <RequireAny> directive"), "{text}");
    let text = loc("<RequireAll>\n<RequireNone>\n<RequireNone>\nRequire local\n</RequireNone>\n</RequireNone>\nRequire valid-user\n</RequireAll>\n");
    assert!(text.contains("<RequireNone> directive has no effect in <RequireNone> directive"), "{text}");
    let text = loc("<RequireAll>\n</RequireAll>\n");
    assert!(text.contains("<RequireAll> directive contains no authorization directives"), "{text}");
    let text = loc("<RequireAll>\nRequire not ip 10.0.0.1\n<RequireNone>\nRequire user x\n</RequireNone>\n</RequireAll>\n");
    assert!(text.contains("contains only negative authorization directives"), "{text}");
    let text = loc("<RequireAny>\nAuthName x\n</RequireAny>\n");
    assert!(text.contains("AuthName is not allowed in <RequireAny>"), "{text}");
    let text = loc("<RequireAll foo>\nRequire local\n</RequireAll>\n");
    assert!(text.contains("doesn't take additional arguments"), "{text}");
    assert!(error("<RequireAll>\nRequire local\n</RequireAll>\n").contains("RequireAll is not allowed here"));
    assert!(
        error("AuthType Basic\n").contains("line 2")
            && error("AuthType Basic\n").contains("AuthType is not allowed here")
    );
    assert!(error("Require valid-user\n").contains("Require is not allowed here"));
}

#[test]
fn auth_settings_are_checked() {
    let loc = |body: &str| error(&format!("<Location /a>\n{body}\n</Location>\n"));
    assert!(loc("AuthType Digest").contains("weir refuses Digest"));
    assert!(loc("AuthType Form").contains("Form needs sessions"));
    assert!(loc("AuthType Kerberos").contains("weir knows AuthType Basic"));
    assert!(loc("AuthBasicProvider file ldap").contains("AuthBasicProvider: invalid value 'ldap'"));
    assert!(loc("CGIPassAuth maybe").contains("CGIPassAuth: invalid value 'maybe'"));
    assert!(loc("AuthMerging Xor").contains("Off | And | Or"));
    assert!(loc("AuthUserFile a b").contains("AuthUserFile takes one argument"));
    assert!(loc("AuthUserFiles a").contains("did you mean 'AuthUserFile'"));
    assert!(loc("StartServers 5").contains("StartServers is not allowed here"));
}

#[test]
fn a_user_rule_needs_basic_and_a_file_where_it_applies() {
    let text = error("<Location /a>\nRequire valid-user\n</Location>\n");
    assert!(text.contains("line 2") && text.contains("no AuthType Basic applies"), "{text}");
    let text = error("<Location /a>\nAuthType Basic\nAuthName r\n<RequireAny>\nRequire user bob\n</RequireAny>\n</Location>\n");
    assert!(text.contains("no AuthUserFile applies"), "{text}");
    let text = error("<Location /a>\nAuthType Basic\nAuthUserFile u\nRequire user bob\n</Location>\n");
    assert!(text.contains("no AuthName applies"), "{text}");
    // Settings from an enclosing section count, in either order, and AuthType None undoes them.
    load("<Location />\nAuthType Basic\nAuthName r\nAuthUserFile u\n</Location>\n<Location /a>\nRequire valid-user\n</Location>\n").unwrap();
    load("<Location /a>\nRequire valid-user\n</Location>\n<Location />\nAuthType Basic\nAuthName r\nAuthUserFile u\n</Location>\n").unwrap();
    assert!(load("<Location />\nAuthType Basic\nAuthName r\nAuthUserFile u\n</Location>\n<Location /a>\nAuthType None\nRequire valid-user\n</Location>\n").is_err());
}

#[test]
fn failure_block_directive() {
    use crate::auth::FailureBlock;
    let config = load("").unwrap();
    assert_eq!(config.auth_failure_block, Some(FailureBlock::default()));
    let config = load("AuthFailureBlock 3 30\n").unwrap();
    assert_eq!(
        config.auth_failure_block,
        Some(FailureBlock { failures: 3, window: std::time::Duration::from_secs(30) })
    );
    assert_eq!(load("AuthFailureBlock Off\n").unwrap().auth_failure_block, None);
    assert!(error("AuthFailureBlock 3 0\n").contains("window must be"));
    assert!(error("AuthFailureBlock many\n").contains("AuthFailureBlock: invalid value"));
}
