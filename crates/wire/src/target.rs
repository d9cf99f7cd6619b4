//! The request target as every part of weir reads it. A URL path has many spellings
//! (`/%63gi-bin/env`, `//cgi-bin/env`, `/x/../cgi-bin/env`); a gateway whose parts read them
//! differently can be walked around. So the edge computes one normalised path per request, as
//! soon as the head is read, and every decision is made from it: `<Location>` and `Require`,
//! ScriptAlias, Handlers, CGIInterpreter, static files, server-status. The worker is sent its
//! canonical encoding ([`Target::encoded`]), which decodes back to the same path, so it routes
//! by the same meaning.
//!
//! Normalising (RFC 3986 section 6.2.2, as Apache httpd with `MergeSlashes On`):
//! percent-escapes are decoded; `.` and `..` segments are removed; runs of `/` are merged.
//! Refused: a bad escape, bytes that are not UTF-8, control characters and `..` above the root
//! (400, as Apache), and an encoded `/` or `\` inside a segment (404, as Apache with
//! `AllowEncodedSlashes Off`): no file name holds one, and allowing it would let a segment
//! pass as two.

use std::fmt::Write as _;

/// Why a request target cannot be normalised, and the status that answers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TargetError {
    /// Not origin-form: the path does not start with `/`.
    NotOrigin,
    /// `%` not followed by two hex digits.
    BadEscape,
    /// The decoded path is not UTF-8.
    NotUtf8,
    /// A control character (NUL, CR, LF, …), raw or encoded.
    Control,
    /// `..` would climb above the root.
    AboveRoot,
    /// `%2F` or `%5C` (or a raw `\`): a slash inside a segment.
    EncodedSlash,
}

impl TargetError {
    /// The HTTP status that answers this target: 404 for an encoded slash, as Apache with
    /// `AllowEncodedSlashes Off`; 400 for everything else.
    pub fn status(self) -> u16 {
        match self {
            TargetError::EncodedSlash => 404,
            _ => 400,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            TargetError::NotOrigin => "the target is not a path",
            TargetError::BadEscape => "a bad percent-escape in the path",
            TargetError::NotUtf8 => "the decoded path is not UTF-8",
            TargetError::Control => "a control character in the path",
            TargetError::AboveRoot => "the path climbs above the root",
            TargetError::EncodedSlash => "an encoded slash in the path",
        }
    }
}

/// A normalised request target: the decoded path every decision is made from, and the query
/// as the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    path: String,
    query: Option<String>,
}

impl Target {
    /// Normalises an origin-form target (`path[?query]`); the query is kept as sent.
    pub fn parse(target: &str) -> Result<Target, TargetError> {
        let (path, query) = match target.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (target, None),
        };
        Ok(Target { path: normalise(path)?, query })
    }

    /// The decoded, normalised path: starts with `/`; no empty, `.` or `..` segment (a trailing
    /// `/` is kept); no control character; `/` only between segments.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The query as sent, without its `?`.
    pub fn query(&self) -> Option<&str> {
        self.query.as_deref()
    }

    /// The path's canonical encoding: what the worker is sent, and what decodes back to
    /// [`Target::path`].
    pub fn encoded_path(&self) -> String {
        encode_path(&self.path)
    }

    /// The canonical encoding with the query: the origin-form target sent to the worker.
    pub fn encoded(&self) -> String {
        let mut out = self.encoded_path();
        if let Some(query) = &self.query {
            out.push('?');
            out.push_str(query);
        }
        out
    }
}

/// The normalised, decoded form of a URL path (see the module's documentation).
pub fn normalise(raw: &str) -> Result<String, TargetError> {
    if !raw.starts_with('/') {
        return Err(TargetError::NotOrigin);
    }
    let mut decoded_segments: Vec<String> = Vec::new();
    let raw_segments: Vec<&str> = raw.split('/').collect();
    let last = raw_segments.len() - 1;
    // Whether the normalised path ends with '/': an empty last segment, or a last `.`/`..`.
    let mut trailing_slash = false;
    for (index, raw_segment) in raw_segments.iter().enumerate().skip(1) {
        let segment = decode_segment(raw_segment)?;
        match segment.as_str() {
            "" => {
                if index == last {
                    trailing_slash = true;
                }
            }
            "." => trailing_slash = index == last,
            ".." => {
                if decoded_segments.pop().is_none() {
                    return Err(TargetError::AboveRoot);
                }
                trailing_slash = index == last;
            }
            _ => {
                decoded_segments.push(segment);
                trailing_slash = false;
            }
        }
    }
    let mut path = String::with_capacity(raw.len());
    for segment in &decoded_segments {
        path.push('/');
        path.push_str(segment);
    }
    if path.is_empty() || trailing_slash {
        path.push('/');
    }
    Ok(path)
}

/// One raw segment, decoded and checked.
fn decode_segment(raw: &str) -> Result<String, TargetError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = if bytes[i] == b'%' {
            let high = bytes.get(i + 1).and_then(|b| hex_value(*b));
            let low = bytes.get(i + 2).and_then(|b| hex_value(*b));
            let (Some(high), Some(low)) = (high, low) else {
                return Err(TargetError::BadEscape);
            };
            i += 3;
            let byte = high << 4 | low;
            if byte == b'/' || byte == b'\\' {
                return Err(TargetError::EncodedSlash);
            }
            byte
        } else {
            i += 1;
            if bytes[i - 1] == b'\\' {
                return Err(TargetError::EncodedSlash);
            }
            bytes[i - 1]
        };
        if byte < 0x20 || byte == 0x7f {
            return Err(TargetError::Control);
        }
        out.push(byte);
    }
    String::from_utf8(out).map_err(|_| TargetError::NotUtf8)
}

fn hex_value(byte: u8) -> Option<u8> {
    (byte as char).to_digit(16).map(|d| d as u8)
}

/// Whether a character stands for itself in a canonical path: RFC 3986's unreserved
/// characters, sub-delims, `:` and `@` (pchar), and the `/` between segments.
fn literal(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@/".contains(c)
}

/// Percent-encodes a decoded path canonically: every character that is not literal
/// (unreserved, sub-delims, `:`, `@`, `/`), byte by byte of its UTF-8, in upper-case hex.
/// `normalise(encode_path(p)) == p` for every normalised `p`.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        if literal(c) {
            out.push(c);
        } else {
            let mut utf8 = [0u8; 4];
            for byte in c.encode_utf8(&mut utf8).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(out, "%{byte:02X}");
            }
        }
    }
    out
}

/// A configured URL prefix (`<Location /a//b>`, `ScriptAlias /cgi-bin/`) in the form it is
/// matched against normalised paths: runs of `/` merged. It is not decoded: Apache compares the
/// prefix as written with the decoded path, and so does weir.
pub fn merge_slashes(prefix: &str) -> String {
    let mut out = String::with_capacity(prefix.len());
    for c in prefix.chars() {
        if !(c == '/' && out.ends_with('/')) {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spellings_of_one_path_normalise_alike() {
        for raw in [
            "/cgi-bin/env",
            "/%63gi-bin/env",
            "//cgi-bin/env",
            "/cgi%2Dbin/env",
            "/./cgi-bin/./env",
            "/x/../cgi-bin/env",
            "/cgi-bin//env",
            "/%2e/cgi-bin/env",
            "/x/%2E%2E/cgi-bin/env",
        ] {
            assert_eq!(normalise(raw), Ok("/cgi-bin/env".to_string()), "{raw}");
        }
    }

    #[test]
    fn trailing_slashes_and_the_root() {
        assert_eq!(normalise("/"), Ok("/".into()));
        assert_eq!(normalise("//"), Ok("/".into()));
        assert_eq!(normalise("/a/"), Ok("/a/".into()));
        assert_eq!(normalise("/a//"), Ok("/a/".into()));
        assert_eq!(normalise("/a/."), Ok("/a/".into()));
        assert_eq!(normalise("/a/b/.."), Ok("/a/".into()));
        assert_eq!(normalise("/a/.."), Ok("/".into()));
        assert_eq!(normalise("/a/..x"), Ok("/a/..x".into()));
        assert_eq!(normalise("/.well-known/x"), Ok("/.well-known/x".into()));
    }

    #[test]
    fn refusals() {
        assert_eq!(normalise("/.."), Err(TargetError::AboveRoot));
        assert_eq!(normalise("/a/../../b"), Err(TargetError::AboveRoot));
        assert_eq!(normalise("/%2e%2e/etc/passwd"), Err(TargetError::AboveRoot));
        assert_eq!(normalise("/a%2fb"), Err(TargetError::EncodedSlash));
        assert_eq!(normalise("/a%5Cb"), Err(TargetError::EncodedSlash));
        assert_eq!(normalise("/a\\b"), Err(TargetError::EncodedSlash));
        assert_eq!(normalise("/a%zz"), Err(TargetError::BadEscape));
        assert_eq!(normalise("/a%4"), Err(TargetError::BadEscape));
        assert_eq!(normalise("/a%00"), Err(TargetError::Control));
        assert_eq!(normalise("/a%0d%0aSet-Cookie:x"), Err(TargetError::Control));
        assert_eq!(normalise("/a/%FFphp"), Err(TargetError::NotUtf8));
        assert_eq!(normalise("/%C3"), Err(TargetError::NotUtf8));
        assert_eq!(normalise("*"), Err(TargetError::NotOrigin));
        assert_eq!(normalise("/%C3%A9php"), Ok("/éphp".into()));
    }

    #[test]
    fn configured_prefixes_merge_slashes_only() {
        assert_eq!(merge_slashes("//private//x/"), "/private/x/");
        assert_eq!(merge_slashes("/a%20b"), "/a%20b");
    }

    #[test]
    fn canonical_encoding() {
        let target = Target::parse("/%63gi-bin/a%20b/%C3%A9?x=%2F&y").unwrap();
        assert_eq!(target.path(), "/cgi-bin/a b/é");
        assert_eq!(target.query(), Some("x=%2F&y"));
        assert_eq!(target.encoded(), "/cgi-bin/a%20b/%C3%A9?x=%2F&y");
        assert_eq!(encode_path("/100%/a?b#c"), "/100%25/a%3Fb%23c");
    }

    /// Raw targets built from pieces that have many spellings: segments that are names,
    /// dots, empties, escapes of unreserved and reserved characters, and non-ASCII.
    fn raw_target() -> impl Strategy<Value = String> {
        let segment = prop_oneof![
            Just(String::new()),
            Just(".".to_string()),
            Just("..".to_string()),
            Just("%2e".to_string()),
            Just("%2E%2e".to_string()),
            Just("cgi-bin".to_string()),
            Just("%63gi-bin".to_string()),
            Just("cgi%2Dbin".to_string()),
            Just("a%20b".to_string()),
            Just("%C3%A9".to_string()),
            Just("é".to_string()),
            Just("%2F".to_string()),
            Just("%zz".to_string()),
            Just("%00".to_string()),
            "[a-zA-Z0-9._~!$&'()*+,;=:@%-]{0,6}",
        ];
        proptest::collection::vec(segment, 0..8).prop_map(|segments| format!("/{}", segments.join("/")))
    }

    proptest! {
        #[test]
        fn normalising_is_idempotent_and_encoding_round_trips(raw in raw_target()) {
            if let Ok(path) = normalise(&raw) {
                prop_assert!(path.starts_with('/'));
                prop_assert!(!path.contains("//"), "{}", path);
                prop_assert!(!path.split('/').any(|s| s == "." || s == ".."), "{}", path);
                let encoded = encode_path(&path);
                prop_assert_eq!(normalise(&encoded), Ok(path.clone()));
                prop_assert!(encoded.bytes().all(|b| b.is_ascii_graphic()));
                prop_assert!(!encoded.contains('?') && !encoded.contains('#'));
            }
        }
    }
}
