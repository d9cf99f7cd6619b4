//! `<Location>` sections: the handler of a URL path (`SetHandler server-status`), who may reach
//! it (`Require` and the `<RequireAll|Any|None>` containers, mod_authz_core's rules), and how a
//! user proves who they are (`AuthType Basic`, `AuthName`, `AuthUserFile`), merged as Apache
//! merges them ([`effective`]).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Problem};
use crate::syntax::{Node, Span};

/// One `Require` line, or a container of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Require {
    /// `Require all granted`.
    AllGranted,
    /// `Require all denied`.
    AllDenied,
    /// `Require local`: 127.0.0.1, ::1, or a client on the server's own address. Stricter than
    /// Apache, which admits all of 127.0.0.0/8: on an appliance, other loopback addresses are
    /// often proxies, containers or tunnels speaking for remote clients.
    Local,
    /// `Require ip 10.1.0.0/16 192.168.1.7 …`.
    Ip(Vec<IpNet>),
    /// `Require valid-user`: any user the password file lets in.
    ValidUser,
    /// `Require user a b …`: one of these users (names compared exactly, as Apache does).
    User(Vec<String>),
    /// `Require not …`: refuses what the rule grants, and grants nothing (only inside
    /// `<RequireAll>`, as Apache allows it).
    Not(Box<Require>),
    /// `<RequireAll>`: none may deny and one must grant.
    AllOf(Vec<Require>),
    /// `<RequireAny>`: one must grant.
    AnyOf(Vec<Require>),
    /// `<RequireNone>`: none may grant; it can only deny (so never alone, as in Apache).
    NoneOf(Vec<Require>),
}

/// An address or a CIDR block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(self.prefix)).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(self.prefix)).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V4(ip)) => net.to_ipv4_mapped() == Some(ip) && self.prefix >= 96,
            _ => false,
        }
    }
}

/// The result of a rule, in mod_authz_core's four values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Granted,
    Denied,
    /// Denied for now: an authenticated user could change the answer.
    DeniedNoUser,
    /// Neither: a negated rule that did not match.
    Neutral,
}

/// Who is asking: the client's address, the server's address it reached, and the user it
/// proved to be, once it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Who<'a> {
    pub peer: IpAddr,
    pub local: IpAddr,
    pub user: Option<&'a str>,
}

impl Require {
    /// Whether a client at `peer`, connected to the server's address `local`, is let in, before
    /// any authentication.
    pub fn allows(&self, peer: IpAddr, local: IpAddr) -> bool {
        self.check(&Who { peer, local, user: None }) == Verdict::Granted
    }

    /// The rule's verdict for `who`, as mod_authz_core's `apply_authz_sections` gives it.
    pub fn check(&self, who: &Who<'_>) -> Verdict {
        let granted = |yes: bool| if yes { Verdict::Granted } else { Verdict::Denied };
        match self {
            Require::AllGranted => Verdict::Granted,
            Require::AllDenied => Verdict::Denied,
            Require::Local => {
                let peer = who.peer.to_canonical();
                granted(
                    peer == IpAddr::from([127, 0, 0, 1])
                        || peer == IpAddr::from(std::net::Ipv6Addr::LOCALHOST)
                        || peer == who.local.to_canonical(),
                )
            }
            Require::Ip(nets) => granted(nets.iter().any(|net| net.contains(who.peer.to_canonical()))),
            Require::ValidUser => who.user.map_or(Verdict::DeniedNoUser, |_| Verdict::Granted),
            Require::User(names) => match who.user {
                None => Verdict::DeniedNoUser,
                Some(user) => granted(names.iter().any(|name| name == user)),
            },
            Require::Not(rule) => negate(rule.check(who)),
            Require::AllOf(rules) => combine(Op::All, rules, who),
            Require::AnyOf(rules) => combine(Op::Any, rules, who),
            Require::NoneOf(rules) => negate(combine(Op::Any, rules, who)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    All,
    Any,
}

/// A negated rule grants nothing: what it grants is denied, what it denies is neutral.
fn negate(verdict: Verdict) -> Verdict {
    match verdict {
        Verdict::Granted => Verdict::Denied,
        Verdict::Denied | Verdict::DeniedNoUser => Verdict::Neutral,
        Verdict::Neutral => Verdict::Neutral,
    }
}

/// A container's verdict from its children's, as mod_authz_core combines them: a denial wins
/// over "no user yet" under All, a grant wins under Any, neutral children do not count.
fn combine(op: Op, rules: &[Require], who: &Who<'_>) -> Verdict {
    combine_verdicts(op, rules.iter().map(|rule| rule.check(who)))
}

fn combine_verdicts(op: Op, verdicts: impl IntoIterator<Item = Verdict>) -> Verdict {
    let mut result = Verdict::Neutral;
    for verdict in verdicts {
        if verdict == Verdict::Neutral {
            continue;
        }
        match op {
            Op::All => {
                if verdict == Verdict::Denied {
                    return Verdict::Denied;
                }
                if verdict == Verdict::DeniedNoUser || result == Verdict::Neutral {
                    result = verdict;
                }
            }
            Op::Any => {
                if verdict == Verdict::Granted {
                    return Verdict::Granted;
                }
                if (verdict == Verdict::DeniedNoUser && result == Verdict::Denied)
                    || result == Verdict::Neutral
                {
                    result = verdict;
                }
            }
        }
    }
    result
}

/// `AuthMerging`: how a section's `Require` lines combine with those of the sections before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Merging {
    /// The section's own lines replace the earlier ones (Apache's default); `AuthMerging Off`
    /// written in a section without `Require` removes the earlier ones, as in Apache.
    Off,
    /// Both the earlier rules and the section's must grant.
    And,
    /// Either may grant.
    Or,
}

/// The authentication settings of one section; each unset one is taken from the sections
/// before it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// `AuthType Basic` (true) or `AuthType None` (false).
    pub basic: Option<bool>,
    /// `AuthName`: the realm named in the 401's `WWW-Authenticate`.
    pub realm: Option<String>,
    /// `AuthUserFile`: the htpasswd file.
    pub user_file: Option<PathBuf>,
    /// `CGIPassAuth`: scripts see the `Authorization` header (as HTTP_AUTHORIZATION).
    pub cgi_pass_auth: Option<bool>,
    /// `AuthMerging`.
    pub merging: Option<Merging>,
    /// Where the section starts, for the errors found once every section is read.
    pub(crate) at: Option<Span>,
}

/// A `<Location path>` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// URL path prefix, slashes merged, compared with the normalised, decoded request path as
    /// Apache compares it: a plain string prefix (`/private` covers `/private/x` and also
    /// `/privatex`; `/private/` only what is below it).
    pub path: String,
    /// `SetHandler`, such as `server-status` (`none` is kept, to undo an earlier one).
    pub handler: Option<String>,
    /// `Require` lines and containers; any one granting is enough (Apache's implicit
    /// RequireAny).
    pub require: Vec<Require>,
    /// `AuthType`, `AuthName`, `AuthUserFile`, `CGIPassAuth`, `AuthMerging`.
    pub auth: Auth,
    /// `ErrorDocument`s for the errors of requests whose path this section matches: they
    /// replace the site's (and an earlier section's) code by code.
    pub error_documents: crate::error_document::ErrorDocuments,
}

impl Location {
    pub fn matches(&self, path: &str) -> bool {
        path.starts_with(self.path.as_str())
    }

    /// A section with a path and nothing else.
    pub fn at(path: &str) -> Location {
        Location {
            path: path.to_string(),
            handler: None,
            require: Vec::new(),
            auth: Auth::default(),
            error_documents: Default::default(),
        }
    }
}

/// The authentication settings that apply to a path, merged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EffectiveAuth<'a> {
    /// `AuthType Basic` applies.
    pub basic: bool,
    pub realm: Option<&'a str>,
    pub user_file: Option<&'a Path>,
    pub cgi_pass_auth: bool,
}

/// What every `<Location>` that matches a path says, merged in order of appearance as Apache
/// merges them: a later `SetHandler` replaces an earlier one (`none` removes it), a later
/// section's `Require` lines replace the earlier ones unless its `AuthMerging` says And or Or,
/// and each authentication setting is the last one set.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Effective<'a> {
    pub handler: Option<&'a str>,
    /// The sets of `Require` lines in force, each combined with the result of those before it
    /// by its section's merging (the first one's is not looked at).
    pub require: Vec<(Merging, &'a [Require])>,
    pub auth: EffectiveAuth<'a>,
}

impl Effective<'_> {
    /// Whether a client may reach the path before any authentication. With no `Require`,
    /// everyone may (Apache).
    pub fn allows(&self, peer: IpAddr, local: IpAddr) -> bool {
        self.verdict(&Who { peer, local, user: None }).is_none_or(|v| v == Verdict::Granted)
    }

    /// The merged rules' verdict for `who`; `None` when no `Require` applies.
    pub fn verdict(&self, who: &Who<'_>) -> Option<Verdict> {
        let mut sets = self.require.iter();
        let (_, first) = sets.next()?;
        let mut result = combine(Op::Any, first, who);
        for (merging, rules) in sets {
            let own = combine(Op::Any, rules, who);
            result = match merging {
                Merging::And => combine_verdicts(Op::All, [result, own]),
                Merging::Or => combine_verdicts(Op::Any, [result, own]),
                Merging::Off => own,
            };
        }
        Some(result)
    }
}

/// The merged sections for a normalised request path.
pub fn effective<'a>(locations: &'a [Location], path: &str) -> Effective<'a> {
    merge(locations.iter().filter(|l| l.matches(path)))
}

/// Merges sections that apply, in the order given: the `<Directory>` and `<Files>` sections'
/// rules first ([`crate::directory::Sections::applied`]), then the matching `<Location>`s.
pub fn merge<'a>(sections: impl IntoIterator<Item = &'a Location>) -> Effective<'a> {
    let mut merged = Effective::default();
    for location in sections {
        if let Some(handler) = &location.handler {
            merged.handler = (handler != "none").then_some(handler.as_str());
        }
        let auth = &location.auth;
        match (auth.merging, location.require.is_empty()) {
            (None, true) | (Some(Merging::And | Merging::Or), true) => {}
            (Some(Merging::Off), true) => merged.require.clear(),
            (None | Some(Merging::Off), false) => {
                merged.require.clear();
                merged.require.push((Merging::Off, &location.require));
            }
            (Some(merging), false) => merged.require.push((merging, &location.require)),
        }
        if let Some(basic) = auth.basic {
            merged.auth.basic = basic;
        }
        if let Some(realm) = &auth.realm {
            merged.auth.realm = Some(realm);
        }
        if let Some(file) = &auth.user_file {
            merged.auth.user_file = Some(file);
        }
        if let Some(pass) = auth.cgi_pass_auth {
            merged.auth.cgi_pass_auth = pass;
        }
    }
    merged
}

/// Handlers weir knows for `SetHandler`.
pub const HANDLERS: &[&str] = &["server-status", "none"];

/// Directives that mean something only inside `<Location>` (and, in Apache, `<Directory>`):
/// anywhere else they are refused as not allowed there.
pub const SECTION_ONLY: &[&str] = &[
    "SetHandler",
    "Require",
    "AuthType",
    "AuthName",
    "AuthBasicProvider",
    "AuthUserFile",
    "AuthMerging",
    "CGIPassAuth",
];

/// The containers of `Require` lines.
pub const CONTAINERS: &[&str] = &["RequireAll", "RequireAny", "RequireNone"];

/// The canonical spelling of a section-only directive or container, if `name` is one.
pub fn section_only(name: &str) -> Option<&'static str> {
    SECTION_ONLY.iter().chain(CONTAINERS).find(|known| known.eq_ignore_ascii_case(name)).copied()
}

/// `Require …` as mod_authz_core, mod_authz_host and mod_authz_user read it.
pub fn require(args: &[String]) -> Result<Require, Problem> {
    let bad = |reason: &str| Problem::BadValue {
        directive: "Require",
        value: args.join(" "),
        reason: reason.to_string(),
    };
    let kind = args.first().map(|a| a.to_ascii_lowercase());
    match (kind.as_deref(), args.len()) {
        (Some("not"), n) if n >= 2 => match require(&args[1..])? {
            Require::Not(_) => Err(bad("Require not not … means nothing")),
            rule => Ok(Require::Not(Box::new(rule))),
        },
        (Some("all"), 2) => match args[1].to_ascii_lowercase().as_str() {
            "granted" => Ok(Require::AllGranted),
            "denied" => Ok(Require::AllDenied),
            _ => Err(bad("expected all granted or all denied")),
        },
        (Some("local"), 1) => Ok(Require::Local),
        (Some("ip"), n) if n >= 2 => args[1..]
            .iter()
            .map(|net| {
                ip_net(net).ok_or_else(|| bad("expected addresses or CIDR blocks, such as 10.0.0.0/8"))
            })
            .collect::<Result<_, _>>()
            .map(Require::Ip),
        (Some("valid-user"), 1) => Ok(Require::ValidUser),
        (Some("user"), n) if n >= 2 => Ok(Require::User(args[1..].to_vec())),
        (Some("user"), 1) => Err(bad("Require user needs at least one user name")),
        (Some("group" | "file-owner" | "file-group"), _) => Err(bad(
            "weir has no group files (mod_authz_groupfile) nor file owners; list the users with Require user a b …",
        )),
        (Some("expr" | "env" | "method" | "host" | "forward-dns" | "ldap-user" | "ldap-group" | "dbd-group"), _) => {
            Err(bad("weir knows Require all, local, ip, valid-user and user (and not …, and the <RequireAll|Any|None> containers)"))
        }
        _ => Err(bad("weir knows Require all granted|denied, local, ip …, valid-user and user …")),
    }
}

/// An address or CIDR block as `Require ip` and `RemoteIPTrustedProxy` write it.
pub(crate) fn ip_net(text: &str) -> Option<IpNet> {
    let (addr, prefix) = match text.split_once('/') {
        Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
        None => (text, None),
    };
    let addr: IpAddr = addr.parse().ok()?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let prefix = prefix.unwrap_or(max);
    (prefix <= max).then_some(IpNet { addr, prefix })
}

/// How a container or the section itself combines its children, for Apache's placement rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Context {
    /// The section's own lines (an implicit `<RequireAny>`), or `<RequireAny>`.
    Any,
    All,
    None,
}

impl Context {
    fn name(self) -> &'static str {
        match self {
            Context::Any => "<RequireAny>",
            Context::All => "<RequireAll>",
            Context::None => "<RequireNone>",
        }
    }

    /// Apache refuses a negation under an OR (Any, None): it could only ever be neutral there.
    fn takes_negation(self) -> bool {
        self == Context::All
    }
}

/// Reads the lines inside a `<Location>`: SetHandler, Require and its containers, and the
/// authentication settings. `resolve` makes a file path absolute (from the server root).
pub(crate) fn read_section(
    location: &mut Location,
    children: &[Node],
    resolve: &dyn Fn(&str) -> PathBuf,
    errors: &mut Vec<ConfigError>,
) {
    for node in children {
        match node {
            Node::Section { name, args, span, children } => {
                match container(name, args, children, Context::Any, errors) {
                    Ok(Some(rule)) => location.require.push(rule),
                    Ok(None) => {}
                    Err(problem) => errors.push(ConfigError::at(span, Some(name), problem)),
                }
            }
            Node::Directive { name, args, span } => {
                let result = if name.eq_ignore_ascii_case("Require") {
                    require_line(args, Context::Any).map(|rule| location.require.push(rule))
                } else {
                    setting(location, name, args, resolve)
                };
                if let Err(problem) = result {
                    errors.push(ConfigError::at(span, Some(name), problem));
                }
            }
        }
    }
}

/// One `Require` line where `context` combines it.
fn require_line(args: &[String], context: Context) -> Result<Require, Problem> {
    let rule = require(args)?;
    if matches!(rule, Require::Not(_)) && !context.takes_negation() {
        return Err(Problem::Contradiction(format!(
            "negative Require directive has no effect in {} directive",
            context.name()
        )));
    }
    Ok(rule)
}

/// `<RequireAll|Any|None>` inside `parent`: `Ok(None)` when its errors are already collected.
fn container(
    name: &str,
    args: &[String],
    children: &[Node],
    parent: Context,
    errors: &mut Vec<ConfigError>,
) -> Result<Option<Require>, Problem> {
    let context = match section_only(name) {
        Some("RequireAll") => Context::All,
        Some("RequireAny") => Context::Any,
        Some("RequireNone") => Context::None,
        _ => return Err(Problem::UnknownSection { name: name.to_string() }),
    };
    if !args.is_empty() {
        return Err(Problem::Contradiction(format!("<{name}> directive doesn't take additional arguments")));
    }
    if context == Context::None && !parent.takes_negation() {
        return Err(Problem::Contradiction(format!(
            "<RequireNone> directive has no effect in {} directive",
            parent.name()
        )));
    }
    let mut rules = Vec::new();
    let before = errors.len();
    for node in children {
        match node {
            Node::Directive { name, args, span } if name.eq_ignore_ascii_case("Require") => {
                match require_line(args, context) {
                    Ok(rule) => rules.push(rule),
                    Err(problem) => errors.push(ConfigError::at(span, Some(name), problem)),
                }
            }
            Node::Directive { name, span, .. } => errors.push(ConfigError::at(
                span,
                Some(name),
                Problem::Contradiction(format!(
                    "{name} is not allowed in {}: it holds only Require lines and <RequireAll|Any|None> sections",
                    context.name()
                )),
            )),
            Node::Section { name, args, span, children } => {
                match container(name, args, children, context, errors) {
                    Ok(Some(rule)) => rules.push(rule),
                    Ok(None) => {}
                    Err(problem) => errors.push(ConfigError::at(span, Some(name), problem)),
                }
            }
        }
    }
    if errors.len() > before {
        return Ok(None);
    }
    if rules.is_empty() {
        return Err(Problem::Contradiction(format!(
            "{} directive contains no authorization directives",
            context.name()
        )));
    }
    let rule = match context {
        Context::All => Require::AllOf(rules),
        Context::Any => Require::AnyOf(rules),
        Context::None => Require::NoneOf(rules),
    };
    if let Require::AllOf(rules) = &rule {
        if positives(rules) == 0 {
            return Err(Problem::Contradiction(
                "<RequireAll> directive contains only negative authorization directives, so it can grant nothing"
                    .to_string(),
            ));
        }
    }
    Ok(Some(rule))
}

/// The rules of a `<RequireAll>` that can grant, counting a nested `<RequireAll>`'s as its own
/// and a `<RequireNone>`'s as negative, as Apache flattens them before it checks.
fn positives(rules: &[Require]) -> usize {
    rules
        .iter()
        .map(|rule| match rule {
            Require::Not(_) | Require::NoneOf(_) => 0,
            Require::AllOf(inner) => positives(inner),
            _ => 1,
        })
        .sum()
}

/// SetHandler and the authentication settings.
fn setting(
    location: &mut Location,
    name: &str,
    args: &[String],
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<(), Problem> {
    let one = |directive: &'static str, help: &'static str| match args {
        [value] => Ok(value.as_str()),
        _ => Err(Problem::Arity { directive, expected: "one argument", help }),
    };
    let bad = |directive: &'static str, value: &str, reason: &str| Problem::BadValue {
        directive,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    if name.eq_ignore_ascii_case("ErrorDocument") {
        return match crate::error_document::parse(args)? {
            Ok((code, document)) => {
                location.error_documents.set(code, document);
                Ok(())
            }
            // Apache ignores it with a notice; in a section weir says so at once.
            Err(notice) => Err(Problem::Contradiction(notice)),
        };
    }
    let auth = &mut location.auth;
    match section_only(name) {
        Some("SetHandler") => {
            let handler = one("SetHandler", "a handler name that overrides any other configured handler")?;
            let lower = handler.to_ascii_lowercase();
            if !HANDLERS.contains(&lower.as_str()) {
                return Err(bad(
                    "SetHandler",
                    handler,
                    "weir's edge knows the handler server-status (and none)",
                ));
            }
            location.handler = Some(lower);
        }
        Some("AuthType") => {
            let kind = one("AuthType", "an HTTP authorization type (e.g., \"Basic\")")?;
            auth.basic = Some(match kind.to_ascii_lowercase().as_str() {
                "basic" => true,
                "none" => false,
                "digest" => return Err(bad("AuthType", kind, "weir refuses Digest: its MD5 is weak, and the server must keep a password equivalent; use Basic (over HTTPS)")),
                "form" => return Err(bad("AuthType", kind, "Form needs sessions (mod_session), which weir does not have; use Basic (over HTTPS)")),
                _ => return Err(bad("AuthType", kind, "weir knows AuthType Basic (and None)")),
            });
        }
        Some("AuthName") => {
            let realm = one("AuthName", "the authentication realm (e.g. \"Members Only\")")?;
            if realm.chars().any(char::is_control) {
                return Err(bad("AuthName", realm, "a realm may not hold control characters"));
            }
            auth.realm = Some(realm.to_string());
        }
        Some("AuthBasicProvider") => {
            if args.is_empty() {
                return Err(Problem::Arity {
                    directive: "AuthBasicProvider",
                    expected: "one or more arguments",
                    help: "specify the auth providers for a directory or location",
                });
            }
            if let Some(other) = args.iter().find(|a| !a.eq_ignore_ascii_case("file")) {
                return Err(bad(
                    "AuthBasicProvider",
                    other,
                    "weir checks passwords from an AuthUserFile only (the file provider)",
                ));
            }
        }
        Some("AuthUserFile") => {
            let path = one("AuthUserFile", "text file containing user IDs and passwords")?;
            auth.user_file = Some(resolve(path));
        }
        Some("CGIPassAuth") => {
            let value = one(
                "CGIPassAuth",
                "Controls whether HTTP authorization headers, normally hidden, will be passed to scripts",
            )?;
            auth.cgi_pass_auth = Some(crate::values::on_off("CGIPassAuth", value)?);
        }
        Some("AuthMerging") => {
            let value = one("AuthMerging", "controls how a <Directory>, <Location>, or similar directive's authorization directives are combined with those of its predecessor")?;
            auth.merging = Some(match value.to_ascii_lowercase().as_str() {
                "off" => Merging::Off,
                "and" => Merging::And,
                "or" => Merging::Or,
                _ => return Err(bad("AuthMerging", value, "AuthMerging must be one of: Off | And | Or")),
            });
        }
        _ => return Err(not_here(name)),
    }
    Ok(())
}

/// A directive weir knows elsewhere, refuses on purpose, or does not know at all.
fn not_here(name: &str) -> Problem {
    // Apache has a one-argument form of these inside <Location>; weir has the server's form only.
    const ALIAS_FAMILY: &[&str] = &[
        "Redirect",
        "RedirectMatch",
        "RedirectPermanent",
        "RedirectTemp",
        "Alias",
        "AliasMatch",
        "ScriptAlias",
        "ScriptAliasMatch",
    ];
    if let Some(known) = ALIAS_FAMILY.iter().find(|r| r.eq_ignore_ascii_case(name)) {
        return Problem::Contradiction(format!(
            "{known} is not allowed inside <Location>: write it outside the section with the URL path it takes, such as Redirect permanent /old https://example.com/new or Alias /docs /srv/docs"
        ));
    }
    match crate::directives::known(name) {
        Some(known) => Problem::NotAllowedHere { directive: known },
        None => crate::directives::unknown(name),
    }
}

/// What can only be checked once every section is read: a `Require user|valid-user` needs
/// `AuthType Basic`, `AuthName` and `AuthUserFile` where it applies (Apache answers every such
/// request with 500 instead).
pub(crate) fn check(locations: &[Location], errors: &mut Vec<ConfigError>) {
    for location in locations {
        if !location.require.iter().any(needs_user) {
            continue;
        }
        let merged = effective(locations, &location.path);
        let missing = match (merged.auth.basic, merged.auth.realm, merged.auth.user_file) {
            (false, ..) => "AuthType Basic",
            (true, None, _) => "AuthName",
            (true, _, None) => "AuthUserFile",
            (true, Some(_), Some(_)) => continue,
        };
        if let Some(at) = &location.auth.at {
            errors.push(ConfigError::at(
                at,
                Some("Require"),
                Problem::Contradiction(format!(
                    "<Location {}> requires a user, but no {missing} applies to it, so no one could log in",
                    location.path
                )),
            ));
        }
    }
}

/// Whether a rule asks who the user is.
fn needs_user(rule: &Require) -> bool {
    match rule {
        Require::ValidUser | Require::User(_) => true,
        Require::Not(rule) => needs_user(rule),
        Require::AllOf(rules) | Require::AnyOf(rules) | Require::NoneOf(rules) => {
            rules.iter().any(needs_user)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests;
