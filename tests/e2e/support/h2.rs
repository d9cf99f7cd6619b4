//! Raw h2 clients for tests that hold request bodies open: hyper's client with a body fed piece
//! by piece, on a TLS connection from a chosen source address.

use std::sync::Arc;

use super::attack::{self, Dial};
use super::Weir;

/// A request body fed piece by piece through a channel; the stream stays open while the sender
/// lives.
pub struct Fed(pub tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl hyper::body::Body for Fed {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|piece| piece.map(|bytes| Ok(hyper::body::Frame::data(bytes))))
    }
}

/// An h2 connection to weir (h2 checked to be what ALPN chose).
pub async fn connect(weir: &Weir) -> hyper::client::conn::http2::SendRequest<Fed> {
    connect_from(weir, Dial::default()).await
}

/// [`connect`] from a chosen source address.
pub async fn connect_from(weir: &Weir, dial: Dial) -> hyper::client::conn::http2::SendRequest<Fed> {
    let mut config = (*attack::tls_config(&weir.cert_pem)).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let stream =
        attack::tls_connect_with(weir.addr(), &Arc::new(config), dial).await.expect("TLS connection");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "h2 by ALPN");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

// ---- A raw h2 client: frames written and read by hand ----

/// Frame types (RFC 9113 section 6).
pub const DATA: u8 = 0x0;
pub const HEADERS: u8 = 0x1;
pub const RST_STREAM: u8 = 0x3;
pub const SETTINGS: u8 = 0x4;
pub const PING: u8 = 0x6;
pub const GOAWAY: u8 = 0x7;
pub const WINDOW_UPDATE: u8 = 0x8;
pub const CONTINUATION: u8 = 0x9;

/// Flags.
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

/// Error codes (RFC 9113 section 7).
pub const NO_ERROR: u32 = 0x0;
pub const PROTOCOL_ERROR: u32 = 0x1;

/// The largest frame payload a peer must accept before SETTINGS say otherwise.
const MAX_FRAME: usize = 16_384;

/// Longest wait for the TLS handshake and the server's SETTINGS.
const SETUP_DEADLINE: std::time::Duration = std::time::Duration::from_secs(20);

/// One frame as it came off the wire.
#[derive(Debug, Clone)]
pub struct Frame {
    pub kind: u8,
    pub flags: u8,
    pub stream: u32,
    pub payload: Vec<u8>,
}

impl Frame {
    /// A DATA or HEADERS frame that ends its stream.
    pub fn ends_stream(&self) -> bool {
        matches!(self.kind, DATA | HEADERS) && self.flags & END_STREAM != 0
    }

    /// The error code of a RST_STREAM or GOAWAY frame.
    pub fn error_code(&self) -> Option<u32> {
        let at = match self.kind {
            RST_STREAM => 0,
            GOAWAY => 4,
            _ => return None,
        };
        let bytes = self.payload.get(at..at + 4)?;
        Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
    }

    /// A DATA frame's payload, padding removed.
    fn data(&self) -> &[u8] {
        if self.flags & PADDED == 0 {
            return &self.payload;
        }
        let pad = usize::from(self.payload.first().copied().unwrap_or(0));
        self.payload.get(1..self.payload.len().saturating_sub(pad)).unwrap_or_default()
    }

    /// One word per frame, for messages: `HEADERS(1,END_HEADERS) DATA(1,120,END_STREAM)`.
    pub fn describe(&self) -> String {
        let name = match self.kind {
            DATA => "DATA",
            HEADERS => "HEADERS",
            RST_STREAM => "RST_STREAM",
            SETTINGS => "SETTINGS",
            PING => "PING",
            GOAWAY => "GOAWAY",
            WINDOW_UPDATE => "WINDOW_UPDATE",
            CONTINUATION => "CONTINUATION",
            _ => "OTHER",
        };
        let mut text = format!("{name}({}", self.stream);
        if self.kind == DATA {
            text.push_str(&format!(",{}", self.data().len()));
        }
        if let Some(code) = self.error_code() {
            text.push_str(&format!(",code {code}"));
        }
        if self.ends_stream() {
            text.push_str(",END_STREAM");
        }
        text + ")"
    }
}

/// What the server did with one stream, read from the frames in order.
#[derive(Debug, Clone, Default)]
pub struct StreamOutcome {
    /// The response's status, when a response head came.
    pub status: Option<u16>,
    pub body: Vec<u8>,
    /// The response ended with END_STREAM.
    pub complete: bool,
    /// The RST_STREAM the server sent on the stream, if any: its error code.
    pub reset: Option<u32>,
    /// The reset came before the response was complete.
    pub reset_first: bool,
    /// A GOAWAY's error code, if the server sent one.
    pub goaway: Option<u32>,
    /// Every frame of the stream, and of the connection, in order (for messages).
    pub frames: String,
}

impl StreamOutcome {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// A client that writes h2 frames itself, so it can send what no library would (an
/// `:authority` with userinfo, two `host` fields, a field of any size), keeps every frame the
/// server sends in order, and honours flow control when it sends a body. Every wait has a
/// deadline.
pub struct RawH2 {
    io: attack::Tls,
    /// Bytes read and not yet parsed into frames.
    input: Vec<u8>,
    /// Every frame the server sent, in order.
    pub frames: Vec<Frame>,
    /// What the server lets this client send: the connection's window, each stream's, and the
    /// stream window new streams start with.
    connection_window: i64,
    stream_windows: std::collections::HashMap<u32, i64>,
    initial_window: i64,
    /// The server closed the connection (or it failed).
    pub closed: bool,
}

impl RawH2 {
    /// A TLS connection with h2 chosen by ALPN, the preface sent and the server's SETTINGS read
    /// and acknowledged. This client's windows are made as large as h2 allows, so the server is
    /// never held up by them.
    pub async fn connect(weir: &Weir) -> RawH2 {
        RawH2::connect_with_window(weir, 0x7fff_ffff).await
    }

    /// [`RawH2::connect`] with `window` as this client's stream window (and its connection
    /// window, when larger than h2's initial 65,535): the server may send that much on each
    /// stream, and no more until [`RawH2::window_update`] says so (this client never credits
    /// windows by itself).
    pub async fn connect_with_window(weir: &Weir, window: u32) -> RawH2 {
        RawH2::connect_from(weir, window, Dial::default()).await.expect("TLS connection")
    }

    /// [`RawH2::connect_with_window`] from the source address `dial` names; the error when the
    /// server refuses the connection.
    pub async fn connect_from(weir: &Weir, window: u32, dial: Dial) -> std::io::Result<RawH2> {
        let mut config = (*attack::tls_config(&weir.cert_pem)).clone();
        config.alpn_protocols = vec![b"h2".to_vec()];
        let io = attack::tls_connect_with(weir.addr(), &Arc::new(config), dial).await?;
        assert_eq!(io.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "h2 by ALPN");
        let mut h2 = RawH2 {
            io,
            input: Vec::new(),
            frames: Vec::new(),
            connection_window: 65_535,
            stream_windows: Default::default(),
            initial_window: 65_535,
            closed: false,
        };
        let mut preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
        // ENABLE_PUSH 0, INITIAL_WINDOW_SIZE `window`.
        let w = window.to_be_bytes();
        let settings = [[0, 2, 0, 0, 0, 0], [0, 4, w[0], w[1], w[2], w[3]]].concat();
        preface.extend(frame(SETTINGS, 0, 0, &settings));
        if let Some(more) = window.checked_sub(65_535).filter(|more| *more > 0) {
            preface.extend(frame(WINDOW_UPDATE, 0, 0, &more.to_be_bytes()));
        }
        h2.write(&preface).await?;
        let settings = |frames: &[Frame]| frames.iter().any(|f| f.kind == SETTINGS && f.flags & ACK == 0);
        if !h2.until(SETUP_DEADLINE, settings).await {
            return Err(std::io::Error::other(format!("no SETTINGS from the server: {}", h2.log())));
        }
        Ok(h2)
    }

    /// Sends a header block on `stream`: every field as a literal HPACK field without indexing
    /// (names as given, so a test may send what RFC 9113 calls malformed), in a HEADERS frame and
    /// as many CONTINUATION frames as it takes.
    pub async fn headers(&mut self, stream: u32, fields: &[(String, String)], end_stream: bool) {
        let mut block = Vec::new();
        for (name, value) in fields {
            block.push(0x00);
            hpack_string(&mut block, name.as_bytes());
            hpack_string(&mut block, value.as_bytes());
        }
        self.stream_windows.entry(stream).or_insert(self.initial_window);
        let pieces: Vec<&[u8]> = if block.is_empty() { vec![&[]] } else { block.chunks(MAX_FRAME).collect() };
        let mut bytes = Vec::new();
        for (i, piece) in pieces.iter().enumerate() {
            let last = if i + 1 == pieces.len() { END_HEADERS } else { 0 };
            if i == 0 {
                let end = if end_stream { END_STREAM } else { 0 };
                bytes.extend(frame(HEADERS, last | end, stream, piece));
            } else {
                bytes.extend(frame(CONTINUATION, last, stream, piece));
            }
        }
        let _ = self.write(&bytes).await;
    }

    /// Sends `len` bytes of body on `stream` as the server's windows allow, reading its frames
    /// meanwhile, then END_STREAM if `end_stream`. Stops early when the server resets the stream,
    /// sends GOAWAY or closes, or gives no window for `patience`. Returns the bytes sent.
    pub async fn data(
        &mut self,
        stream: u32,
        len: usize,
        end_stream: bool,
        patience: std::time::Duration,
    ) -> usize {
        let piece = vec![b'x'; MAX_FRAME];
        let mut sent = 0;
        loop {
            self.read_ready().await;
            if self.closed || self.stream_reset(stream) || self.frames.iter().any(|f| f.kind == GOAWAY) {
                return sent;
            }
            let window = self.connection_window.min(self.stream_windows.get(&stream).copied().unwrap_or(0));
            let n = (len - sent).min(MAX_FRAME).min(window.max(0) as usize);
            if n == 0 && sent < len {
                let before = self.frames.len();
                if !self.until(patience, |frames| frames.len() > before).await {
                    return sent;
                }
                continue;
            }
            let last = sent + n == len;
            let flags = if last && end_stream { END_STREAM } else { 0 };
            if self.write(&frame(DATA, flags, stream, &piece[..n])).await.is_err() {
                return sent;
            }
            sent += n;
            self.connection_window -= n as i64;
            *self.stream_windows.entry(stream).or_insert(0) -= n as i64;
            if last {
                return sent;
            }
        }
    }

    /// Lets the server send `increment` more bytes on `stream` (0: the connection).
    pub async fn window_update(&mut self, stream: u32, increment: u32) {
        let _ = self.write(&frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())).await;
    }

    /// Reads frames until `done` holds for them, the connection ends, or `within` passes;
    /// returns whether `done` held.
    pub async fn until(&mut self, within: std::time::Duration, done: impl Fn(&[Frame]) -> bool) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if done(&self.frames) {
                return true;
            }
            if self.closed {
                return false;
            }
            match tokio::time::timeout_at(deadline, self.read_some()).await {
                Ok(()) => self.take_frames().await,
                Err(_) => return done(&self.frames),
            }
        }
    }

    /// Waits until the server has finished with `stream`: its response complete, or the stream
    /// reset, or the connection gone; then, when the response completed without a reset, waits up
    /// to `linger` more for a reset that may follow it.
    pub async fn finish(
        &mut self,
        stream: u32,
        within: std::time::Duration,
        linger: std::time::Duration,
    ) -> StreamOutcome {
        let over = |frames: &[Frame]| {
            frames.iter().any(|f| f.stream == stream && (f.ends_stream() || f.kind == RST_STREAM))
                || frames.iter().any(|f| f.kind == GOAWAY)
        };
        self.until(within, over).await;
        if !self.stream_reset(stream) {
            self.until(linger, |frames| frames.iter().any(|f| f.stream == stream && f.kind == RST_STREAM))
                .await;
        }
        self.outcome(stream)
    }

    /// What the frames so far say about `stream`.
    pub fn outcome(&self, stream: u32) -> StreamOutcome {
        let mut outcome = StreamOutcome { frames: self.log(), ..Default::default() };
        let mut block: Option<Vec<u8>> = None;
        for f in &self.frames {
            if f.kind == GOAWAY {
                outcome.goaway = f.error_code();
            }
            if f.stream != stream {
                continue;
            }
            match f.kind {
                HEADERS if block.is_none() && outcome.status.is_none() => {
                    block = Some(header_block(f));
                    if f.flags & END_HEADERS != 0 {
                        outcome.status = block.as_deref().and_then(status_of_block);
                    }
                }
                CONTINUATION => {
                    if let Some(block) = block.as_mut() {
                        block.extend_from_slice(&f.payload);
                    }
                    if f.flags & END_HEADERS != 0 {
                        outcome.status = block.as_deref().and_then(status_of_block);
                    }
                }
                DATA => outcome.body.extend_from_slice(f.data()),
                RST_STREAM if outcome.reset.is_none() => {
                    outcome.reset = f.error_code();
                    outcome.reset_first = !outcome.complete;
                }
                _ => {}
            }
            if f.ends_stream() {
                outcome.complete = true;
            }
        }
        outcome
    }

    /// The frames so far, one word each.
    pub fn log(&self) -> String {
        self.frames.iter().map(Frame::describe).collect::<Vec<_>>().join(" ")
    }

    fn stream_reset(&self, stream: u32) -> bool {
        self.frames.iter().any(|f| f.stream == stream && f.kind == RST_STREAM)
    }

    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        let result = attack::send(&mut self.io, bytes).await;
        if result.is_err() {
            self.closed = true;
        }
        result
    }

    /// Takes in whatever the server has sent already, without waiting.
    async fn read_ready(&mut self) {
        while !self.closed {
            let ready = tokio::time::timeout(std::time::Duration::from_millis(1), self.read_some()).await;
            if ready.is_err() {
                return;
            }
            self.take_frames().await;
        }
    }

    /// One read from the socket (safe to cancel: it only reads).
    async fn read_some(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut chunk = vec![0u8; 64 * 1024];
        match self.io.read(&mut chunk).await {
            Ok(0) | Err(_) => self.closed = true,
            Ok(n) => self.input.extend_from_slice(&chunk[..n]),
        }
    }

    /// Takes every whole frame in the input and answers it as h2 requires (SETTINGS and PING
    /// acknowledged, windows credited).
    async fn take_frames(&mut self) {
        while self.input.len() >= 9 {
            let len = usize::from(self.input[0]) << 16
                | usize::from(self.input[1]) << 8
                | usize::from(self.input[2]);
            if self.input.len() < 9 + len {
                break;
            }
            let header: Vec<u8> = self.input.drain(..9).collect();
            let payload: Vec<u8> = self.input.drain(..len).collect();
            let stream = u32::from_be_bytes([header[5], header[6], header[7], header[8]]) & 0x7fff_ffff;
            let f = Frame { kind: header[3], flags: header[4], stream, payload };
            self.answer(&f).await;
            self.frames.push(f);
        }
    }

    async fn answer(&mut self, f: &Frame) {
        match f.kind {
            SETTINGS if f.flags & ACK == 0 => {
                for setting in f.payload.chunks_exact(6) {
                    let id = u16::from_be_bytes([setting[0], setting[1]]);
                    let value =
                        i64::from(u32::from_be_bytes([setting[2], setting[3], setting[4], setting[5]]));
                    if id == 4 {
                        let delta = value - self.initial_window;
                        self.initial_window = value;
                        for window in self.stream_windows.values_mut() {
                            *window += delta;
                        }
                    }
                }
                let _ = self.write(&frame(SETTINGS, ACK, 0, &[])).await;
            }
            PING if f.flags & ACK == 0 => {
                let _ = self.write(&frame(PING, ACK, 0, &f.payload)).await;
            }
            WINDOW_UPDATE if f.payload.len() == 4 => {
                let p = &f.payload;
                let increment = i64::from(u32::from_be_bytes([p[0], p[1], p[2], p[3]]) & 0x7fff_ffff);
                if f.stream == 0 {
                    self.connection_window += increment;
                } else {
                    *self.stream_windows.entry(f.stream).or_insert(self.initial_window) += increment;
                }
            }
            _ => {}
        }
    }
}

/// The request fields of a GET for `path` on `localhost`, pseudo-header fields first.
pub fn get(path: &str) -> Vec<(String, String)> {
    request("GET", path)
}

/// The pseudo-header fields of a request for `path` on `localhost`.
pub fn request(method: &str, path: &str) -> Vec<(String, String)> {
    [(":method", method), (":scheme", "https"), (":authority", "localhost"), (":path", path)]
        .into_iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// One request on a connection of its own: `fields`, then `body` bytes (if any) and the end of
/// the stream; what the server did with it, waiting up to 15 s for it to finish and 1 s more
/// for a reset that may follow a complete response.
pub async fn exchange(weir: &Weir, fields: &[(String, String)], body: Option<usize>) -> StreamOutcome {
    let mut h2 = RawH2::connect(weir).await;
    h2.headers(1, fields, body.is_none()).await;
    if let Some(len) = body {
        h2.data(1, len, true, std::time::Duration::from_secs(10)).await;
    }
    h2.finish(1, std::time::Duration::from_secs(15), std::time::Duration::from_secs(1)).await
}

/// A frame: the 9-byte header, then the payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.extend_from_slice(&[kind, flags]);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK string literal, not Huffman-coded: its length (7-bit prefix integer), then the bytes.
fn hpack_string(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = bytes.len();
    if len < 127 {
        out.push(len as u8);
    } else {
        out.push(127);
        let mut rest = len - 127;
        while rest >= 128 {
            out.push((rest % 128) as u8 | 0x80);
            rest /= 128;
        }
        out.push(rest as u8);
    }
    out.extend_from_slice(bytes);
}

/// A HEADERS frame's header block fragment: padding and priority removed.
fn header_block(f: &Frame) -> Vec<u8> {
    let mut start = 0;
    let mut end = f.payload.len();
    if f.flags & PADDED != 0 {
        start += 1;
        end = end.saturating_sub(usize::from(f.payload.first().copied().unwrap_or(0)));
    }
    if f.flags & 0x20 != 0 {
        start += 5;
    }
    f.payload.get(start..end).unwrap_or_default().to_vec()
}

/// The `:status` of a response header block. It is the first field (pseudo-header fields come
/// first), and on a connection's first response it cannot refer to the dynamic table, so this
/// reads only: table size updates, an indexed `:status` from the static table, or a literal with
/// a `:status` name whose value is plain or Huffman-coded digits.
fn status_of_block(block: &[u8]) -> Option<u16> {
    const STATIC_STATUS: [u16; 7] = [200, 204, 206, 304, 400, 404, 500];
    let mut at = 0;
    while block.get(at)? & 0xe0 == 0x20 {
        at = hpack_int(block, at, 5)?.1;
    }
    let first = *block.get(at)?;
    if first & 0x80 != 0 {
        let (index, _) = hpack_int(block, at, 7)?;
        return STATIC_STATUS.get(index.checked_sub(8)?).copied();
    }
    let prefix = if first & 0x40 != 0 { 6 } else { 4 };
    let (index, at) = hpack_int(block, at, prefix)?;
    if !(8..=14).contains(&index) {
        return None;
    }
    let huffman = block.get(at)? & 0x80 != 0;
    let (len, at) = hpack_int(block, at, 7)?;
    let value = block.get(at..at + len)?;
    let text = if huffman { huffman_digits(value)? } else { String::from_utf8(value.to_vec()).ok()? };
    text.parse().ok()
}

/// An HPACK integer with an `n`-bit prefix at `at`: its value and where the next byte is.
fn hpack_int(block: &[u8], at: usize, n: u32) -> Option<(usize, usize)> {
    let mask = (1usize << n) - 1;
    let mut value = usize::from(*block.get(at)?) & mask;
    let mut at = at + 1;
    if value < mask {
        return Some((value, at));
    }
    let mut shift = 0;
    loop {
        let byte = *block.get(at)?;
        at += 1;
        value += usize::from(byte & 0x7f) << shift;
        shift += 7;
        if byte & 0x80 == 0 || shift > 28 {
            return Some((value, at));
        }
    }
}

/// Decodes Huffman-coded decimal digits (RFC 7541 Appendix B: `0`-`2` are 5-bit codes 0-2, `3`-`9`
/// 6-bit codes 0x19-0x1f), followed by at most 7 bits of EOS padding (all ones). `None` for
/// anything else.
fn huffman_digits(bytes: &[u8]) -> Option<String> {
    let total = bytes.len() * 8;
    let bit = |i: usize| (bytes[i / 8] >> (7 - i % 8)) & 1;
    let take = |at: usize, n: usize| (at..at + n).fold(0u8, |value, i| value << 1 | bit(i));
    let (mut at, mut out) = (0, String::new());
    while at < total {
        let rest = total - at;
        if rest < 8 && (at..total).all(|i| bit(i) == 1) {
            break;
        }
        if rest >= 5 && take(at, 5) < 3 {
            out.push(char::from(b'0' + take(at, 5)));
            at += 5;
        } else if rest >= 6 && (0x19..=0x1f).contains(&take(at, 6)) {
            out.push(char::from(b'3' + take(at, 6) - 0x19));
            at += 6;
        } else {
            return None;
        }
    }
    Some(out)
}
