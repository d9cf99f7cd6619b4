//! `ErrorDocument code document`: what a site (or a `<Location>`) answers in place of its
//! built-in error page.
//!
//! Read as Apache 2.4's core reads it (`set_error_document`): a second argument with a space in
//! it, or that neither starts with `/` nor is a URL, is a text sent as the body; one starting
//! with `/` is a local path fetched with a GET (the original status is kept); a URL is a 302 to
//! it. `default` restores the built-in page. weir is stricter where Apache's reading is a trap:
//! only the error statuses (4xx and 5xx) take a document, since the edge applies them only to
//! errors; a local path must be one the router can take (no `//`, no control or space, a
//! target that normalises); a URL must be `http://` or `https://`; and a text with `%{`, which
//! Apache 2.4 would read as an expression, is refused rather than sent as written.

use crate::error::Problem;

/// One `ErrorDocument`'s document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorDocument {
    /// Sent as the body (text/html), with the original status.
    Text(String),
    /// An origin-form path (and query) on the same site, answered as a GET with the original
    /// status.
    Local(String),
    /// A full URL: a 302 to it (the original status is lost, as in Apache).
    Remote(String),
    /// `default`: the built-in page, undoing an inherited document.
    Default,
}

/// The documents of one site, by status: the main server's, overridden code by code by a
/// `<VirtualHost>`'s own (Apache merges them the same way).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ErrorDocuments(Vec<(u16, ErrorDocument)>);

impl ErrorDocuments {
    /// Sets (or replaces) the document for `code`.
    pub fn set(&mut self, code: u16, document: ErrorDocument) {
        self.0.retain(|(known, _)| *known != code);
        self.0.push((code, document));
    }

    /// The document for `status`, unless there is none or it is `default`.
    pub fn get(&self, status: u16) -> Option<&ErrorDocument> {
        self.0
            .iter()
            .find(|(code, _)| *code == status)
            .map(|(_, document)| document)
            .filter(|document| **document != ErrorDocument::Default)
    }

    /// The entry for `status` as written, `default` included (which undoes an inherited one).
    pub fn entry(&self, status: u16) -> Option<&ErrorDocument> {
        self.0.iter().find(|(code, _)| *code == status).map(|(_, document)| document)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|(_, document)| *document == ErrorDocument::Default)
    }

    /// `self` with `own`'s documents replacing those of the same codes.
    pub fn merged_with(&self, own: &ErrorDocuments) -> ErrorDocuments {
        let mut merged = self.clone();
        for (code, document) in &own.0 {
            merged.set(*code, document.clone());
        }
        merged
    }
}

/// What an `ErrorDocument` line asks for; `Ok(None)`: a line Apache ignores with a notice (a
/// URL for 401, which would lose the challenge), the notice given back as the warning.
pub fn parse(args: &[String]) -> Result<Result<(u16, ErrorDocument), String>, Problem> {
    const D: &str = "ErrorDocument";
    let bad = |value: &str, reason: &str| Problem::BadValue {
        directive: D,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    let [code, document] = args else {
        return Err(Problem::Arity {
            directive: D,
            expected: "two arguments",
            help: "Change responses for HTTP errors",
        });
    };
    let status = code
        .parse::<u16>()
        .ok()
        .filter(|status| code.len() == 3 && (400..=599).contains(status))
        .ok_or_else(|| {
            bad(
                code,
                "weir takes an error status (400 to 599): the edge applies ErrorDocument only to errors",
            )
        })?;
    if http_reason_known(status).is_none() {
        return Err(bad(code, "Unsupported HTTP response code"));
    }
    let document = if document.contains(' ') {
        ErrorDocument::Text(document.clone())
    } else if document.starts_with('/') {
        ErrorDocument::Local(document.clone())
    } else if is_url(document) {
        ErrorDocument::Remote(document.clone())
    } else if document.eq_ignore_ascii_case("default") {
        ErrorDocument::Default
    } else {
        ErrorDocument::Text(document.clone())
    };
    match &document {
        ErrorDocument::Text(text) if text.contains("%{") => {
            return Err(bad(
                text,
                "weir does not evaluate expressions in an ErrorDocument; write the text as it is to be sent",
            ));
        }
        ErrorDocument::Text(text) if text.chars().any(|c| c.is_control() && c != '\t') => {
            return Err(bad(text, "a text may not hold control characters"));
        }
        ErrorDocument::Local(path) => {
            if !weir_wire::is_local_path(path) {
                return Err(bad(path, "expected a local URL path such as /errors/404.html (no //, spaces or control characters)"));
            }
            if weir_wire::target::Target::parse(path).is_err() {
                return Err(bad(path, "the path does not normalise (bad %-encoding or a .. above the root)"));
            }
            // `/errors/../private/p.txt` is fetched as `/private/p.txt`: write what is meant.
            let path_part = path.split(['?', '#']).next().unwrap_or("");
            if path_part.split('/').any(|segment| segment == "." || segment == "..") {
                return Err(bad(path, "write the path without . or .. segments"));
            }
        }
        ErrorDocument::Remote(url) => {
            let lower = url.to_ascii_lowercase();
            let authority = lower
                .strip_prefix("https://")
                .or_else(|| lower.strip_prefix("http://"))
                .map(|rest| rest.split(['/', '?', '#']).next().unwrap_or(""));
            if authority.is_none_or(str::is_empty) || !weir_wire::fields::is_target(url.as_bytes()) {
                return Err(bad(url, "weir redirects to an http:// or https:// URL with a host"));
            }
            if status == 401 {
                return Ok(Err(format!(
                    "ErrorDocument 401 {url} is ignored: a full URL cannot be used for 401, as Apache says (AH00113)"
                )));
            }
        }
        _ => {}
    }
    Ok(Ok((status, document)))
}

/// Apache's `ap_is_url`: a scheme (a letter, then letters, digits, `+`, `-`, `.`) and a colon.
fn is_url(text: &str) -> bool {
    let Some((scheme, _)) = text.split_once(':') else {
        return false;
    };
    let mut bytes = scheme.bytes();
    bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
        && bytes.all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
}

/// The statuses Apache knows a reason phrase for (`ap_index_of_response`), among the errors.
fn http_reason_known(status: u16) -> Option<()> {
    const KNOWN: &[u16] = &[
        400, 401, 402, 403, 404, 405, 406, 407, 408, 409, 410, 411, 412, 413, 414, 415, 416, 417, 418, 421,
        422, 423, 424, 425, 426, 428, 429, 431, 451, 500, 501, 502, 503, 504, 505, 506, 507, 508, 510, 511,
    ];
    KNOWN.contains(&status).then_some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(code: &str, document: &str) -> Result<Result<(u16, ErrorDocument), String>, Problem> {
        parse(&[code.to_string(), document.to_string()])
    }

    #[test]
    fn apaches_heuristic() {
        let doc = |code, text| read(code, text).unwrap().unwrap();
        assert_eq!(doc("404", "/errors/404.html"), (404, ErrorDocument::Local("/errors/404.html".into())));
        assert_eq!(doc("404", "Not here, sorry"), (404, ErrorDocument::Text("Not here, sorry".into())));
        assert_eq!(doc("500", "Oops"), (500, ErrorDocument::Text("Oops".into())));
        assert_eq!(
            doc("503", "https://status.example.com/"),
            (503, ErrorDocument::Remote("https://status.example.com/".into()))
        );
        assert_eq!(doc("404", "default"), (404, ErrorDocument::Default));
        assert_eq!(doc("404", "/cgi-bin/e.cgi?x=1").1, ErrorDocument::Local("/cgi-bin/e.cgi?x=1".into()));
        // A text with a space that starts with / is still a text, as Apache reads it.
        assert_eq!(doc("404", "/ is gone").1, ErrorDocument::Text("/ is gone".into()));
        assert!(read("401", "https://login.example.com/").unwrap().is_err(), "ignored with a notice");
    }

    #[test]
    fn refusals() {
        for (code, document) in [
            ("200", "/ok.html"),
            ("302", "/x"),
            ("4040", "/x"),
            ("499", "/x"),
            ("404", "//evil.example/x"),
            ("404", "/a/../../x"),
            ("404", "/%zz"),
            ("404", "ftp://x.example/"),
            ("404", "https:///nohost"),
            ("404", "Hello %{REQUEST_URI}"),
            ("404", "javascript:alert(1)"),
        ] {
            assert!(read(code, document).is_err(), "{code} {document}");
        }
        assert!(parse(&["404".to_string()]).is_err());
    }

    #[test]
    fn merging_code_by_code() {
        let mut main = ErrorDocuments::default();
        main.set(404, ErrorDocument::Text("main 404".into()));
        main.set(500, ErrorDocument::Text("main 500".into()));
        let mut own = ErrorDocuments::default();
        own.set(404, ErrorDocument::Local("/404.html".into()));
        own.set(500, ErrorDocument::Default);
        let merged = main.merged_with(&own);
        assert_eq!(merged.get(404), Some(&ErrorDocument::Local("/404.html".into())));
        assert_eq!(merged.get(500), None, "default restores the built-in page");
        assert_eq!(merged.get(403), None);
    }
}
