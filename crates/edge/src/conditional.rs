//! Validators, conditional requests and byte ranges for static files (RFC 9110 sections 8.8, 13
//! and 14), evaluated in the order section 13.2.2 prescribes.
//!
//! Written here rather than taken from hyper-staticfile or tower-http because neither answers
//! `If-None-Match` (both only compare dates), and weir must; the Range grammar itself comes from
//! the http-range-header crate.

use std::num::NonZeroUsize;
use std::ops::RangeInclusive;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{header, HeaderMap, Method};

/// What a file's validators are.
#[derive(Debug, Clone)]
pub struct Validators {
    /// Strong entity tag, quoted: changes with the size and the modification time.
    pub etag: String,
    /// Modification time, whole seconds (HTTP dates have no fraction).
    pub modified: Option<SystemTime>,
}

impl Validators {
    /// Apache's default `FileETag MTime Size`, in microseconds.
    pub fn for_file(size: u64, modified: Option<SystemTime>) -> Validators {
        let micros = modified.and_then(|m| m.duration_since(UNIX_EPOCH).ok()).map_or(0, |d| d.as_micros());
        let whole = modified.and_then(|m| {
            let secs = m.duration_since(UNIX_EPOCH).ok()?.as_secs();
            Some(UNIX_EPOCH + std::time::Duration::from_secs(secs))
        });
        Validators { etag: format!("\"{micros:x}-{size:x}\""), modified: whole }
    }
}

/// How to answer a request for a file.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 200 with the whole file.
    Full,
    /// 304.
    NotModified,
    /// 412.
    PreconditionFailed,
    /// 206 with these bytes.
    Partial(RangeInclusive<u64>),
    /// 416.
    Unsatisfiable,
}

/// Decides the answer from the request's method and headers and the file's validators.
pub fn evaluate(method: &Method, headers: &HeaderMap, size: u64, validators: &Validators) -> Outcome {
    let safe = method == Method::GET || method == Method::HEAD;
    let text = |name: header::HeaderName| headers.get(name).and_then(|v| v.to_str().ok());
    // 1 and 2: If-Match, or else If-Unmodified-Since.
    if let Some(if_match) = text(header::IF_MATCH) {
        if !matches_any(if_match, &validators.etag, true) {
            return Outcome::PreconditionFailed;
        }
    } else if let Some(since) =
        text(header::IF_UNMODIFIED_SINCE).and_then(|d| httpdate::parse_http_date(d).ok())
    {
        if validators.modified.is_some_and(|m| m > since) {
            return Outcome::PreconditionFailed;
        }
    }
    // 3 and 4: If-None-Match, or else If-Modified-Since (which is ignored when it is present).
    if let Some(if_none_match) = text(header::IF_NONE_MATCH) {
        if matches_any(if_none_match, &validators.etag, false) {
            return if safe { Outcome::NotModified } else { Outcome::PreconditionFailed };
        }
    } else if safe {
        if let Some(since) = text(header::IF_MODIFIED_SINCE).and_then(|d| httpdate::parse_http_date(d).ok()) {
            if validators.modified.is_some_and(|m| m <= since) {
                return Outcome::NotModified;
            }
        }
    }
    // 5: Range, only for GET, and only while If-Range (if any) still holds.
    if method != Method::GET {
        return Outcome::Full;
    }
    let Some(range) = text(header::RANGE) else {
        return Outcome::Full;
    };
    if let Some(if_range) = text(header::IF_RANGE) {
        let holds = if if_range.starts_with('"') {
            if_range == validators.etag
        } else {
            httpdate::parse_http_date(if_range).ok().is_some_and(|d| Some(d) == validators.modified)
        };
        if !holds {
            return Outcome::Full;
        }
    }
    single_range(range, size)
}

/// One byte range; several ranges, or a malformed header, are ignored (the whole file is sent),
/// which RFC 9110 allows and which closes the door to overlapping-range amplification.
fn single_range(value: &str, size: u64) -> Outcome {
    use http_range_header::RangeUnsatisfiableError;
    let one = NonZeroUsize::MIN;
    let parsed = match http_range_header::parse_range_header_with_max_ranges(value, one) {
        Ok(parsed) => parsed,
        Err(_) => return Outcome::Full,
    };
    match parsed.validate(size) {
        Ok(ranges) => match ranges.into_iter().next() {
            Some(range) => Outcome::Partial(range),
            None => Outcome::Unsatisfiable,
        },
        Err(RangeUnsatisfiableError::Unsatisfiable) => Outcome::Unsatisfiable,
        Err(_) => Outcome::Full,
    }
}

/// Whether a list of entity tags (or `*`) matches `etag`; weak comparison unless `strong`.
fn matches_any(list: &str, etag: &str, strong: bool) -> bool {
    if list.trim() == "*" {
        return true;
    }
    list.split(',').map(str::trim).any(|candidate| {
        let weak = candidate.starts_with("W/");
        let opaque = candidate.trim_start_matches("W/");
        if strong && weak {
            return false;
        }
        opaque == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn validators() -> Validators {
        Validators::for_file(1000, Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000)))
    }

    fn eval(method: Method, pairs: &[(&'static str, &str)]) -> Outcome {
        let mut headers = HeaderMap::new();
        for (name, value) in pairs {
            headers.insert(*name, value.parse().unwrap());
        }
        evaluate(&method, &headers, 1000, &validators())
    }

    #[test]
    fn conditionals() {
        let v = validators();
        let date = httpdate::fmt_http_date(v.modified.unwrap());
        let earlier = httpdate::fmt_http_date(v.modified.unwrap() - Duration::from_secs(10));
        assert_eq!(eval(Method::GET, &[]), Outcome::Full);
        assert_eq!(eval(Method::GET, &[("if-none-match", &v.etag)]), Outcome::NotModified);
        assert_eq!(
            eval(Method::GET, &[("if-none-match", &format!("\"x\", W/{}", v.etag))]),
            Outcome::NotModified
        );
        assert_eq!(eval(Method::GET, &[("if-none-match", "\"other\"")]), Outcome::Full);
        assert_eq!(eval(Method::HEAD, &[("if-modified-since", &date)]), Outcome::NotModified);
        assert_eq!(eval(Method::GET, &[("if-modified-since", &earlier)]), Outcome::Full);
        // If-None-Match wins over If-Modified-Since.
        assert_eq!(
            eval(Method::GET, &[("if-none-match", "\"other\""), ("if-modified-since", &date)]),
            Outcome::Full
        );
        assert_eq!(eval(Method::GET, &[("if-match", "\"other\"")]), Outcome::PreconditionFailed);
        assert_eq!(eval(Method::GET, &[("if-match", &format!("W/{}", v.etag))]), Outcome::PreconditionFailed);
        assert_eq!(eval(Method::GET, &[("if-unmodified-since", &earlier)]), Outcome::PreconditionFailed);
        assert_eq!(eval(Method::GET, &[("if-modified-since", "garbage")]), Outcome::Full);
    }

    #[test]
    fn ranges() {
        let v = validators();
        assert_eq!(eval(Method::GET, &[("range", "bytes=0-99")]), Outcome::Partial(0..=99));
        assert_eq!(eval(Method::GET, &[("range", "bytes=990-")]), Outcome::Partial(990..=999));
        assert_eq!(eval(Method::GET, &[("range", "bytes=-10")]), Outcome::Partial(990..=999));
        assert_eq!(eval(Method::GET, &[("range", "bytes=900-5000")]), Outcome::Partial(900..=999));
        assert_eq!(eval(Method::GET, &[("range", "bytes=1000-")]), Outcome::Unsatisfiable);
        assert_eq!(eval(Method::GET, &[("range", "bytes=0-1,5-6")]), Outcome::Full);
        assert_eq!(eval(Method::GET, &[("range", "lines=0-1")]), Outcome::Full);
        assert_eq!(eval(Method::HEAD, &[("range", "bytes=0-1")]), Outcome::Full);
        assert_eq!(
            eval(Method::GET, &[("range", "bytes=0-1"), ("if-range", &v.etag)]),
            Outcome::Partial(0..=1)
        );
        assert_eq!(eval(Method::GET, &[("range", "bytes=0-1"), ("if-range", "\"old\"")]), Outcome::Full);
    }
}
