//! The bytes a head may hold where, as both sides write and read them (RFC 9110 sections 5.1,
//! 5.5 and 15; RFC 9112 sections 3 and 4). A writer that checks with these cannot be made to
//! write a second field, or a second message, from inside one value: no CR, LF or NUL reaches
//! the stream, and every name is a token. They accept exactly what httparse, the reader on the
//! other side, reads back unchanged (values up to the whitespace it trims at their ends).

/// Whether `bytes` is a token (a method, a field name): `tchar`s, at least one.
pub fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Whether `bytes` may stand as a field value, or a reason phrase: HTAB, SP, visible ASCII and
/// obs-text; never CR, LF, NUL or another control.
pub fn is_value(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80)
}

/// Whether `bytes` may stand as a request target: visible ASCII and obs-text, at least one
/// byte; no space, no control.
pub fn is_target(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| (b'!'..=b'~').contains(&b) || b >= 0x80)
}

/// The field value as the reader hands it over: without the whitespace at its ends.
pub fn trimmed(value: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !is_space(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !is_space(b)).map_or(start, |i| i + 1);
    &value[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_values_and_targets() {
        assert!(is_token(b"X-Custom_1") && is_token(b"GET") && is_token(b"!#$%&'*+-.^_`|~"));
        for bad in [&b""[..], b"Bad Name", b"a:b", b"a\r\nb", b"(x)", b"a\0", "é".as_bytes()] {
            assert!(!is_token(bad), "{bad:?}");
        }
        assert!(is_value(b"") && is_value(b"a b\tc") && is_value("caf\u{e9}".as_bytes()));
        for bad in [&b"a\r\nX-Injected: 1"[..], b"a\nb", b"a\rb", b"a\0b", b"\x7f", b"\x1b[0m"] {
            assert!(!is_value(bad), "{bad:?}");
        }
        assert!(is_target(b"/a?b=c") && is_target(b"*"));
        assert!(!is_target(b"") && !is_target(b"/a b") && !is_target(b"/a\tb"));
        assert_eq!(trimmed(b" \t a b \t"), b"a b");
        assert_eq!(trimmed(b"  "), b"");
    }
}
