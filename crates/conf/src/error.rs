//! Configuration errors, worded as Apache's `configtest` words them.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::syntax::Span;

/// One bad line of configuration: where it is, which directive, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file the line is in.
    pub file: PathBuf,
    /// The 1-based line number (of the first line, for a continued line); 0 when the problem is
    /// with the file as a whole.
    pub line: usize,
    /// The directive as written, when the problem belongs to one.
    pub directive: Option<String>,
    /// What is wrong.
    pub problem: Problem,
}

impl ConfigError {
    pub(crate) fn at(span: &Span, directive: Option<&str>, problem: Problem) -> Self {
        ConfigError {
            file: span.file.to_path_buf(),
            line: span.line,
            directive: directive.map(str::to_string),
            problem,
        }
    }

    pub(crate) fn whole_file(file: &Path, problem: Problem) -> Self {
        ConfigError { file: file.to_path_buf(), line: 0, directive: None, problem }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: {}", self.file.display(), self.problem)
        } else {
            write!(f, "Syntax error on line {} of {}: {}", self.line, self.file.display(), self.problem)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Everything wrong with one configuration, in the order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, error) in self.0.iter().enumerate() {
            if index > 0 {
                writeln!(f)?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// What is wrong with a line. Each variant's text follows Apache's wording where Apache has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// A directive name no table entry knows: usually a typo, or a module weir does not emulate.
    #[error("Invalid command '{name}', perhaps misspelled or defined by a module not included in the server configuration{}", suggestion_text(.suggestion))]
    InvalidCommand { name: String, suggestion: Option<&'static str> },
    /// The directive was given the wrong number of arguments.
    #[error("{directive} takes {expected}, {help}")]
    Arity { directive: &'static str, expected: &'static str, help: &'static str },
    /// An argument could not be read as the type the directive needs.
    #[error("{directive}: invalid value '{value}': {reason}")]
    BadValue { directive: &'static str, value: String, reason: String },
    /// A directive appeared inside a section where it means nothing.
    #[error("{directive} is not allowed here")]
    NotAllowedHere { directive: &'static str },
    /// A section weir does not know.
    #[error("Invalid command '<{name}>', perhaps misspelled or defined by a module not included in the server configuration")]
    UnknownSection { name: String },
    /// `"` or `'` opened an argument that the line never closed.
    #[error("unterminated quoted argument")]
    UnterminatedQuote,
    /// A `<Section` header without its closing `>`.
    #[error("<{}> directive missing closing '>'", "section")]
    UnclosedSectionHeader,
    /// A section opened and never closed before the end of the file.
    #[error("section was not closed before the end of the file")]
    UnclosedSection,
    /// `</X>` closing a section that is not the innermost open one.
    #[error("</{found}> closes a section that was not opened here; expected </{expected}>")]
    MismatchedSection { expected: String, found: String },
    /// `</X>` with no section open.
    #[error("</{name}> without matching <{name}> section")]
    UnopenedSection { name: String },
    /// The file (or an included one) could not be read.
    #[error("could not read the configuration file: {reason}")]
    Unreadable { reason: String },
    /// Two settings that cannot both hold.
    #[error("{0}")]
    Contradiction(String),
    /// `Listen … proxy-protocol` with no `RemoteIPTrustedProxy`: every client could claim any
    /// address in a PROXY header.
    #[error("Listen {listen} has proxy-protocol, but no RemoteIPTrustedProxy names the proxies allowed to send the PROXY header, so any client could claim any address; add RemoteIPTrustedProxy with your load balancers' addresses or CIDR blocks (such as RemoteIPTrustedProxy 10.0.0.5 192.0.2.0/24)")]
    ProxyProtocolUntrusted { listen: std::net::SocketAddr },
    /// A server-wide directive inside a `<VirtualHost>`: weir applies it to the whole server.
    #[error("{directive} cannot occur within <VirtualHost> section")]
    NotInVirtualHost { directive: &'static str },
    /// `ServerAlias` outside a `<VirtualHost>`.
    #[error("ServerAlias only used in <VirtualHost>")]
    AliasOutsideVirtualHost,
    /// A directive Apache has and weir lacks on purpose (see `refused.rs`).
    #[error("{name}: weir lacks this on purpose: {reason}{}", alternative_text(.alternative))]
    Refused { name: String, reason: &'static str, alternative: Option<&'static str> },
    /// A required setting is missing.
    #[error("no {directive} is set, and weir cannot run without one")]
    Missing { directive: &'static str },
}

fn alternative_text(alternative: &Option<&'static str>) -> String {
    match alternative {
        Some(text) => format!("; instead: {text}"),
        None => String::new(),
    }
}

fn suggestion_text(suggestion: &Option<&'static str>) -> String {
    match suggestion {
        Some(name) => format!(" (did you mean '{name}'?)"),
        None => String::new(),
    }
}
