//! `<Directory>`, `<DirectoryMatch>`, `<Files>` and `<FilesMatch>` sections: what applies to a
//! file from where it lies on disk, and `Options`. Read here, merged in Apache's order by
//! [`Sections::applied`] from the filesystem path a request maps to; the caller then merges
//! the `<Location>` sections after them ([`crate::location::merge`]).
//!
//! Apache's order ("How the sections are merged"): (1) `<Directory>` without a regex, shortest
//! path first; (2) `<DirectoryMatch>` and `<Directory ~>` in order of appearance; (3) `<Files>`
//! and `<FilesMatch>` in order of appearance (those at the top first, then those nested in the
//! directories that apply, in the directories' order); (4) `<Location>`. A `<VirtualHost>`'s
//! sections come after the main server's of the same kind (its plain directories are sorted
//! with the main server's by length, as httpd sorts them).

use std::path::{Path, PathBuf};

use crate::error::{ConfigError, Problem};
use crate::location::Location;
use crate::syntax::{Node, Span};

/// `Options`: what the edge may do with the files under a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// `Indexes`: a directory without an index is listed.
    pub indexes: bool,
    /// `FollowSymLinks`: symlinks are followed (inside the served root only, always).
    pub follow_symlinks: bool,
    /// `SymLinksIfOwnerMatch`: a symlink is followed when it and its target have one owner.
    pub symlinks_if_owner_match: bool,
    /// `ExecCGI`: an `AddHandler cgi-script` file outside `ScriptAlias` may run.
    pub exec_cgi: bool,
}

impl Options {
    /// Apache 2.4's default where no `Options` applies: `FollowSymLinks`.
    pub const APACHE_DEFAULT: Options =
        Options { indexes: false, follow_symlinks: true, symlinks_if_owner_match: false, exec_cgi: false };

    /// `Options All`: everything weir has (Apache's All, less `Includes`, which weir lacks).
    const ALL: Options =
        Options { indexes: true, follow_symlinks: true, symlinks_if_owner_match: true, exec_cgi: true };

    fn set(&mut self, other: Options, on: bool) {
        let apply = |field: &mut bool, flag: bool| {
            if flag {
                *field = on;
            }
        };
        apply(&mut self.indexes, other.indexes);
        apply(&mut self.follow_symlinks, other.follow_symlinks);
        apply(&mut self.symlinks_if_owner_match, other.symlinks_if_owner_match);
        apply(&mut self.exec_cgi, other.exec_cgi);
    }
}

/// One `Options` line: names alone replace what applies, `+`/`-` names change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionsLine {
    Set(Options),
    Change { add: Options, remove: Options },
}

impl OptionsLine {
    /// What applies after this line, given what applied before it (`None`: no `Options` yet,
    /// so a `+`/`-` line starts from Apache's default).
    pub fn apply(self, before: Option<Options>) -> Options {
        match self {
            OptionsLine::Set(options) => options,
            OptionsLine::Change { add, remove } => {
                let mut options = before.unwrap_or(Options::APACHE_DEFAULT);
                options.set(add, true);
                options.set(remove, false);
                options
            }
        }
    }
}

/// Two `Options` lines of one section as one: the later one changes what the earlier set.
fn then(before: Option<OptionsLine>, line: OptionsLine) -> OptionsLine {
    match (before, line) {
        (None, line) | (_, line @ OptionsLine::Set(_)) => line,
        (Some(OptionsLine::Set(options)), change) => OptionsLine::Set(change.apply(Some(options))),
        (Some(OptionsLine::Change { add, remove }), OptionsLine::Change { add: more, remove: less }) => {
            let mut add_all = add;
            add_all.set(less, false);
            add_all.set(more, true);
            let mut remove_all = remove;
            remove_all.set(more, false);
            remove_all.set(less, true);
            OptionsLine::Change { add: add_all, remove: remove_all }
        }
    }
}

/// `Options [+|-]name …` as httpd 2.4 reads it.
pub fn options(args: &[String]) -> Result<OptionsLine, Problem> {
    let bad = |value: &str, reason: &str| Problem::BadValue {
        directive: "Options",
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let signed = args.iter().filter(|a| a.starts_with(['+', '-'])).count();
    if signed != 0 && signed != args.len() {
        return Err(bad(&args.join(" "), "Either all Options must start with + or -, or no Option may."));
    }
    let mut add = Options::default();
    let mut remove = Options::default();
    for arg in args {
        let (target, name) = match arg.strip_prefix('-') {
            Some(name) => (&mut remove, name),
            None => (&mut add, arg.strip_prefix('+').unwrap_or(arg)),
        };
        match name.to_ascii_lowercase().as_str() {
            "indexes" => target.indexes = true,
            "followsymlinks" => target.follow_symlinks = true,
            "symlinksifownermatch" => target.symlinks_if_owner_match = true,
            "execcgi" => target.exec_cgi = true,
            "all" => target.set(Options::ALL, true),
            "none" if signed == 0 && args.len() == 1 => {}
            "none" => return Err(bad(arg, "None cannot be combined with other options")),
            // Taking away what weir never does is what weir does already (Debian's
            // serve-cgi-bin.conf writes `-MultiViews`).
            "multiviews" | "includes" | "includesnoexec" if arg.starts_with('-') => {}
            "multiviews" => {
                return Err(bad(
                    arg,
                    "weir does not negotiate content (mod_negotiation): name the file, or use DirectoryIndex",
                ))
            }
            "includes" | "includesnoexec" => {
                return Err(bad(arg, "weir does not parse server-side includes (mod_include)"))
            }
            _ => {
                return Err(bad(
                    arg,
                    "weir knows Indexes, FollowSymLinks, SymLinksIfOwnerMatch, ExecCGI, All and None",
                ))
            }
        }
    }
    Ok(if signed == 0 { OptionsLine::Set(add) } else { OptionsLine::Change { add, remove } })
}

/// A compiled regular expression, compared by its text.
#[derive(Debug, Clone)]
pub struct Pattern(regex::bytes::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Pattern {}

impl Pattern {
    fn new(directive: &'static str, text: &str) -> Result<Pattern, Problem> {
        crate::alias::compile(text).map(Pattern).map_err(|error| Problem::BadValue {
            directive,
            value: text.to_string(),
            reason: format!(
                "not a regular expression weir can read (Rust regex syntax: no look-around or back-references): {}",
                error.to_string().lines().last().unwrap_or("")
            ),
        })
    }
}

/// A shell wildcard (`*`, `?`, `[…]`), compared by its text.
#[derive(Debug, Clone)]
pub struct Wildcard(glob::Pattern);

impl PartialEq for Wildcard {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Eq for Wildcard {}

impl Wildcard {
    fn matches(&self, text: &str) -> bool {
        let options = glob::MatchOptions {
            case_sensitive: true,
            require_literal_separator: true,
            require_literal_leading_dot: false,
        };
        self.0.matches_with(text, options)
    }
}

/// Which directories a `<Directory>` covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DirMatcher {
    /// A path: the directory and everything under it, compared component by component.
    Path(PathBuf),
    /// A path with wildcards: each covers one component (`/home/*/public_html`).
    Wildcard { pattern: Wildcard, components: usize },
    /// `<Directory ~ re>` or `<DirectoryMatch re>`: matched against the directory that holds
    /// the file (the directory itself for a directory), with a trailing slash.
    Regex(Pattern),
}

/// Which file names a `<Files>` covers (the last component of the path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NameMatcher {
    Wildcard(Wildcard),
    Regex(Pattern),
}

impl NameMatcher {
    fn matches(&self, name: &str) -> bool {
        match self {
            NameMatcher::Wildcard(wildcard) => wildcard.matches(name),
            NameMatcher::Regex(Pattern(re)) => re.is_match(name.as_bytes()),
        }
    }
}

/// What one section holds: `Require` and authentication (kept as a [`Location`] so the two
/// kinds merge by one rule), and `Options`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub rules: Location,
    pub options: Option<OptionsLine>,
    /// `DirectoryIndex`: the names tried for a directory here (empty: `disabled`).
    pub index: Option<Vec<String>>,
}

/// A `<Files>` or `<FilesMatch>` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilesSection {
    pub matcher: NameMatcher,
    pub body: Body,
}

/// A `<Directory>` or `<DirectoryMatch>` section, with the `<Files>` sections inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectorySection {
    pub matcher: DirMatcher,
    pub body: Body,
    pub files: Vec<FilesSection>,
}

impl DirectorySection {
    fn is_regex(&self) -> bool {
        matches!(self.matcher, DirMatcher::Regex(_))
    }

    /// Components of a plain or wildcard path, for the shortest-first order.
    fn depth(&self) -> usize {
        match &self.matcher {
            DirMatcher::Path(path) => path.components().count(),
            DirMatcher::Wildcard { components, .. } => *components,
            DirMatcher::Regex(_) => usize::MAX,
        }
    }

    /// Whether the section covers `dir` (absolute; `dir_text` is it with a trailing slash).
    fn covers(&self, dir: &Path, dir_text: &str) -> bool {
        match &self.matcher {
            DirMatcher::Path(path) => dir.starts_with(path),
            DirMatcher::Wildcard { pattern, components } => {
                let mut prefix = PathBuf::new();
                let mut count = 0;
                for component in dir.components().take(*components) {
                    prefix.push(component);
                    count += 1;
                }
                count == *components && pattern.matches(&prefix.to_string_lossy())
            }
            DirMatcher::Regex(Pattern(re)) => re.is_match(dir_text.as_bytes()),
        }
    }
}

/// The sections of a site, in order of appearance (the main server's first for a
/// `<VirtualHost>`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Sections {
    pub directories: Vec<DirectorySection>,
    pub files: Vec<FilesSection>,
}

/// What the sections say for one file, merged.
#[derive(Debug, Clone, Default)]
pub struct Applied<'a> {
    /// The sections' rules in merge order; `<Location>`s go after them.
    pub rules: Vec<&'a Location>,
    /// `Options` in force; `None` when no section sets any.
    pub options: Option<Options>,
    /// `DirectoryIndex` of the last section that sets one; `None`: the server's.
    pub index: Option<&'a [String]>,
}

impl Sections {
    pub fn is_empty(&self) -> bool {
        self.directories.is_empty() && self.files.is_empty()
    }

    /// Every section's rules, for what must be read once at start (`AuthUserFile`).
    pub fn rules(&self) -> impl Iterator<Item = &Location> {
        let nested = self.directories.iter().flat_map(|d| d.files.iter());
        self.directories
            .iter()
            .map(|d| &d.body.rules)
            .chain(self.files.iter().chain(nested).map(|f| &f.body.rules))
    }

    /// A site's sections: the main server's, then the host's own.
    pub fn then(&self, own: &Sections) -> Sections {
        let mut all = self.clone();
        all.directories.extend(own.directories.iter().cloned());
        all.files.extend(own.files.iter().cloned());
        all
    }

    /// Whether the sections that apply to `file` could differ with whether it is a directory
    /// (a regex directory section, or a directory section naming `file` itself): only then
    /// must the caller look at the disk to know.
    pub fn depends_on_kind(&self, file: &Path) -> bool {
        let depth = file.components().count();
        self.directories.iter().any(|d| match &d.matcher {
            DirMatcher::Regex(_) => true,
            DirMatcher::Path(path) => path.components().count() == depth && file.starts_with(path),
            DirMatcher::Wildcard { components, .. } => *components == depth,
        })
    }

    /// The sections that apply to `file` (an absolute path as the request maps to it; a
    /// directory when `is_dir`), in Apache's merge order.
    pub fn applied(&self, file: &Path, is_dir: bool) -> Applied<'_> {
        let mut applied = Applied::default();
        if self.is_empty() {
            return applied;
        }
        let dir = if is_dir { file } else { file.parent().unwrap_or(Path::new("/")) };
        let mut dir_text = dir.to_string_lossy().into_owned();
        if !dir_text.ends_with('/') {
            dir_text.push('/');
        }
        let mut plain: Vec<&DirectorySection> =
            self.directories.iter().filter(|d| !d.is_regex() && d.covers(dir, &dir_text)).collect();
        // Stable: sections of one length keep their order of appearance.
        plain.sort_by_key(|d| d.depth());
        let regex = self.directories.iter().filter(|d| d.is_regex() && d.covers(dir, &dir_text));
        let directories: Vec<&DirectorySection> = plain.into_iter().chain(regex).collect();
        let name = file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let files = self
            .files
            .iter()
            .chain(directories.iter().flat_map(|d| d.files.iter()))
            .filter(|f| f.matcher.matches(&name));
        let bodies = directories.iter().map(|d| &d.body).chain(files.map(|f| &f.body));
        for body in bodies {
            applied.rules.push(&body.rules);
            if let Some(line) = body.options {
                applied.options = Some(line.apply(applied.options));
            }
            if let Some(index) = &body.index {
                applied.index = Some(index);
            }
        }
        applied
    }
}

/// `Options` outside any section: what applies everywhere unless a section says otherwise,
/// as a `<Directory />` ahead of every other.
pub(crate) fn server_options(config: &mut crate::Config, args: &[String]) -> Result<(), Problem> {
    let line = options(args)?;
    let directories = &mut config.sections.directories;
    match directories.first_mut() {
        Some(first)
            if first.matcher == DirMatcher::Path(PathBuf::from("/"))
                && first.body.rules.auth.at.is_none() =>
        {
            first.body.options = Some(then(first.body.options, line));
        }
        _ => directories.insert(
            0,
            DirectorySection {
                matcher: DirMatcher::Path(PathBuf::from("/")),
                body: Body { rules: Location::at("/"), options: Some(line), index: None },
                files: Vec::new(),
            },
        ),
    }
    Ok(())
}

/// Whether an `AddHandler cgi-script` file outside `ScriptAlias` may run: where `Options`
/// apply, only with `ExecCGI` (Apache); where none applies, yes, as weir always ran them.
/// The edge and the worker both ask this, from the file's path as mapped.
pub fn exec_cgi(sections: &Sections, file: &Path) -> bool {
    sections.applied(file, false).options.is_none_or(|o| o.exec_cgi)
}

/// Which kind of section, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Directory,
    DirectoryMatch,
    Files,
    FilesMatch,
}

impl Kind {
    pub(crate) fn of(name: &str) -> Option<Kind> {
        [
            ("Directory", Kind::Directory),
            ("DirectoryMatch", Kind::DirectoryMatch),
            ("Files", Kind::Files),
            ("FilesMatch", Kind::FilesMatch),
        ]
        .into_iter()
        .find(|(known, _)| known.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind)
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Directory => "<Directory>",
            Kind::DirectoryMatch => "<DirectoryMatch>",
            Kind::Files => "<Files>",
            Kind::FilesMatch => "<FilesMatch>",
        }
    }

    fn is_files(self) -> bool {
        matches!(self, Kind::Files | Kind::FilesMatch)
    }
}

/// Reads one section into `sections`; `inside` is the `<Directory>` it is nested in, if any
/// (only `<Files>` may be). `resolve` makes a path absolute from the server root.
pub(crate) fn read(
    sections: &mut Sections,
    kind: Kind,
    args: &[String],
    span: &Span,
    children: &[Node],
    resolve: &dyn Fn(&str) -> PathBuf,
    errors: &mut Vec<ConfigError>,
) {
    let fail = |problem| ConfigError::at(span, Some(kind.name().trim_matches(['<', '>'])), problem);
    let arg = match args {
        [one] => Ok((false, one.as_str())),
        [tilde, re] if tilde == "~" && matches!(kind, Kind::Directory | Kind::Files) => Ok((true, re.as_str())),
        _ => Err(Problem::Arity {
            directive: kind.name(),
            expected: "one argument",
            help: "a path, a wildcard, or ~ and a regular expression (a Match form takes the regular expression alone)",
        }),
    };
    let (tilde, arg) = match arg {
        Ok(found) => found,
        Err(problem) => return errors.push(fail(problem)),
    };
    let regex = tilde || matches!(kind, Kind::DirectoryMatch | Kind::FilesMatch);
    let mut body = Body { rules: Location::at(arg), options: None, index: None };
    body.rules.auth.at = Some(span.clone());
    let mut nested = Vec::new();
    read_body(&mut body, kind, children, resolve, &mut nested, errors);
    if kind.is_files() {
        let matcher = if regex {
            Pattern::new(kind.name(), arg).map(NameMatcher::Regex)
        } else if arg.contains('/') {
            // A file name never holds a `/`: Apache accepts `<Files pub/a.txt>` and it never
            // matches, so its `Require` silently does nothing.
            Err(Problem::BadValue {
                directive: kind.name(),
                value: arg.to_string(),
                reason:
                    "<Files> matches a file's name, which holds no /: use <Directory> for its directory, \
                         or <Location> for a URL path"
                        .to_string(),
            })
        } else {
            wildcard(kind.name(), arg).map(NameMatcher::Wildcard)
        };
        match matcher {
            Ok(matcher) => sections.files.push(FilesSection { matcher, body }),
            Err(problem) => errors.push(fail(problem)),
        }
        return;
    }
    let matcher = if regex {
        Pattern::new(kind.name(), arg).map(DirMatcher::Regex)
    } else {
        dir_matcher(kind.name(), arg, resolve)
    };
    match matcher {
        Ok(matcher) => sections.directories.push(DirectorySection { matcher, body, files: nested }),
        Err(problem) => errors.push(fail(problem)),
    }
}

fn wildcard(directive: &'static str, text: &str) -> Result<Wildcard, Problem> {
    glob::Pattern::new(text).map(Wildcard).map_err(|error| Problem::BadValue {
        directive,
        value: text.to_string(),
        reason: format!("not a wildcard weir can read: {error}"),
    })
}

/// `<Directory path>`: absolute from the server root, its trailing slash dropped.
fn dir_matcher(
    directive: &'static str,
    text: &str,
    resolve: &dyn Fn(&str) -> PathBuf,
) -> Result<DirMatcher, Problem> {
    let path = resolve(text);
    let clean: PathBuf = path.components().collect();
    if clean.components().any(|c| matches!(c, std::path::Component::ParentDir | std::path::Component::CurDir))
    {
        return Err(Problem::BadValue {
            directive,
            value: text.to_string(),
            reason: "write the directory without . or .. segments".to_string(),
        });
    }
    let text = clean.to_string_lossy();
    if text.contains(['*', '?', '[']) {
        let components = clean.components().count();
        return wildcard(directive, &text).map(|pattern| DirMatcher::Wildcard { pattern, components });
    }
    Ok(DirMatcher::Path(clean))
}

/// The lines of a section: `Require` and its containers and the authentication settings
/// (read as in `<Location>`), `Options`, `DirectoryIndex`, `AllowOverride None`, `SSLOptions`,
/// `SetHandler none`, and `<Files>` nested in a `<Directory>`.
fn read_body(
    body: &mut Body,
    kind: Kind,
    children: &[Node],
    resolve: &dyn Fn(&str) -> PathBuf,
    nested: &mut Vec<FilesSection>,
    errors: &mut Vec<ConfigError>,
) {
    for node in children {
        let one = std::slice::from_ref(node);
        match node {
            Node::Section { name, args, children, .. }
                if name.eq_ignore_ascii_case("IfModule") && args.len() == 1 =>
            {
                // Apache's meaning, as at the top: the lines count when weir emulates the module.
                if crate::directives::module_condition_holds(&args[0]) {
                    read_body(body, kind, children, resolve, nested, errors);
                }
            }
            Node::Section { name, args, span, children } => match Kind::of(name) {
                Some(inner) if inner.is_files() && !kind.is_files() => {
                    let mut holder = Sections::default();
                    read(&mut holder, inner, args, span, children, resolve, errors);
                    nested.extend(holder.files);
                }
                Some(inner) => errors.push(ConfigError::at(
                    span,
                    Some(name),
                    Problem::Contradiction(format!(
                        "{} cannot occur within {} section",
                        inner.name(),
                        kind.name()
                    )),
                )),
                None => crate::location::read_section(&mut body.rules, one, resolve, errors),
            },
            Node::Directive { name, args, span } => {
                let result = if name.eq_ignore_ascii_case("Options") {
                    if args.is_empty() {
                        Err(Problem::Arity {
                            directive: "Options",
                            expected: "one or more arguments",
                            help: "Set a number of attributes for a given directory",
                        })
                    } else {
                        options(args).map(|line| body.options = Some(then(body.options, line)))
                    }
                } else if name.eq_ignore_ascii_case("DirectoryIndex") {
                    if args.is_empty() {
                        Err(Problem::Arity {
                            directive: "DirectoryIndex",
                            expected: "one or more arguments",
                            help: "a list of file names to try for a request naming a directory",
                        })
                    } else {
                        let disabled = args.len() == 1 && args[0].eq_ignore_ascii_case("disabled");
                        if disabled {
                            body.index = Some(Vec::new());
                            Ok(())
                        } else {
                            crate::values::index_names(args).map(|names| body.index = Some(names))
                        }
                    }
                } else if name.eq_ignore_ascii_case("AllowOverride")
                    || name.eq_ignore_ascii_case("SSLOptions")
                {
                    // Checked by the server-level directive; what they mean holds everywhere.
                    check_anywhere(name, args)
                } else if name.eq_ignore_ascii_case("SetHandler") {
                    match args.as_slice() {
                        [none] if none.eq_ignore_ascii_case("none") => {
                            crate::location::read_section(&mut body.rules, one, resolve, errors);
                            Ok(())
                        }
                        _ => Err(Problem::BadValue {
                            directive: "SetHandler",
                            value: args.join(" "),
                            reason: format!(
                                "in {} weir knows SetHandler none; put a handler such as server-status in <Location>",
                                kind.name()
                            ),
                        }),
                    }
                } else if name.eq_ignore_ascii_case("CGIPassAuth")
                    || name.eq_ignore_ascii_case("ErrorDocument")
                {
                    // Read from <Location> sections only: accepted here they would mean nothing.
                    Err(Problem::BadValue {
                        directive: if name.eq_ignore_ascii_case("CGIPassAuth") {
                            "CGIPassAuth"
                        } else {
                            "ErrorDocument"
                        },
                        value: args.join(" "),
                        reason: format!(
                            "weir does not read {name} in {} sections; put it in a <Location> section",
                            kind.name()
                        ),
                    })
                } else {
                    crate::location::read_section(&mut body.rules, one, resolve, errors);
                    Ok(())
                };
                if let Err(problem) = result {
                    errors.push(ConfigError::at(span, Some(name), problem));
                }
            }
        }
    }
}

/// `AllowOverride` and `SSLOptions` inside a section: only the values weir accepts anywhere.
fn check_anywhere(name: &str, args: &[String]) -> Result<(), Problem> {
    if name.eq_ignore_ascii_case("SSLOptions") {
        let options = crate::edge::ssl_options(crate::edge::SslOptions::default(), args)?;
        // StdEnvVars holds everywhere anyway; ExportCertData is decided per site, so a
        // section's would silently mean nothing.
        if options.export_cert_data || args.iter().any(|a| a.to_ascii_lowercase().ends_with("exportcertdata"))
        {
            return Err(Problem::BadValue {
                directive: "SSLOptions",
                value: args.join(" "),
                reason: "weir takes ExportCertData for the server or a <VirtualHost>, not per directory or file; set it there".to_string(),
            });
        }
        return Ok(());
    }
    match args {
        [none] if none.eq_ignore_ascii_case("None") => Ok(()),
        _ => Err(Problem::BadValue {
            directive: "AllowOverride",
            value: args.join(" "),
            reason: "weir reads no .htaccess files, so only AllowOverride None is accepted; put the directives in the configuration".to_string(),
        }),
    }
}

#[cfg(test)]
mod tests;
