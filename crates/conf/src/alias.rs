//! mod_alias: `Alias`, `AliasMatch` and `ScriptAliasMatch` map a URL path to a place in the file
//! system; `Redirect`, `RedirectMatch`, `RedirectPermanent` and `RedirectTemp` map it to another
//! URL. Both are applied to the normalised, decoded path of [`weir_wire::target`], never to a raw
//! one, and the mapping is written once, here: the edge uses it to serve static files and to
//! decide what goes to the pool, the worker to find the same script.
//!
//! What a request contributes (the rest of a prefix, a regex capture) can never climb out of the
//! rule's directory: it is split into segments that must each be a plain name, and the result
//! is a directory and plain names under it ([`Mapped`]). For redirects, what a request
//! contributes is percent-encoded and can never make the `Location` protocol-relative (`//host`)
//! or name another host ([`RedirectRule::location`]).

use std::path::PathBuf;

use weir_wire::script_path;
use weir_wire::target;

use crate::error::Problem;

/// A regular expression as written, compiled once. Compared by its text.
#[derive(Debug, Clone)]
pub struct Pattern {
    text: String,
    regex: regex::bytes::Regex,
}

/// Largest compiled expression accepted. Matching costs up to its size for every byte of the
/// path, on the edge's own threads: `([a-z]{1,200}){1,200}/zq$`, accepted by the regex crate's
/// default limit, took 7 s for an 8 KB path and held up every request meanwhile. At this limit the
/// worst found took 36 ms; ordinary rules are a few kilobytes.
const COMPILED_LIMIT: usize = 256 << 10;

/// Compiles a configured expression as PCRE reads it in Apache: over bytes, `\w`, `\d` and
/// `\s` ASCII only (Unicode classes are also tens of times larger), within [`COMPILED_LIMIT`].
pub fn compile(text: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(text).unicode(false).size_limit(COMPILED_LIMIT).build()
}

impl Pattern {
    /// Compiles `text` for `directive`; a bad expression is refused with the reason.
    pub fn new(directive: &'static str, text: &str) -> Result<Pattern, Problem> {
        match compile(text) {
            Ok(regex) => Ok(Pattern { text: text.to_string(), regex }),
            Err(error) => Err(Problem::BadValue {
                directive,
                value: text.to_string(),
                reason: format!("not a regular expression weir can use: {}", first_line(&error.to_string())),
            }),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn first_line(text: &str) -> String {
    text.lines().rfind(|l| !l.trim().is_empty()).unwrap_or(text).trim().to_string()
}

impl PartialEq for Pattern {
    fn eq(&self, other: &Pattern) -> bool {
        self.text == other.text
    }
}

impl Eq for Pattern {}

/// Which URL paths a rule takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlMatch {
    /// A URL-path prefix (runs of `/` merged), matched on whole segments as Apache's
    /// `alias_matches`: `/icons` takes `/icons` and `/icons/x`, never `/iconsx`; a trailing `/`
    /// in the prefix must be in the request too.
    Prefix(String),
    /// A regular expression searched in the path.
    Regex(Pattern),
}

/// What a rule found in a path: the text after a prefix, or a regex's groups.
enum Found<'p> {
    Rest(&'p str),
    Groups(regex::bytes::Captures<'p>),
}

impl UrlMatch {
    fn find<'p>(&self, path: &'p str) -> Option<Found<'p>> {
        match self {
            UrlMatch::Prefix(prefix) => {
                let rest = path.strip_prefix(prefix.as_str())?;
                (prefix.ends_with('/') || rest.is_empty() || rest.starts_with('/'))
                    .then_some(Found::Rest(rest))
            }
            UrlMatch::Regex(pattern) => pattern.regex.captures(path.as_bytes()).map(Found::Groups),
        }
    }

    /// A prefix as written in the configuration (it must be a URL path).
    fn prefix(directive: &'static str, text: &str) -> Result<UrlMatch, Problem> {
        if !text.starts_with('/') {
            return Err(Problem::BadValue {
                directive,
                value: text.to_string(),
                reason: "the URL path must start with /".to_string(),
            });
        }
        Ok(UrlMatch::Prefix(target::merge_slashes(text)))
    }
}

/// A substitution template: literal text and `$0`–`$9` (a `\` takes the next character
/// literally), as Apache's `ap_pregsub`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    Group(usize),
}

impl Template {
    pub fn parse(text: &str) -> Template {
        let mut pieces = Vec::new();
        let mut literal = String::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '$' if chars.peek().is_some_and(char::is_ascii_digit) => {
                    if !literal.is_empty() {
                        pieces.push(Piece::Text(std::mem::take(&mut literal)));
                    }
                    let digit = chars.next().and_then(|d| d.to_digit(10)).unwrap_or(0);
                    pieces.push(Piece::Group(digit as usize));
                }
                '\\' if chars.peek().is_some() => literal.extend(chars.next()),
                c => literal.push(c),
            }
        }
        if !literal.is_empty() {
            pieces.push(Piece::Text(literal));
        }
        Template { pieces }
    }

    /// The literal text before the first group.
    fn fixed_start(&self) -> &str {
        match self.pieces.first() {
            Some(Piece::Text(text)) => text,
            _ => "",
        }
    }

    fn has_groups(&self) -> bool {
        self.pieces.iter().any(|p| matches!(p, Piece::Group(_)))
    }

    /// The template filled from `groups`; each group's text passes through `encode` first.
    fn fill(&self, groups: &regex::bytes::Captures<'_>, encode: impl Fn(&str) -> String) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Group(n) => {
                    // A group may end inside a character (the match is over bytes): its broken
                    // end becomes U+FFFD, which names no file and no other place.
                    let text = groups
                        .get(*n)
                        .map_or(std::borrow::Cow::Borrowed(""), |m| String::from_utf8_lossy(m.as_bytes()));
                    out.push_str(&encode(&text));
                }
            }
        }
        out
    }
}

/// What an alias's files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AliasKind {
    /// `Alias`, `AliasMatch`: static files, served by the edge; code found there
    /// (`CGIInterpreter`, `AddHandler cgi-script` files) is run, never sent.
    Files,
    /// `ScriptAliasMatch`: every file is a CGI script, run by a worker.
    Scripts,
}

/// One `Alias`, `AliasMatch` or `ScriptAliasMatch` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AliasRule {
    pub url: UrlMatch,
    pub kind: AliasKind,
    /// The file-system path `Alias` maps to, a directory or a file (the Match forms keep their
    /// template as written here, for messages; they map through `template`).
    target: PathBuf,
    /// The file-system template (the Match forms).
    template: Option<Template>,
    /// The directory nothing a request contributes can leave: the `Alias` path itself, or the
    /// template's literal start up to its last `/`.
    base: PathBuf,
}

/// The files a rule can reach: those in `dir` whose first name under it starts with
/// `name_start` (`ScriptAliasMatch ^/cgi-bin(.*) /usr/lib/cgi-bin$1` reaches `/usr/lib/cgi-bin`
/// and `/usr/lib/cgi-bin2`, not the rest of `/usr/lib`); every file in it when that is empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub dir: PathBuf,
    pub name_start: String,
}

impl Region {
    /// A whole directory.
    pub fn directory(dir: PathBuf) -> Region {
        Region { dir, name_start: String::new() }
    }

    /// Whether `path` (compared as given: canonicalise both sides) is in the region.
    pub fn contains(&self, path: &std::path::Path) -> bool {
        let Ok(under) = path.strip_prefix(&self.dir) else {
            return false;
        };
        let first = under.components().next().map(|c| c.as_os_str().as_encoded_bytes());
        self.name_start.is_empty() || first.is_some_and(|name| name.starts_with(self.name_start.as_bytes()))
    }

    /// The same region with its directory canonical (symlinks resolved); `None` if it is not
    /// there.
    pub fn canonical(&self) -> Option<Region> {
        let dir = std::fs::canonicalize(&self.dir).ok()?;
        Some(Region { dir, name_start: self.name_start.clone() })
    }
}

/// Where a rule maps a path: a directory (or, for `Alias` to a file, that file) and the plain
/// names under it. Canonicalise `root` and check what is found stays in it (symlinks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub kind: AliasKind,
    pub root: PathBuf,
    /// Plain names (never empty, `.`, `..`, nor holding `/` or NUL).
    pub relative: Vec<String>,
}

impl Mapped {
    /// The relative names as a path under `root`.
    pub fn relative_path(&self) -> PathBuf {
        self.relative.iter().collect()
    }
}

/// A rule matched, but what the request put in the path would climb out of its directory, or is
/// no plain name: nothing there answers it (404).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Escaped;

impl AliasRule {
    /// `Alias url-path fs-path` (`fs` already resolved against ServerRoot).
    pub fn alias(url: &str, fs: PathBuf) -> Result<AliasRule, Problem> {
        Ok(AliasRule {
            url: UrlMatch::prefix("Alias", url)?,
            kind: AliasKind::Files,
            base: fs.clone(),
            target: fs,
            template: None,
        })
    }

    /// `AliasMatch regex fs-path` and `ScriptAliasMatch regex fs-path`: the template must be an
    /// absolute path whose directory is written out before the first `$n`.
    pub fn matching(
        directive: &'static str,
        regex: &str,
        fs: &str,
        kind: AliasKind,
    ) -> Result<AliasRule, Problem> {
        let pattern = Pattern::new(directive, regex)?;
        let template = Template::parse(fs);
        let start = template.fixed_start();
        let Some(slash) = start.rfind('/').filter(|_| start.starts_with('/')) else {
            return Err(Problem::BadValue {
                directive,
                value: fs.to_string(),
                reason: "the file-system path must be absolute, starting with / before any $n".to_string(),
            });
        };
        let base = PathBuf::from(&start[..=slash]);
        // Anywhere in the template: `/srv/$1/../x` can never answer what it seems to.
        if fs.split('/').any(|segment| segment == "..") {
            return Err(Problem::BadValue {
                directive,
                value: fs.to_string(),
                reason: "the file-system path must not contain ..".to_string(),
            });
        }
        Ok(AliasRule {
            url: UrlMatch::Regex(pattern),
            kind,
            target: PathBuf::from(fs),
            template: Some(template),
            base,
        })
    }

    /// Where the rule's files can be, for the checks that want every script directory.
    pub fn region(&self) -> Region {
        // `/usr/lib/cgi-bin$1` reaches `/usr/lib/cgi-bin…` only, not all of `/usr/lib/`.
        let name_start = match &self.template {
            Some(template) => template.fixed_start().rsplit('/').next().unwrap_or("").to_string(),
            None => String::new(),
        };
        Region { dir: self.base.clone(), name_start }
    }

    /// Where this rule maps `path`, if it takes it.
    pub fn map(&self, path: &str) -> Option<Result<Mapped, Escaped>> {
        let found = self.url.find(path)?;
        let (root, rest) = match (&found, &self.template) {
            (Found::Rest(rest), _) => (self.target.clone(), (*rest).to_string()),
            (Found::Groups(groups), Some(template)) => {
                let filled = template.fill(groups, str::to_string);
                let base = self.base.to_string_lossy();
                match filled.strip_prefix(base.as_ref()) {
                    Some(rest) => (self.base.clone(), rest.to_string()),
                    None => return Some(Err(Escaped)),
                }
            }
            (Found::Groups(_), None) => return Some(Err(Escaped)),
        };
        // Segments of the normalised path are plain already; a capture may start or end inside
        // one (`$1` = `..` from `/x..`), so each is checked again.
        let mut relative = Vec::new();
        for segment in rest.split('/').filter(|s| !s.is_empty()) {
            if !script_path::plain_name(segment) {
                return Some(Err(Escaped));
            }
            relative.push(segment.to_string());
        }
        Some(Ok(Mapped { kind: self.kind, root, relative }))
    }
}

/// The first rule, in order, that takes `path`: Apache's first match wins.
pub fn map(rules: &[AliasRule], path: &str) -> Option<Result<Mapped, Escaped>> {
    rules.iter().find_map(|rule| rule.map(path))
}

/// Warnings for aliases that cannot mean what they seem to, as Apache's AH00671: an `Alias`
/// whose whole URL path an earlier one already takes, and an `Alias` that overlaps a
/// `ScriptAlias` (weir tries `ScriptAlias` first, whatever the order; Apache, the first
/// written). `vhost`: where the `<VirtualHost>` is, for its own lines.
pub(crate) fn overlap_warnings(
    rules: &[AliasRule],
    script_aliases: &[crate::config::ScriptAlias],
    vhost: Option<&str>,
) -> Vec<String> {
    let place = vhost.map_or_else(String::new, |at| format!(" in the <VirtualHost> at {at}"));
    let mut warnings = Vec::new();
    for (index, rule) in rules.iter().enumerate() {
        let UrlMatch::Prefix(prefix) = &rule.url else {
            continue;
        };
        let earlier = rules[..index].iter().find_map(|e| match &e.url {
            UrlMatch::Prefix(other) if e.url.find(prefix).is_some() => Some(other),
            _ => None,
        });
        if let Some(earlier) = earlier {
            warnings.push(format!(
                "Alias {prefix}{place} will probably never match because it overlaps an earlier Alias {earlier}"
            ));
        }
        for script in script_aliases {
            let script_prefix = target::merge_slashes(&script.url_prefix);
            if rule.url.find(&script_prefix).is_some()
                || UrlMatch::Prefix(script_prefix.clone()).find(prefix).is_some()
            {
                warnings.push(format!(
                    "Alias {prefix}{place} overlaps ScriptAlias {script_prefix}: weir tries ScriptAlias first, whatever their order, so its scripts are never sent as files"
                ));
            }
        }
    }
    warnings
}

/// One `Redirect`, `RedirectMatch`, `RedirectPermanent` or `RedirectTemp` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedirectRule {
    pub url: UrlMatch,
    /// 3xx (with a target) or 4xx/5xx (without).
    pub status: u16,
    /// The URL (a prefix rule's as written, a Match rule's as a template); `None` for a status
    /// that is not a redirect (`gone`).
    target: Option<Template>,
}

/// The answer a redirect rule gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirected {
    pub status: u16,
    /// The `Location`: a path starting with exactly one `/`, or an absolute URL on the host the
    /// configuration names.
    pub location: Option<String>,
}

impl RedirectRule {
    /// Reads `Redirect [status] url-path [URL]` (`regex` for RedirectMatch); `fixed`: the
    /// status RedirectPermanent and RedirectTemp imply.
    pub fn parse(
        directive: &'static str,
        args: &[String],
        fixed: Option<u16>,
    ) -> Result<RedirectRule, Problem> {
        let bad = |value: &str, reason: &str| Problem::BadValue {
            directive,
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let (status, rest) = match fixed {
            Some(status) => (status, args),
            None => match status_of(&args[0]) {
                Some(status) => (status.map_err(|reason| bad(&args[0], reason))?, &args[1..]),
                None => (302, args),
            },
        };
        let wants_target = (300..400).contains(&status);
        let (url, target) = match (rest, wants_target) {
            ([url, target], true) => (url, Some(target)),
            ([url], false) => (url, None),
            ([url], true) => return Err(bad(url, "a redirect status needs a URL to send the client to")),
            ([_, target], false) => {
                return Err(bad(target, "a status that is not a redirect (3xx) takes no URL"))
            }
            _ => return Err(bad(&args.join(" "), "expected [status] URL-path URL")),
        };
        let url = if directive == "RedirectMatch" {
            UrlMatch::Regex(Pattern::new(directive, url)?)
        } else {
            UrlMatch::prefix(directive, url)?
        };
        let target = match target {
            None => None,
            Some(text) => Some(target_template(directive, text, matches!(url, UrlMatch::Regex(_)))?),
        };
        Ok(RedirectRule { url, status, target })
    }

    /// The answer to a request for `path` (normalised) with `query` (as sent), if this rule
    /// takes it. The query is kept unless the target has its own, as Apache does.
    pub fn apply(&self, path: &str, query: Option<&str>) -> Option<Redirected> {
        let found = self.url.find(path)?;
        let Some(template) = &self.target else {
            return Some(Redirected { status: self.status, location: None });
        };
        let location = match &found {
            Found::Rest(rest) => join(template.fixed_start(), &target::encode_path(rest)),
            Found::Groups(groups) => template.fill(groups, target::encode_path),
        };
        let mut location = one_leading_slash(location);
        if let Some(query) = query.filter(|_| !location.contains('?')) {
            location.push('?');
            location.push_str(query);
        }
        Some(Redirected { status: self.status, location: Some(location) })
    }
}

/// The first redirect rule, in order, that takes `path`.
pub fn redirect(rules: &[RedirectRule], path: &str, query: Option<&str>) -> Option<Redirected> {
    rules.iter().find_map(|rule| rule.apply(path, query))
}

/// `permanent`, `temp`, `seeother`, `gone` or a number: `None` when `text` is no status (it is
/// then the URL path); `Some(Err)` for a number weir cannot answer with.
fn status_of(text: &str) -> Option<Result<u16, &'static str>> {
    let status = match text.to_ascii_lowercase().as_str() {
        "permanent" => 301,
        "temp" => 302,
        "seeother" => 303,
        "gone" => 410,
        number if number.starts_with(|c: char| c.is_ascii_digit()) => match number.parse::<u16>() {
            Ok(304) => return Some(Err("304 carries no content and no Location")),
            Ok(status @ 300..=599) => status,
            _ => return Some(Err("expected permanent, temp, seeother, gone or a status from 300 to 599")),
        },
        _ => return None,
    };
    Some(Ok(status))
}

/// A redirect target: an absolute URL (`scheme://host…`) or a path starting with one `/`. In a
/// Match rule's, the host must be written out and ended by `/` before any `$n`, so no request
/// can choose it.
fn target_template(directive: &'static str, text: &str, regex: bool) -> Result<Template, Problem> {
    let bad =
        |reason: &str| Problem::BadValue { directive, value: text.to_string(), reason: reason.to_string() };
    let template =
        if regex { Template::parse(text) } else { Template { pieces: vec![Piece::Text(text.to_string())] } };
    let start = template.fixed_start();
    if text.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("the URL must not contain spaces or control characters; percent-encode them"));
    }
    if start.starts_with("//") || start.starts_with("/\\") {
        return Err(bad(
            "a target starting with // names another host; write the absolute URL (https://host/…)",
        ));
    }
    if start.starts_with('/') {
        return Ok(template);
    }
    let Some((scheme, after)) = start.split_once("://") else {
        return Err(bad("the target must be an absolute URL (https://host/…) or a path starting with /"));
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
    if !scheme_ok {
        return Err(bad("the target must be an absolute URL (https://host/…) or a path starting with /"));
    }
    let authority_end = after.find(['/', '?', '#']);
    if after[..authority_end.unwrap_or(after.len())].is_empty() {
        return Err(bad("the URL names no host"));
    }
    match authority_end {
        Some(_) => Ok(template),
        // The host runs to the end of the literal start: a `$n` after it would extend it.
        None if template.has_groups() => Err(bad(
            "a $n right after the host would let a request choose the host; end the host with / before it",
        )),
        // `https://host` alone: the path a prefix rule appends then follows a `/`.
        None => Ok(Template { pieces: vec![Piece::Text(format!("{start}/"))] }),
    }
}

/// A prefix target and the encoded rest of the path, without doubling the `/` between them.
fn join(target: &str, rest: &str) -> String {
    match (target.ends_with('/'), rest.strip_prefix('/')) {
        (true, Some(rest)) => format!("{target}{rest}"),
        _ => format!("{target}{rest}"),
    }
}

/// A path `Location` starts with exactly one `/`: never `//host`, which a browser reads as
/// another host.
fn one_leading_slash(location: String) -> String {
    if location.starts_with("//") {
        format!("/{}", location.trim_start_matches('/'))
    } else {
        location
    }
}

#[cfg(test)]
mod tests;
