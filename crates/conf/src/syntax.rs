//! Stage one: Apache httpd's configuration syntax into a tree of [`Node`]s.
//!
//! One directive per line; `#` starts a comment line; a `\` at the end of a line continues it on
//! the next; arguments are split on whitespace, and double or single quotes keep spaces in one
//! argument (a backslash inside quotes escapes the quote). `<Name args>` … `</Name>` is a section.

use std::path::Path;
use std::sync::Arc;

use crate::error::{ConfigError, Problem};

/// Where a directive was written: the file and the 1-based line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub file: Arc<Path>,
    pub line: usize,
}

/// One line of configuration, or a section with the lines inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Directive { name: String, args: Vec<String>, span: Span },
    Section { name: String, args: Vec<String>, span: Span, children: Vec<Node> },
}

/// Parses one file's text. Errors (unbalanced sections, unterminated quotes) are collected and
/// the rest of the file is still read, so one run reports every bad line.
pub fn parse(text: &str, file: &Arc<Path>, errors: &mut Vec<ConfigError>) -> Vec<Node> {
    // Each open section: its header and the children read so far.
    let mut stack: Vec<(String, Vec<String>, Span, Vec<Node>)> = Vec::new();
    let mut top = Vec::new();
    for (line_no, logical) in logical_lines(text) {
        let span = Span { file: file.clone(), line: line_no };
        let trimmed = logical.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let words = match split_args(trimmed) {
            Ok(words) => words,
            Err(problem) => {
                errors.push(ConfigError::at(&span, None, problem));
                continue;
            }
        };
        let Some(first) = words.first() else { continue };
        if let Some(closing) = first.strip_prefix("</") {
            let name = closing.trim_end_matches('>');
            match stack.pop() {
                Some((open, args, open_span, children)) if open.eq_ignore_ascii_case(name) => {
                    let node = Node::Section { name: open, args, span: open_span, children };
                    push(&mut stack, &mut top, node);
                }
                Some(other) => {
                    errors.push(ConfigError::at(
                        &span,
                        None,
                        Problem::MismatchedSection { expected: other.0.clone(), found: name.to_string() },
                    ));
                    stack.push(other);
                }
                None => errors.push(ConfigError::at(
                    &span,
                    None,
                    Problem::UnopenedSection { name: name.to_string() },
                )),
            }
        } else if let Some(opening) = first.strip_prefix('<') {
            let mut args: Vec<String> = words[1..].to_vec();
            let name = match opening.strip_suffix('>') {
                Some(name) => name.to_string(),
                None => {
                    let closed = args.last_mut().and_then(|last| {
                        let stripped = last.strip_suffix('>')?.to_string();
                        *last = stripped;
                        Some(())
                    });
                    if closed.is_none() {
                        errors.push(ConfigError::at(&span, Some(opening), Problem::UnclosedSectionHeader));
                        continue;
                    }
                    if args.last().is_some_and(String::is_empty) {
                        args.pop();
                    }
                    opening.to_string()
                }
            };
            stack.push((name, args, span, Vec::new()));
        } else {
            let node = Node::Directive { name: first.clone(), args: words[1..].to_vec(), span };
            push(&mut stack, &mut top, node);
        }
    }
    for (name, _, span, _) in stack {
        errors.push(ConfigError::at(&span, Some(&name), Problem::UnclosedSection));
    }
    top
}

fn push(stack: &mut [(String, Vec<String>, Span, Vec<Node>)], top: &mut Vec<Node>, node: Node) {
    match stack.last_mut() {
        Some((_, _, _, children)) => children.push(node),
        None => top.push(node),
    }
}

/// Joins `\`-continued lines; yields each logical line with the number of its first line.
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (index, raw) in text.lines().enumerate() {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        let (continues, content) = match raw.trim_end().strip_suffix('\\') {
            Some(head) => (true, head),
            None => (false, raw),
        };
        let entry = pending.get_or_insert_with(|| (index + 1, String::new()));
        if !entry.1.is_empty() {
            entry.1.push(' ');
        }
        entry.1.push_str(content.trim_start());
        if !continues {
            out.extend(pending.take());
        }
    }
    out.extend(pending);
    out
}

/// Splits a line into words as Apache's `ap_getword_conf` does.
fn split_args(line: &str) -> Result<Vec<String>, Problem> {
    let mut words = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            return Ok(words);
        };
        let mut word = String::new();
        if first == '"' || first == '\'' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                if c == '\\' && chars.peek() == Some(&first) {
                    word.push(first);
                    chars.next();
                } else if c == first {
                    closed = true;
                    break;
                } else {
                    word.push(c);
                }
            }
            if !closed {
                return Err(Problem::UnterminatedQuote);
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                word.push(c);
                chars.next();
            }
        }
        words.push(word);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_ok(text: &str) -> Vec<Node> {
        let file: Arc<Path> = Arc::from(Path::new("t.conf"));
        let mut errors = Vec::new();
        let nodes = parse(text, &file, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        nodes
    }

    fn directive(node: &Node) -> (&str, Vec<&str>, usize) {
        match node {
            Node::Directive { name, args, span } => {
                (name.as_str(), args.iter().map(String::as_str).collect(), span.line)
            }
            Node::Section { .. } => panic!("expected a directive, got {node:?}"),
        }
    }

    #[test]
    fn comments_quotes_and_continuations() {
        let nodes = parse_ok(
            "# comment\n\n  Listen 8443 https\nHeader set X \"a b \\\" c\"\nStartServers \\\n   5\nServerName 'x y'\n",
        );
        assert_eq!(directive(&nodes[0]), ("Listen", vec!["8443", "https"], 3));
        assert_eq!(directive(&nodes[1]), ("Header", vec!["set", "X", "a b \" c"], 4));
        assert_eq!(directive(&nodes[2]), ("StartServers", vec!["5"], 5));
        assert_eq!(directive(&nodes[3]), ("ServerName", vec!["x y"], 7));
    }

    #[test]
    fn sections_nest() {
        let nodes = parse_ok("<IfModule mpm_prefork_module>\n StartServers 2\n</IfModule>\n");
        let Node::Section { name, args, children, .. } = &nodes[0] else { panic!("{nodes:?}") };
        assert_eq!(name, "IfModule");
        assert_eq!(args, &vec!["mpm_prefork_module".to_string()]);
        assert_eq!(directive(&children[0]), ("StartServers", vec!["2"], 2));
    }

    #[test]
    fn unbalanced_sections_and_quotes_are_errors_with_lines() {
        let file: Arc<Path> = Arc::from(Path::new("t.conf"));
        let mut errors = Vec::new();
        parse("<IfModule x>\nA \"b\n</Location>\n", &file, &mut errors);
        let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![2, 3, 1], "{errors:?}");
    }
}
