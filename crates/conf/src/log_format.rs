//! `LogFormat "format" nickname` and `CustomLog file nickname|"format"`: mod_log_config's format
//! strings, read once into the items the edge fills for each request.
//!
//! The `%` directives weir can fill are read; any other is an error that names it, so a log never
//! holds a field that silently means something else. `%>s`/`%<s` and `%s` are all the final
//! status (weir answers once, without internal redirects); `%O` is `%B`'s count (weir counts the
//! body bytes a client was sent, not the head's).

use crate::error::Problem;

/// One piece of a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogItem {
    /// Text written as it is.
    Text(String),
    /// `%h`, `%a`: the client's address.
    ClientIp,
    /// `%l`: always `-` (no identd).
    Logname,
    /// `%u`: the authenticated user, `-` when there is none.
    User,
    /// `%t`: `[26/Nov/2026:12:00:00 +0000]`.
    Time,
    /// `%r`: the request line as the client sent it.
    RequestLine,
    /// `%s`, `%>s`, `%<s`.
    Status,
    /// `%b`: body bytes, `-` for none.
    BytesClf,
    /// `%B`, `%O`: body bytes, `0` for none.
    Bytes,
    /// `%D`: microseconds taken.
    DurationUs,
    /// `%T`: seconds taken.
    DurationS,
    /// `%{Name}i`: a request header (name lower-cased), `-` when absent.
    RequestHeader(String),
    /// `%{Name}o`: a response header, `-` when absent.
    ResponseHeader(String),
    /// `%v`, `%V`: the server's name.
    ServerName,
    /// `%p`: the port the request came in on.
    LocalPort,
    /// `%U`: the URL path, without the query.
    Path,
    /// `%q`: `?` and the query, or nothing.
    Query,
    /// `%m`: the method.
    Method,
    /// `%H`: the protocol (`HTTP/1.1`).
    Protocol,
    /// `%P`: the edge's process id.
    Pid,
    /// `%{X-Request-Id}i` in weir's own words: the id the worker saw too.
    RequestId,
}

fn bad(directive: &'static str, value: &str, reason: impl Into<String>) -> Problem {
    Problem::BadValue { directive, value: value.to_string(), reason: reason.into() }
}

/// The `%` directives weir fills, for error messages.
const KNOWN: &str = "%h %a %l %u %t %r %s %>s %b %B %O %D %T %{Name}i %{Name}o %v %V %p %U %q %m %H %P %L %%";

/// Reads a mod_log_config format string.
pub fn parse(directive: &'static str, format: &str) -> Result<Vec<LogItem>, Problem> {
    let mut items = Vec::new();
    let mut text = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            // mod_log_config reads \n, \t and \\ as C does.
            match chars.next() {
                Some('n') => text.push('\n'),
                Some('t') => text.push('\t'),
                Some(other) => text.push(other),
                None => text.push('\\'),
            }
            continue;
        }
        if c != '%' {
            text.push(c);
            continue;
        }
        let mut spec = String::from("%");
        // Status conditions (%400,501{X}i) and ! are not read: they are refused below.
        while let Some(&m) = chars.peek() {
            if matches!(m, '<' | '>' | '!' | ',') || m.is_ascii_digit() {
                spec.push(m);
                chars.next();
            } else {
                break;
            }
        }
        let mut argument = None;
        if chars.peek() == Some(&'{') {
            chars.next();
            let mut name = String::new();
            for n in chars.by_ref() {
                if n == '}' {
                    break;
                }
                name.push(n);
            }
            spec.push_str(&format!("{{{name}}}"));
            argument = Some(name);
        }
        let Some(letter) = chars.next() else {
            return Err(bad(directive, &spec, format!("a % directive is cut short; weir fills {KNOWN}")));
        };
        spec.push(letter);
        let modifiers = &spec[1..spec.len() - 1 - argument.as_ref().map_or(0, |a| a.len() + 2)];
        let item = match (modifiers, letter, argument.as_deref()) {
            ("", '%', None) => {
                text.push('%');
                continue;
            }
            ("" | ">" | "<", 's', None) => LogItem::Status,
            ("", 'h' | 'a', None) => LogItem::ClientIp,
            ("", 'a', Some("c")) => LogItem::ClientIp,
            ("", 'l', None) => LogItem::Logname,
            ("", 'u', None) => LogItem::User,
            ("", 't', None) => LogItem::Time,
            ("", 'r', None) => LogItem::RequestLine,
            ("", 'b', None) => LogItem::BytesClf,
            ("", 'B' | 'O', None) => LogItem::Bytes,
            ("", 'D', None) => LogItem::DurationUs,
            ("", 'T', None) => LogItem::DurationS,
            ("", 'v' | 'V', None) => LogItem::ServerName,
            ("", 'p', None | Some("canonical") | Some("local")) => LogItem::LocalPort,
            ("", 'U', None) => LogItem::Path,
            ("", 'q', None) => LogItem::Query,
            ("", 'm', None) => LogItem::Method,
            ("", 'H', None) => LogItem::Protocol,
            ("", 'P', None) => LogItem::Pid,
            ("", 'L', None) => LogItem::RequestId,
            ("", 'i', Some(name)) if !name.is_empty() => {
                if name.eq_ignore_ascii_case("x-request-id") {
                    LogItem::RequestId
                } else {
                    LogItem::RequestHeader(name.to_ascii_lowercase())
                }
            }
            ("", 'o', Some(name)) if !name.is_empty() => LogItem::ResponseHeader(name.to_ascii_lowercase()),
            _ => return Err(bad(directive, &spec, format!("weir cannot fill this; it fills {KNOWN}"))),
        };
        if !text.is_empty() {
            items.push(LogItem::Text(std::mem::take(&mut text)));
        }
        items.push(item);
    }
    if !text.is_empty() {
        items.push(LogItem::Text(text));
    }
    Ok(items)
}

/// The request headers a format reads, in the order of its items (the edge keeps their values).
pub fn request_headers(items: &[LogItem]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for item in items {
        if let LogItem::RequestHeader(name) = item {
            if !names.contains(name) {
                names.push(name.clone());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debians_formats_are_read() {
        let combined =
            parse("LogFormat", "%h %l %u %t \"%r\" %>s %O \"%{Referer}i\" \"%{User-Agent}i\"").unwrap();
        assert_eq!(combined[0], LogItem::ClientIp);
        assert_eq!(combined[1], LogItem::Text(" ".into()));
        assert!(combined.contains(&LogItem::RequestHeader("user-agent".into())));
        assert_eq!(combined.last(), Some(&LogItem::Text("\"".into())));
        let vhost = parse("LogFormat", "%v:%p %h %l %u %t \"%r\" %>s %O").unwrap();
        assert_eq!(&vhost[..3], &[LogItem::ServerName, LogItem::Text(":".into()), LogItem::LocalPort]);
        assert_eq!(
            parse("LogFormat", "100%% %D\\t%{X-Request-Id}i").unwrap()[0],
            LogItem::Text("100% ".into())
        );
        assert_eq!(request_headers(&combined), vec!["referer".to_string(), "user-agent".to_string()]);
    }

    #[test]
    fn what_weir_cannot_fill_is_refused_by_name() {
        for (format, spec) in [
            ("%h %I", "%I"),
            ("%400,501{User-agent}i", "%400,501{User-agent}i"),
            ("%{%Y}t", "%{%Y}t"),
            ("%k", "%k"),
            ("x %", "%"),
        ] {
            let error = parse("LogFormat", format).unwrap_err().to_string();
            assert!(error.contains(&format!("'{spec}'")), "{format}: {error}");
        }
    }
}
