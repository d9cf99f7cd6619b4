//! Apache's configuration variables: `Define NAME [value]`, `UnDefine NAME`, `${NAME}` in
//! arguments and `<IfDefine [!]NAME>`.
//!
//! As in httpd (core.c's `set_define`, util.c's `ap_resolve_env`): `${NAME}` takes the value of a
//! `Define` with a value, else the environment variable of that name in weir's own environment;
//! an undefined one stays as written, with the warning `AH00111: Config variable ${NAME} is not
//! defined` (none for names holding `:`, which belong to other syntaxes). A substituted value is
//! not read again for `${…}`. `Define NAME` without a value makes `<IfDefine NAME>` true but gives
//! `${NAME}` no value. `<IfDefine>` looks at `Define`s only, never at the environment.
//!
//! One difference: httpd substitutes in the whole line before splitting it into arguments, so a
//! value holding spaces becomes several arguments; weir substitutes in each argument, so the value
//! stays one argument.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::config::Config;
use crate::error::Problem;
use crate::syntax::{Node, Span};

/// The variables defined so far, in the order the configuration is read.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Defines {
    /// Name (as written) to value; `None` for `Define NAME` without one.
    vars: BTreeMap<String, Option<String>>,
}

impl Defines {
    /// `<IfDefine NAME>`: whether `Define` named it (case-sensitive, as httpd's strcmp).
    pub fn exists(&self, name: &str) -> bool {
        self.vars.contains_key(name)
    }

    /// The value a `Define` gave `name`. httpd keeps them in an APR table, whose keys are
    /// case-insensitive.
    fn value(&self, name: &str) -> Option<&str> {
        self.vars.get(name).and_then(Option::as_deref).or_else(|| {
            self.vars.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).and_then(|(_, v)| v.as_deref())
        })
    }
}

/// `Define NAME [value]`.
pub fn define(config: &mut Config, args: &[String]) -> Result<(), Problem> {
    let name = &args[0];
    check_name("Define", name)?;
    let value = args.get(1).cloned();
    let entry = config.defines.vars.entry(name.clone()).or_insert(None);
    // A later `Define NAME` without a value keeps the earlier value, as in httpd.
    if value.is_some() {
        *entry = value;
    }
    Ok(())
}

/// `UnDefine NAME`.
pub fn undefine(config: &mut Config, args: &[String]) -> Result<(), Problem> {
    check_name("UnDefine", &args[0])?;
    config.defines.vars.remove(&args[0]);
    Ok(())
}

fn check_name(directive: &'static str, name: &str) -> Result<(), Problem> {
    if name.contains(':') {
        return Err(Problem::BadValue {
            directive,
            value: name.to_string(),
            reason: "Variable name must not contain ':'".to_string(),
        });
    }
    if name.is_empty() {
        return Err(Problem::BadValue { directive, value: String::new(), reason: "empty name".to_string() });
    }
    Ok(())
}

/// `<IfDefine [!]NAME>`: whether its contents apply.
pub fn condition_holds(config: &Config, argument: &str) -> bool {
    match argument.strip_prefix('!') {
        Some(name) => !config.defines.exists(name),
        None => config.defines.exists(argument),
    }
}

/// Sections whose contents may hold `Define`, so their contents are substituted line by line as
/// they are read; inside any other section (`<Location>`…) nothing can change a variable, and
/// the whole section is substituted when it is reached.
const READ_IN_ORDER: &[&str] = &["IfModule", "IfDefine", "VirtualHost"];

/// `node` with `${NAME}` substituted in its arguments (and, for sections other than
/// [`READ_IN_ORDER`], in everything inside), or `None` when there is nothing to substitute.
/// Undefined names are added to the configuration's warnings with their file and line.
pub fn expand_node(config: &mut Config, node: &Node) -> Option<Node> {
    if !mentions_variable(node) {
        return None;
    }
    let env = |name: &str| std::env::var(name).ok();
    Some(expand_with(config, node, &env))
}

fn mentions_variable(node: &Node) -> bool {
    match node {
        Node::Directive { args, .. } => args.iter().any(|a| a.contains("${")),
        Node::Section { name, args, children, .. } => {
            args.iter().any(|a| a.contains("${"))
                || (!in_order(name) && children.iter().any(mentions_variable))
        }
    }
}

fn in_order(section: &str) -> bool {
    READ_IN_ORDER.iter().any(|s| s.eq_ignore_ascii_case(section))
}

fn expand_with(config: &mut Config, node: &Node, env: &dyn Fn(&str) -> Option<String>) -> Node {
    let expand_args = |config: &mut Config, args: &[String], span: &Span| -> Vec<String> {
        args.iter()
            .map(|arg| {
                let (text, undefined) = resolve(arg, &config.defines, env);
                for name in undefined {
                    config.warnings.push(format!(
                        "AH00111: Config variable ${{{name}}} is not defined (line {} of {})",
                        span.line,
                        span.file.display()
                    ));
                }
                text.into_owned()
            })
            .collect()
    };
    match node {
        Node::Directive { name, args, span } => {
            Node::Directive { name: name.clone(), args: expand_args(config, args, span), span: span.clone() }
        }
        Node::Section { name, args, span, children } => {
            let args = expand_args(config, args, span);
            let children = if in_order(name) {
                children.clone()
            } else {
                children.iter().map(|child| expand_with(config, child, env)).collect()
            };
            Node::Section { name: name.clone(), args, span: span.clone(), children }
        }
    }
}

/// Substitutes every `${NAME}` in `word` once, left to right, as `ap_resolve_env` does; returns
/// the text and the names left undefined (those without `:`, which httpd warns about).
pub fn resolve<'a>(
    word: &'a str,
    defines: &Defines,
    env: &dyn Fn(&str) -> Option<String>,
) -> (Cow<'a, str>, Vec<String>) {
    if !word.contains("${") {
        return (Cow::Borrowed(word), Vec::new());
    }
    let mut out = String::with_capacity(word.len());
    let mut undefined = Vec::new();
    let mut rest = word;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            // No closing brace: the rest is text, as in httpd.
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let name = &after[..end];
        match defines.value(name).map(str::to_string).or_else(|| env(name)) {
            Some(value) => out.push_str(&value),
            None => {
                if !name.contains(':') {
                    undefined.push(name.to_string());
                }
                out.push_str(&rest[start..start + 2 + end + 1]);
            }
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    (Cow::Owned(out), undefined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Source;
    use std::path::{Path, PathBuf};

    fn defines(pairs: &[(&str, Option<&str>)]) -> Defines {
        Defines { vars: pairs.iter().map(|(k, v)| (k.to_string(), v.map(str::to_string))).collect() }
    }

    fn env(name: &str) -> Option<String> {
        (name == "APACHE_RUN_USER").then(|| "www-data".to_string())
    }

    #[test]
    fn defines_win_over_the_environment_and_undefined_names_stay() {
        let d =
            defines(&[("LOG", Some("/var/log/apache2")), ("APACHE_RUN_USER", Some("weir")), ("BARE", None)]);
        let (text, undefined) = resolve("${LOG}/error.log", &d, &env);
        assert_eq!((text.as_ref(), undefined.len()), ("/var/log/apache2/error.log", 0));
        assert_eq!(resolve("${APACHE_RUN_USER}", &d, &env).0, "weir");
        assert_eq!(resolve("${APACHE_RUN_USER}", &Defines::default(), &env).0, "www-data");
        // APR tables are case-insensitive.
        assert_eq!(resolve("${log}", &d, &env).0, "/var/log/apache2");
        // A Define without a value gives ${BARE} none: it stays, with a warning.
        let (text, undefined) = resolve("a${BARE}b${NOPE}c", &d, &env);
        assert_eq!(text, "a${BARE}b${NOPE}c");
        assert_eq!(undefined, vec!["BARE".to_string(), "NOPE".to_string()]);
        // Names with ':' belong to other syntaxes: no warning.
        assert_eq!(resolve("${x:y}", &d, &env).1, Vec::<String>::new());
        // No closing brace, a lone $, and a value holding ${…} is not read again.
        assert_eq!(resolve("$x ${open", &d, &env).0, "$x ${open");
        let d = defines(&[("A", Some("${B}")), ("B", Some("no"))]);
        assert_eq!(resolve("${A}", &d, &env).0, "${B}");
    }

    fn load(text: &str) -> Result<Config, crate::ConfigErrors> {
        Config::from_text(text, Path::new("t.conf"), Source::BuiltIn, PathBuf::from("/r"))
    }

    #[test]
    fn define_undefine_and_ifdefine_apply_in_order() {
        let config = load(
            "Define ROOT /srv/site\nDefine TLS\nListen 80\nDocumentRoot ${ROOT}/htdocs\n\
             <IfDefine TLS>\nServerName tls.example\n</IfDefine>\n<IfDefine !TLS>\nServerName plain\n</IfDefine>\n\
             UnDefine TLS\n<IfDefine TLS>\nStartServers 9\n</IfDefine>\n<IfDefine !TLS>\nStartServers 3\n</IfDefine>\n",
        )
        .unwrap();
        assert_eq!(config.document_root, PathBuf::from("/srv/site/htdocs"));
        assert_eq!(config.server_name.as_deref(), Some("tls.example"));
        assert_eq!(config.pool.start_servers, 3);
        assert!(config.warnings.is_empty(), "{:?}", config.warnings);
    }

    #[test]
    fn an_undefined_variable_is_kept_with_a_warning_naming_its_line() {
        let config = load("Listen 80\n\nDocumentRoot /x/${WEIR_SURELY_UNDEFINED_VAR}\n").unwrap();
        assert_eq!(config.document_root, PathBuf::from("/x/${WEIR_SURELY_UNDEFINED_VAR}"));
        assert_eq!(
            config.warnings,
            vec!["AH00111: Config variable ${WEIR_SURELY_UNDEFINED_VAR} is not defined (line 3 of t.conf)"]
        );
    }

    #[test]
    fn variables_reach_section_arguments_and_their_contents() {
        let config = load(
            "Define LOC /status\nDefine WHO 127.0.0.1\nListen 80\n<Location ${LOC}>\nSetHandler server-status\nRequire ip ${WHO}\n</Location>\n",
        )
        .unwrap();
        assert_eq!(config.locations[0].path, "/status");
    }

    #[test]
    fn bad_defines_name_their_line() {
        let text = load("Listen 80\nDefine a:b x\n").unwrap_err().to_string();
        assert!(text.contains("line 2") && text.contains("must not contain ':'"), "{text}");
        let text = load("Listen 80\n<IfDefine>\n</IfDefine>\n").unwrap_err().to_string();
        assert!(text.contains("line 2") && text.contains("<IfDefine>"), "{text}");
        let text = load("Listen 80\n<Location />\nDefine X 1\n</Location>\n").unwrap_err().to_string();
        assert!(text.contains("line 3") && text.contains("Define is not allowed here"), "{text}");
    }
}
