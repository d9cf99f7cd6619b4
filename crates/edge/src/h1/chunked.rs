//! A strict, incremental decoder for `Transfer-Encoding: chunked` request bodies (RFC 9112
//! section 7.1).
//!
//! Chunked framing is where request smuggling lives: a peer that can make us and a backend
//! disagree on where a body ends can hide a second request inside it. So the decoder accepts
//! exactly the RFC grammar minus its optional whitespace (BWS), only CRLF line endings, and
//! bounded sizes; everything else is an error. It is a byte-level state machine, so input may be
//! split anywhere, and it never consumes a byte past the end of the body.

use super::head::{is_tchar, split_field_line};

/// Most hex digits in a chunk-size; 16 always fit a u64, so overflow cannot happen.
const MAX_SIZE_DIGITS: u8 = 16;
/// Most bytes of chunk extensions on one chunk-size line (from the first `;` to the CR).
const MAX_EXTENSIONS: usize = 4096;
/// Most bytes of trailer section, counting every byte after the last-chunk line, CRLFs included.
const MAX_TRAILER_SECTION: usize = 8190;

/// Why a chunked body was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Not valid chunked coding; the text is for logs only. Answer 400 and close.
    #[error("malformed chunked body: {0}")]
    Malformed(&'static str),
    /// The decoded body would exceed the decoder's limit. Answer 413 and close.
    #[error("chunked body too large")]
    TooLarge,
}

/// Where the decoder is inside the chunked coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk-size.
    Size,
    /// Inside the chunk extensions of a chunk-size line.
    Ext(Ext),
    /// Saw the CR that ends a chunk-size line; LF must follow.
    SizeLf,
    /// Copying chunk data; `remaining` bytes are left.
    Data,
    /// After chunk data: CR must follow.
    DataCr,
    /// After chunk data and CR: LF must follow.
    DataLf,
    /// Reading a trailer field line (or the final empty line).
    TrailerLine,
    /// Saw the CR ending a trailer line; LF must follow.
    TrailerLf,
    /// The body and its trailer section are complete.
    Done,
    /// A previous call failed; the same error is returned again.
    Failed(ChunkError),
}

/// Position inside `*( ";" token [ "=" ( token / quoted-string ) ] )`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Just after `;`: a name must start.
    NameStart,
    /// Inside a name.
    Name,
    /// Just after `=`: a token or a quoted-string must start.
    ValueStart,
    /// Inside a token value.
    Token,
    /// Inside a quoted-string.
    Quoted,
    /// Just after a backslash inside a quoted-string.
    QuotedEscape,
    /// Just after the closing quote.
    QuotedEnd,
}

/// Decodes one chunked body. Feed it the bytes that follow the request head.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Most decoded bytes allowed; 0 means no limit.
    limit: u64,
    /// Sum of all chunk sizes announced so far (data decoded or still to come).
    announced: u64,
    /// The chunk-size being read, then the data bytes left in the current chunk.
    remaining: u64,
    /// Hex digits read in the current chunk-size.
    digits: u8,
    /// Extension bytes on the current chunk-size line.
    ext_len: usize,
    /// The trailer line being collected, so it can be validated when complete.
    trailer_line: Vec<u8>,
    /// Trailer section bytes seen so far.
    trailer_len: usize,
}

impl ChunkedDecoder {
    /// A decoder for a body of at most `limit` decoded bytes (0 = unlimited).
    pub fn new(limit: u64) -> Self {
        ChunkedDecoder {
            state: State::Size,
            limit,
            announced: 0,
            remaining: 0,
            digits: 0,
            ext_len: 0,
            trailer_line: Vec::new(),
            trailer_len: 0,
        }
    }

    /// Decodes as much of `input` as possible, appending body bytes to `out`, and returns how
    /// many input bytes were consumed. That is all of `input` unless the body ends inside it:
    /// then the bytes after the final CRLF are left for the next request and
    /// [`is_done`](Self::is_done) turns true. Trailer fields are validated and discarded.
    ///
    /// After an error the decoder is poisoned and returns the same error again. Body bytes
    /// appended to `out` before an error must not be forwarded.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        if let State::Failed(error) = self.state {
            return Err(error);
        }
        let mut pos = 0;
        while pos < input.len() && self.state != State::Done {
            if self.state == State::Data {
                pos += self.copy_data(&input[pos..], out);
                continue;
            }
            if let Err(error) = self.step(input[pos]) {
                self.state = State::Failed(error);
                return Err(error);
            }
            pos += 1;
        }
        Ok(pos)
    }

    /// Whether the last chunk and the trailer section have been read.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Copies as much of the current chunk's data as `input` holds; returns the count.
    fn copy_data(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let n = usize::try_from(self.remaining).map_or(input.len(), |r| r.min(input.len()));
        out.extend_from_slice(&input[..n]);
        // n <= remaining, and usize always fits in u64 on supported targets.
        self.remaining -= n as u64;
        if self.remaining == 0 {
            self.state = State::DataCr;
        }
        n
    }

    /// Advances the state machine by one byte outside chunk data.
    fn step(&mut self, b: u8) -> Result<(), ChunkError> {
        self.state = match self.state {
            State::Size => self.size_byte(b)?,
            State::Ext(ext) => self.ext_byte(ext, b)?,
            State::SizeLf => match b {
                b'\n' if self.remaining == 0 => State::TrailerLine,
                b'\n' => State::Data,
                _ => return Err(ChunkError::Malformed("bare CR in chunk size line")),
            },
            State::DataCr | State::DataLf => self.data_end_byte(b)?,
            State::TrailerLine | State::TrailerLf => self.trailer_byte(b)?,
            // `feed` never steps in these states.
            State::Data | State::Done | State::Failed(_) => self.state,
        };
        Ok(())
    }

    /// A byte of the chunk-size: `1*HEXDIG`, then `;` or CR. No sign, no `0x`, no whitespace.
    fn size_byte(&mut self, b: u8) -> Result<State, ChunkError> {
        if let Some(digit) = hex_value(b) {
            if self.digits == MAX_SIZE_DIGITS {
                return Err(ChunkError::Malformed("chunk size too long"));
            }
            self.digits += 1;
            self.remaining = (self.remaining << 4) | u64::from(digit);
            // More digits only make the size larger, so refuse as soon as it is too big.
            self.check_limit(self.remaining)?;
            return Ok(State::Size);
        }
        if self.digits == 0 {
            return Err(ChunkError::Malformed("invalid chunk size"));
        }
        let next = match b {
            b';' => {
                self.ext_len = 1;
                State::Ext(Ext::NameStart)
            }
            b'\r' => State::SizeLf,
            b'\n' => return Err(ChunkError::Malformed("bare LF in chunk size line")),
            _ => return Err(ChunkError::Malformed("invalid chunk size")),
        };
        self.announced = self.announced.checked_add(self.remaining).ok_or(ChunkError::TooLarge)?;
        self.digits = 0;
        Ok(next)
    }

    /// Fails with `TooLarge` if a chunk of `size` bytes would exceed the limit.
    fn check_limit(&self, size: u64) -> Result<(), ChunkError> {
        if self.limit != 0 && size > self.limit.saturating_sub(self.announced) {
            return Err(ChunkError::TooLarge);
        }
        Ok(())
    }

    /// A byte of the chunk extensions. BWS, which RFC 9112 allows around `;` and `=`, is refused
    /// because other parsers disagree on it.
    fn ext_byte(&mut self, ext: Ext, b: u8) -> Result<State, ChunkError> {
        if b == b'\r' {
            return match ext {
                Ext::Name | Ext::Token | Ext::QuotedEnd => Ok(State::SizeLf),
                Ext::Quoted | Ext::QuotedEscape => {
                    Err(ChunkError::Malformed("unterminated quoted chunk extension"))
                }
                Ext::NameStart | Ext::ValueStart => Err(ChunkError::Malformed("incomplete chunk extension")),
            };
        }
        self.ext_len += 1;
        if self.ext_len > MAX_EXTENSIONS {
            return Err(ChunkError::Malformed("chunk extensions too long"));
        }
        let next = match (ext, b) {
            (Ext::NameStart | Ext::Name, _) if is_tchar(b) => Ext::Name,
            (Ext::Name | Ext::Token | Ext::QuotedEnd, b';') => Ext::NameStart,
            (Ext::Name, b'=') => Ext::ValueStart,
            (Ext::ValueStart, b'"') => Ext::Quoted,
            (Ext::ValueStart | Ext::Token, _) if is_tchar(b) => Ext::Token,
            (Ext::Quoted, b'"') => Ext::QuotedEnd,
            (Ext::Quoted, b'\\') => Ext::QuotedEscape,
            (Ext::Quoted, _) if is_qdtext(b) => Ext::Quoted,
            (Ext::QuotedEscape, _) if is_quoted_pair_byte(b) => Ext::Quoted,
            (_, b'\n') => return Err(ChunkError::Malformed("bare LF in chunk size line")),
            _ => return Err(ChunkError::Malformed("invalid chunk extension")),
        };
        Ok(State::Ext(next))
    }

    /// The CRLF that must follow chunk data exactly.
    fn data_end_byte(&mut self, b: u8) -> Result<State, ChunkError> {
        match (self.state, b) {
            (State::DataCr, b'\r') => Ok(State::DataLf),
            (State::DataLf, b'\n') => Ok(State::Size),
            _ => Err(ChunkError::Malformed("missing CRLF after chunk data")),
        }
    }

    /// A byte of the trailer section: field lines like the header section's, then CRLF. Each
    /// line is validated when complete and then dropped: trailers are never forwarded.
    fn trailer_byte(&mut self, b: u8) -> Result<State, ChunkError> {
        self.trailer_len += 1;
        if self.trailer_len > MAX_TRAILER_SECTION {
            return Err(ChunkError::Malformed("trailer section too large"));
        }
        match (self.state, b) {
            (State::TrailerLine, b'\r') => Ok(State::TrailerLf),
            (State::TrailerLine, b'\n') => Err(ChunkError::Malformed("bare LF in trailer section")),
            (State::TrailerLine, _) => {
                self.trailer_line.push(b);
                Ok(State::TrailerLine)
            }
            (_, b'\n') if self.trailer_line.is_empty() => Ok(State::Done),
            (_, b'\n') => {
                split_field_line(&self.trailer_line).map_err(ChunkError::Malformed)?;
                self.trailer_line.clear();
                Ok(State::TrailerLine)
            }
            _ => Err(ChunkError::Malformed("bare CR in trailer section")),
        }
    }
}

/// The value of a hex digit (either case), or `None`.
fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// RFC 9110 `qdtext`: HTAB, SP, VCHAR except `"` and `\`, and obs-text.
fn is_qdtext(b: u8) -> bool {
    b == b'\t'
        || b == b' '
        || b == 0x21
        || (0x23..=0x5b).contains(&b)
        || (0x5d..=0x7e).contains(&b)
        || b >= 0x80
}

/// What may follow a backslash in a quoted-string: HTAB, SP, VCHAR, obs-text.
fn is_quoted_pair_byte(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `pieces` in order and returns the body and the total consumed, stopping at the first
    /// error. Checks the invariant that only a finished decoder leaves input unconsumed.
    fn decode_pieces(limit: u64, pieces: &[&[u8]]) -> (Result<usize, ChunkError>, Vec<u8>, bool) {
        let mut decoder = ChunkedDecoder::new(limit);
        let mut out = Vec::new();
        let mut consumed = 0;
        for piece in pieces {
            match decoder.feed(piece, &mut out) {
                Ok(n) => {
                    consumed += n;
                    if n < piece.len() {
                        assert!(decoder.is_done(), "left input unconsumed before the end");
                        break;
                    }
                }
                Err(error) => return (Err(error), out, decoder.is_done()),
            }
        }
        (Ok(consumed), out, decoder.is_done())
    }

    fn decode(limit: u64, input: &[u8]) -> (Result<usize, ChunkError>, Vec<u8>, bool) {
        decode_pieces(limit, &[input])
    }

    /// A small deterministic generator for random split points (xorshift64).
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n as u64) as usize
        }
    }

    /// The ways of splitting `input` that every test vector must survive: whole, one byte at a
    /// time, every split into two, and random splits.
    fn splits(input: &[u8]) -> Vec<Vec<&[u8]>> {
        let mut all = vec![vec![input], input.chunks(1).collect()];
        for cut in 0..=input.len() {
            all.push(vec![&input[..cut], &input[cut..]]);
        }
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ input.len() as u64);
        for _ in 0..50 {
            let mut pieces = Vec::new();
            let mut rest = input;
            while !rest.is_empty() {
                let (piece, tail) = rest.split_at(1 + rng.below(rest.len().min(7)));
                pieces.push(piece);
                rest = tail;
            }
            all.push(pieces);
        }
        all
    }

    /// Valid bodies: (name, input, decoded body, bytes after the end that must stay unconsumed).
    fn valid_cases() -> Vec<(&'static str, Vec<u8>, Vec<u8>, usize)> {
        let long_ext = format!("1;a={}\r\nx\r\n0\r\n\r\n", "v".repeat(MAX_EXTENSIONS - 3));
        let big_trailer = format!("0\r\nX: {}\r\n\r\n", "v".repeat(MAX_TRAILER_SECTION - 7));
        let cases: Vec<(&str, &[u8], &[u8], usize)> = vec![
            ("empty body", b"0\r\n\r\n", b"", 0),
            ("single chunk", b"5\r\nhello\r\n0\r\n\r\n", b"hello", 0),
            ("multiple chunks", b"5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n", b"hello world", 0),
            (
                "hex sizes in both cases",
                b"a\r\n0123456789\r\nB\r\nabcdefghijk\r\n0\r\n\r\n",
                b"0123456789abcdefghijk",
                0,
            ),
            ("leading zeros", b"0005\r\nhello\r\n0000\r\n\r\n", b"hello", 0),
            ("sixteen digits", b"0000000000000005\r\nhello\r\n0000000000000000\r\n\r\n", b"hello", 0),
            ("data containing CRLF and digits", b"7\r\n\r\n0\r\n\r\n\r\n0\r\n\r\n", b"\r\n0\r\n\r\n", 0),
            ("token extension", b"5;ext\r\nhello\r\n0\r\n\r\n", b"hello", 0),
            ("token extensions with values", b"5;a=b;c;d=1.0\r\nhello\r\n0\r\n\r\n", b"hello", 0),
            (
                "quoted extension with escapes",
                b"5;a=\"x y;\\\"z\\\\\t\xff\"\r\nhello\r\n0\r\n\r\n",
                b"hello",
                0,
            ),
            ("quoted extension followed by another", b"5;a=\"\";b=c\r\nhello\r\n0\r\n\r\n", b"hello", 0),
            ("extension on the last chunk", b"0;x=y\r\n\r\n", b"", 0),
            ("trailers", b"5\r\nhello\r\n0\r\nX-T: 1\r\nX-U:  two \t\r\nX-E:\r\n\r\n", b"hello", 0),
            ("bytes after the end", b"5\r\nhello\r\n0\r\n\r\nGET / HTTP/1.1\r\n", b"hello", 16),
            ("bytes after the end of an empty body", b"0\r\n\r\n0\r\n\r\n", b"", 5),
            ("longest extension", long_ext.as_bytes(), b"x", 0),
            ("largest trailer section", big_trailer.as_bytes(), b"", 0),
        ];
        cases
            .into_iter()
            .map(|(name, input, body, rest)| (name, input.to_vec(), body.to_vec(), rest))
            .collect()
    }

    #[test]
    fn valid_bodies_decode_identically_however_split() {
        for (name, input, body, rest) in valid_cases() {
            for pieces in splits(&input) {
                let (consumed, out, done) = decode_pieces(0, &pieces);
                assert_eq!(consumed, Ok(input.len() - rest), "{name}: {pieces:?}");
                assert_eq!(out, body, "{name}: {pieces:?}");
                assert!(done, "{name}");
            }
            // Exact limit is fine.
            let (consumed, out, _) = decode(body.len().max(1) as u64, &input);
            assert_eq!(consumed, Ok(input.len() - rest), "{name}: limit");
            assert_eq!(out, body, "{name}: limit");
        }
    }

    #[test]
    fn incomplete_input_is_consumed_and_not_done() {
        for (name, input, _, rest) in valid_cases() {
            let end = input.len() - rest;
            for cut in 0..end {
                let (consumed, _, done) = decode(0, &input[..cut]);
                assert_eq!(consumed, Ok(cut), "{name}: {cut}");
                assert!(!done, "{name}: {cut}");
            }
        }
    }

    #[test]
    fn nothing_is_consumed_after_done() {
        let mut decoder = ChunkedDecoder::new(0);
        let mut out = Vec::new();
        assert_eq!(decoder.feed(b"0\r\n\r\nxyz", &mut out), Ok(5));
        assert!(decoder.is_done());
        assert_eq!(decoder.feed(b"1\r\na\r\n", &mut out), Ok(0));
        assert!(out.is_empty());
    }

    fn malformed_cases() -> Vec<(&'static str, Vec<u8>, &'static str)> {
        let long_ext = format!("1;a={}\r\nx\r\n0\r\n\r\n", "v".repeat(MAX_EXTENSIONS - 2));
        let big_trailer = format!("0\r\nX: {}\r\n\r\n", "v".repeat(MAX_TRAILER_SECTION - 6));
        let cases: Vec<(&str, &[u8], &str)> = vec![
            ("non-hex size", b"g\r\n", "invalid chunk size"),
            ("hex then non-hex", b"5g\r\nhello\r\n", "invalid chunk size"),
            ("negative size", b"-1\r\n", "invalid chunk size"),
            ("plus sign", b"+5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            ("0x prefix", b"0x5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            ("space before size", b" 5\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            ("space after size", b"5 \r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            ("tab after size", b"5\t\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            ("BWS before extension", b"5 ;ext\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            ("empty size", b"\r\nhello\r\n0\r\n\r\n", "invalid chunk size"),
            ("empty size before extension", b";a\r\n", "invalid chunk size"),
            ("17 hex digits", b"00000000000000005\r\nhello\r\n0\r\n\r\n", "chunk size too long"),
            ("overflow", b"10000000000000000\r\n", "chunk size too long"),
            ("max 17 digits", b"fffffffffffffffff\r\n", "chunk size too long"),
            ("bare LF after size", b"5\nhello\r\n0\r\n\r\n", "bare LF in chunk size line"),
            ("bare LF after extension", b"5;a\nhello\r\n0\r\n\r\n", "bare LF in chunk size line"),
            ("bare CR after size", b"5\rhello\r\n0\r\n\r\n", "bare CR in chunk size line"),
            ("bare LF after data", b"5\r\nhello\n0\r\n\r\n", "missing CRLF after chunk data"),
            ("missing CRLF after data", b"5\r\nhelloX\r\n", "missing CRLF after chunk data"),
            ("data longer than announced", b"3\r\nhello\r\n0\r\n\r\n", "missing CRLF after chunk data"),
            ("CR without LF after data", b"5\r\nhello\rX", "missing CRLF after chunk data"),
            ("too-long extension", long_ext.as_bytes(), "chunk extensions too long"),
            ("extension without a name", b"5;=x\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
            ("empty extension", b"5;\r\nhello\r\n0\r\n\r\n", "incomplete chunk extension"),
            ("empty extension value", b"5;a=\r\nhello\r\n0\r\n\r\n", "incomplete chunk extension"),
            ("double semicolon", b"5;;a\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
            ("space after semicolon", b"5; a\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
            ("space before equals", b"5;a =b\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
            ("space after equals", b"5;a= b\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
            ("space after value", b"5;a=b \r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
            ("separator in token", b"5;a=b/c\r\nhello\r\n0\r\n\r\n", "invalid chunk extension"),
            (
                "unterminated quoted string",
                b"5;a=\"unterminated\r\nhello\r\n",
                "unterminated quoted chunk extension",
            ),
            ("escape before CR", b"5;a=\"x\\\r\n", "unterminated quoted chunk extension"),
            ("NUL in quoted string", b"5;a=\"x\0\"\r\nhello\r\n", "invalid chunk extension"),
            ("LF in quoted string", b"5;a=\"x\ny\"\r\nhello\r\n", "bare LF in chunk size line"),
            ("escaped NUL", b"5;a=\"\\\0\"\r\nhello\r\n", "invalid chunk extension"),
            ("junk after quoted string", b"5;a=\"x\"y\r\nhello\r\n", "invalid chunk extension"),
            ("quote in a name", b"5;\"a\"\r\nhello\r\n", "invalid chunk extension"),
            ("trailer without colon", b"0\r\nX-T\r\n\r\n", "field line without a colon"),
            ("trailer space before colon", b"0\r\nX-T : 1\r\n\r\n", "whitespace before the colon"),
            ("trailer obs-fold", b"0\r\nX-T: 1\r\n 2\r\n\r\n", "obsolete line folding"),
            ("trailer NUL", b"0\r\nX-T: a\0b\r\n\r\n", "invalid byte in field value"),
            ("trailer control in name", b"0\r\nX\x01: a\r\n\r\n", "invalid byte in field name"),
            ("trailer bare LF", b"0\r\nX-T: 1\n\r\n", "bare LF in trailer section"),
            ("final bare LF", b"0\r\n\n", "bare LF in trailer section"),
            ("trailer bare CR", b"0\r\nX-T: 1\rx\r\n\r\n", "bare CR in trailer section"),
            ("trailer section too large", big_trailer.as_bytes(), "trailer section too large"),
            (
                "missing final CRLF, data follows",
                b"5\r\nhello\r\n0\r\nhello\r\n",
                "field line without a colon",
            ),
        ];
        cases.into_iter().map(|(name, input, reason)| (name, input.to_vec(), reason)).collect()
    }

    #[test]
    fn malformed_bodies_fail_the_same_however_split() {
        for (name, input, reason) in malformed_cases() {
            for pieces in splits(&input) {
                let (result, _, done) = decode_pieces(0, &pieces);
                assert_eq!(result, Err(ChunkError::Malformed(reason)), "{name}: {pieces:?}");
                assert!(!done, "{name}");
            }
        }
    }

    #[test]
    fn errors_are_sticky() {
        let mut decoder = ChunkedDecoder::new(0);
        let mut out = Vec::new();
        let error = Err(ChunkError::Malformed("invalid chunk size"));
        assert_eq!(decoder.feed(b"g", &mut out), error);
        assert_eq!(decoder.feed(b"0\r\n\r\n", &mut out), error);
        assert!(!decoder.is_done());
    }

    #[test]
    fn limit_is_enforced_before_the_data_arrives() {
        let cases: &[(&str, u64, &[u8], &[u8])] = &[
            ("one chunk over", 4, b"5\r\n", b""),
            ("size alone already over", 4, b"5", b""),
            ("huge size with many digits", 100, b"fffffff", b""),
            ("second chunk over", 5, b"3\r\nabc\r\n3\r\n", b"abc"),
            ("second chunk over, with extension", 5, b"3\r\nabc\r\n3;a\r\n", b"abc"),
        ];
        for &(name, limit, input, decoded) in cases {
            for pieces in splits(input) {
                let (result, out, _) = decode_pieces(limit, &pieces);
                assert_eq!(result, Err(ChunkError::TooLarge), "{name}: {pieces:?}");
                assert_eq!(out, decoded, "{name}");
            }
        }
        // Unlimited: the announced total must not wrap around.
        let input = b"ffffffffffffffff\r\n";
        let mut decoder = ChunkedDecoder::new(0);
        assert_eq!(decoder.feed(input, &mut Vec::new()), Ok(input.len()));
        let mut wrapped = ChunkedDecoder::new(0);
        wrapped.announced = u64::MAX;
        assert_eq!(wrapped.feed(b"1\r\n", &mut Vec::new()), Err(ChunkError::TooLarge));
    }

    #[test]
    fn limit_counts_all_chunks() {
        let input = b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
        assert_eq!(decode(5, input).0, Ok(input.len()));
        assert_eq!(decode(4, input).0, Err(ChunkError::TooLarge));
        assert_eq!(decode(0, input).1, b"abcde");
    }
}
