//! PROXY protocol v1/v2 headers.
//!
//! Listeners behind HAProxy, an AWS NLB or an F5 receive a PROXY protocol header
//! (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>) before the TLS ClientHello.
//! [`read_header`] reads exactly that header, never a byte more (what follows belongs to rustls),
//! and says who the real client is. A connection without a valid header is to be closed.
//!
//! Reading: the first 12 bytes tell the versions apart (v1 starts with `"PROXY "`, v2 with a
//! 12-byte signature; neither header is shorter than 15 bytes, so those 12 are always part of
//! it). v1 then goes on in reads of one or two bytes, never past the first CRLF; v2 reads its 4
//! remaining fixed bytes and then exactly the announced length.
//!
//! Parsing: the collected bytes go to the `ppp` crate, with these checks of our own around it:
//! - v1 `PROXY UNKNOWN ...` is answered here, since `ppp` refuses an UNKNOWN line with more than
//!   four words after it, while the spec says to ignore everything up to the CRLF;
//! - v1 ports with a `+` sign are refused (`ppp` parses ports with `u16::from_str`, which takes
//!   `+80`);
//! - v2 LOCAL is answered before `ppp` sees it, since the spec says to ignore the family and
//!   address block of a LOCAL header, which `ppp` checks;
//! - v2 family/protocol bytes other than the ones the spec defines are refused, and of those only
//!   TCP over IPv4 or IPv6 (or UNSPEC or a UNIX stream, taken as [`ProxiedAddress::Local`]) is
//!   accepted.

use std::io;
use std::net::{SocketAddr, SocketAddrV4, SocketAddrV6};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// The v2 signature; also the number of bytes read first, to tell v1 from v2.
const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// How every v1 header starts.
const V1_PREFIX: &[u8] = b"PROXY ";
/// The longest v1 header, CRLF included.
const V1_MAX_LEN: usize = 107;
/// The fixed part of a v2 header: signature, version/command, family/protocol, length.
const V2_FIXED_LEN: usize = 16;
/// The most address and TLV bytes a v2 header may announce here.
const V2_MAX_PAYLOAD: usize = 536;

/// What the PROXY header says about the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxiedAddress {
    /// The real client and the address it connected to.
    Proxied { client: SocketAddr, destination: SocketAddr },
    /// v1 "PROXY UNKNOWN" or v2 LOCAL command (health checks from the proxy itself): keep the
    /// socket's own peer address.
    Local,
}

/// Why no PROXY header could be read; the connection is to be closed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyHeaderError {
    /// Reading from the socket failed.
    #[error("reading the PROXY header: {0}")]
    Io(#[from] io::Error),
    /// No complete header arrived within the deadline.
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    /// The bytes are not a valid PROXY header, or the peer closed the connection inside it.
    #[error("invalid PROXY header: {0}")]
    Invalid(&'static str),
    /// v1: no CRLF within 107 bytes (`limit` 107); v2: more than 536 bytes of addresses and
    /// TLVs announced after the 16 fixed bytes (`limit` 536).
    #[error("too long a PROXY v{version} header (limit {limit} bytes)")]
    TooLong { version: u8, limit: usize },
}

/// Reads one PROXY protocol header (v1 or v2, auto-detected from the first bytes) from `stream`,
/// taking no byte beyond it, within `deadline`.
pub async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
    deadline: Duration,
) -> Result<ProxiedAddress, ProxyHeaderError> {
    match tokio::time::timeout(deadline, read_any(stream)).await {
        Ok(result) => result,
        Err(_elapsed) => Err(ProxyHeaderError::Timeout(deadline)),
    }
}

async fn read_any<S: AsyncRead + Unpin>(stream: &mut S) -> Result<ProxiedAddress, ProxyHeaderError> {
    let mut start = [0u8; V2_SIGNATURE.len()];
    fill(stream, &mut start).await?;
    if start == V2_SIGNATURE {
        read_v2(stream).await
    } else if start.starts_with(V1_PREFIX) {
        read_v1(stream, start).await
    } else {
        Err(ProxyHeaderError::Invalid("not a PROXY protocol header"))
    }
}

/// `read_exact`, with an early end of stream reported as an invalid header.
async fn fill<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<(), ProxyHeaderError> {
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::UnexpectedEof => {
            Err(ProxyHeaderError::Invalid("the connection closed inside the PROXY header"))
        }
        Err(error) => Err(ProxyHeaderError::Io(error)),
    }
}

async fn read_v1<S: AsyncRead + Unpin>(
    stream: &mut S,
    start: [u8; V2_SIGNATURE.len()],
) -> Result<ProxiedAddress, ProxyHeaderError> {
    let mut line = [0u8; V1_MAX_LEN];
    line[..start.len()].copy_from_slice(&start);
    let mut len = start.len();
    loop {
        let filled = &line[..len];
        let body = filled.strip_suffix(b"\r\n").or_else(|| filled.strip_suffix(b"\r")).unwrap_or(filled);
        if body.iter().any(|&b| b == b'\r' || b == b'\n') {
            return Err(ProxyHeaderError::Invalid("stray CR or LF in a PROXY v1 header"));
        }
        if filled.ends_with(b"\r\n") {
            return parse_v1(filled);
        }
        // The header can end no sooner than after "\r\n", or after "\n" once a CR is in: reading
        // that many bytes never takes one beyond the CRLF.
        let want = if filled.ends_with(b"\r") { 1 } else { 2 };
        let Some(next) = line.get_mut(len..len + want) else {
            return Err(ProxyHeaderError::TooLong { version: 1, limit: V1_MAX_LEN });
        };
        fill(stream, next).await?;
        len += want;
    }
}

/// Parses a complete v1 line, CRLF included.
fn parse_v1(header: &[u8]) -> Result<ProxiedAddress, ProxyHeaderError> {
    use ppp::v1::{Addresses, BinaryParseError, ParseError};

    // Anything may follow UNKNOWN up to the CRLF, and is to be ignored.
    if let Some(rest) = header.strip_prefix(b"PROXY UNKNOWN") {
        if rest.starts_with(b" ") || rest == b"\r\n" {
            return Ok(ProxiedAddress::Local);
        }
    }
    // Only a port could carry a sign that `ppp` (`u16::from_str`) lets through.
    if header.contains(&b'+') {
        return Err(ProxyHeaderError::Invalid("signed port in a PROXY v1 header"));
    }
    let parsed = ppp::v1::Header::try_from(header).map_err(|error| {
        ProxyHeaderError::Invalid(match error {
            BinaryParseError::InvalidUtf8(_) => "PROXY v1 header is not text",
            BinaryParseError::Parse(error) => match error {
                ParseError::HeaderTooLong => {
                    return ProxyHeaderError::TooLong { version: 1, limit: V1_MAX_LEN }
                }
                ParseError::InvalidPrefix | ParseError::MissingPrefix => {
                    "PROXY v1 header does not start with \"PROXY \""
                }
                ParseError::InvalidProtocol | ParseError::MissingProtocol => {
                    "PROXY v1 protocol is not TCP4, TCP6 or UNKNOWN"
                }
                ParseError::InvalidSourceAddress(_) | ParseError::MissingSourceAddress => {
                    "bad source address for the family in a PROXY v1 header"
                }
                ParseError::InvalidDestinationAddress(_) | ParseError::MissingDestinationAddress => {
                    "bad destination address for the family in a PROXY v1 header"
                }
                ParseError::InvalidSourcePort(_) | ParseError::MissingSourcePort => {
                    "bad source port in a PROXY v1 header"
                }
                ParseError::InvalidDestinationPort(_) | ParseError::MissingDestinationPort => {
                    "bad destination port in a PROXY v1 header"
                }
                ParseError::Partial | ParseError::MissingNewLine | ParseError::InvalidSuffix => {
                    "unexpected fields at the end of a PROXY v1 header"
                }
            },
        })
    })?;
    Ok(match parsed.addresses {
        Addresses::Tcp4(a) => ProxiedAddress::Proxied {
            client: SocketAddrV4::new(a.source_address, a.source_port).into(),
            destination: SocketAddrV4::new(a.destination_address, a.destination_port).into(),
        },
        Addresses::Tcp6(a) => ProxiedAddress::Proxied {
            client: SocketAddrV6::new(a.source_address, a.source_port, 0, 0).into(),
            destination: SocketAddrV6::new(a.destination_address, a.destination_port, 0, 0).into(),
        },
        Addresses::Unknown => ProxiedAddress::Local,
    })
}

async fn read_v2<S: AsyncRead + Unpin>(stream: &mut S) -> Result<ProxiedAddress, ProxyHeaderError> {
    use ppp::v2::{Addresses, ParseError};

    let mut header = [0u8; V2_FIXED_LEN + V2_MAX_PAYLOAD];
    header[..V2_SIGNATURE.len()].copy_from_slice(&V2_SIGNATURE);
    let mut fixed = [0u8; V2_FIXED_LEN - V2_SIGNATURE.len()];
    fill(stream, &mut fixed).await?;
    header[V2_SIGNATURE.len()..V2_FIXED_LEN].copy_from_slice(&fixed);
    let [version_command, family_protocol, len_hi, len_lo] = fixed;

    if version_command >> 4 != 2 {
        return Err(ProxyHeaderError::Invalid("PROXY v2 signature with a version other than 2"));
    }
    let local = match version_command & 0x0f {
        0 => true,
        1 => false,
        _ => return Err(ProxyHeaderError::Invalid("unknown PROXY v2 command")),
    };
    let length = usize::from(u16::from_be_bytes([len_hi, len_lo]));
    if length > V2_MAX_PAYLOAD {
        return Err(ProxyHeaderError::TooLong { version: 2, limit: V2_MAX_PAYLOAD });
    }
    let end = V2_FIXED_LEN + length;
    let Some(payload) = header.get_mut(V2_FIXED_LEN..end) else {
        return Err(ProxyHeaderError::TooLong { version: 2, limit: V2_MAX_PAYLOAD });
    };
    fill(stream, payload).await?;

    // LOCAL: "the receiver must accept this connection as valid and must use the real connection
    // endpoints and discard the protocol block including the family which is ignored".
    if local {
        return Ok(ProxiedAddress::Local);
    }
    match family_protocol {
        // UNSPEC: the proxy could not tell; keep the socket's own peer address.
        0x00 => return Ok(ProxiedAddress::Local),
        // TCP over IPv4, TCP over IPv6.
        0x11 | 0x21 => {}
        // UNIX stream: a proxy whose own client came over a Unix socket has no address to
        // name; keep the socket's peer address, as for UNSPEC.
        0x31 => return Ok(ProxiedAddress::Local),
        // UDP over IPv4/IPv6, UNIX datagram: not what a stream listener serves.
        0x12 | 0x22 | 0x32 => {
            return Err(ProxyHeaderError::Invalid("PROXY v2 header for a non-TCP connection"))
        }
        _ => return Err(ProxyHeaderError::Invalid("undefined family or protocol in a PROXY v2 header")),
    }
    let Some(bytes) = header.get(..end) else {
        return Err(ProxyHeaderError::Invalid("malformed PROXY v2 header"));
    };
    // TLVs are not looked at (`ppp` only walks them when asked).
    let parsed = ppp::v2::Header::try_from(bytes).map_err(|error| {
        ProxyHeaderError::Invalid(match error {
            ParseError::InvalidAddresses(..) => "PROXY v2 length too short for its addresses",
            _ => "malformed PROXY v2 header",
        })
    })?;
    match parsed.addresses {
        Addresses::IPv4(a) => Ok(ProxiedAddress::Proxied {
            client: SocketAddrV4::new(a.source_address, a.source_port).into(),
            destination: SocketAddrV4::new(a.destination_address, a.destination_port).into(),
        }),
        Addresses::IPv6(a) => Ok(ProxiedAddress::Proxied {
            client: SocketAddrV6::new(a.source_address, a.source_port, 0, 0).into(),
            destination: SocketAddrV6::new(a.destination_address, a.destination_port, 0, 0).into(),
        }),
        Addresses::Unspecified | Addresses::Unix(_) => {
            Err(ProxyHeaderError::Invalid("PROXY v2 header for a non-TCP connection"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    const DEADLINE: Duration = Duration::from_secs(5);
    /// The first bytes of a TLS ClientHello record.
    const CLIENT_HELLO: &[u8] = &[0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03];

    /// Reads a header from `input` and returns the result and the bytes left unread.
    async fn read(input: &[u8]) -> (Result<ProxiedAddress, ProxyHeaderError>, Vec<u8>) {
        let mut reader = input;
        let result = read_header(&mut reader, DEADLINE).await;
        (result, reader.to_vec())
    }

    fn proxied(client: &str, destination: &str) -> ProxiedAddress {
        ProxiedAddress::Proxied {
            client: client.parse().expect("test address"),
            destination: destination.parse().expect("test address"),
        }
    }

    fn v2(version_command: u8, family_protocol: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = V2_SIGNATURE.to_vec();
        bytes.push(version_command);
        bytes.push(family_protocol);
        let len = u16::try_from(payload.len()).expect("test payload length");
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend_from_slice(payload);
        bytes
    }

    fn v2_ipv4_payload() -> Vec<u8> {
        let mut payload = vec![192, 0, 2, 10, 198, 51, 100, 1];
        payload.extend_from_slice(&51234u16.to_be_bytes());
        payload.extend_from_slice(&443u16.to_be_bytes());
        payload
    }

    fn v2_ipv6_payload() -> Vec<u8> {
        let client: std::net::Ipv6Addr = "2001:db8::1".parse().expect("test address");
        let destination: std::net::Ipv6Addr = "2001:db8::2:3".parse().expect("test address");
        let mut payload = client.octets().to_vec();
        payload.extend_from_slice(&destination.octets());
        payload.extend_from_slice(&40000u16.to_be_bytes());
        payload.extend_from_slice(&8443u16.to_be_bytes());
        payload
    }

    fn with_hello(header: &[u8]) -> Vec<u8> {
        let mut bytes = header.to_vec();
        bytes.extend_from_slice(CLIENT_HELLO);
        bytes
    }

    #[tokio::test]
    async fn v1_tcp4() {
        let (result, rest) = read(&with_hello(b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\r\n")).await;
        assert_eq!(result.expect("valid"), proxied("192.0.2.10:51234", "198.51.100.1:443"));
        assert_eq!(rest, CLIENT_HELLO);
    }

    #[tokio::test]
    async fn v1_tcp6() {
        let (result, rest) = read(&with_hello(b"PROXY TCP6 2001:db8::1 2001:db8::2:3 40000 8443\r\n")).await;
        assert_eq!(result.expect("valid"), proxied("[2001:db8::1]:40000", "[2001:db8::2:3]:8443"));
        assert_eq!(rest, CLIENT_HELLO);
    }

    #[tokio::test]
    async fn v1_port_bounds() {
        let (result, _) = read(b"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n").await;
        assert_eq!(result.expect("valid"), proxied("0.0.0.0:0", "255.255.255.255:65535"));
    }

    #[tokio::test]
    async fn v1_longest_tcp6() {
        let header = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
        let (result, rest) = read(&with_hello(header)).await;
        assert!(matches!(result, Ok(ProxiedAddress::Proxied { .. })), "{result:?}");
        assert_eq!(rest, CLIENT_HELLO);
    }

    #[tokio::test]
    async fn v1_unknown_is_local() {
        for header in [
            &b"PROXY UNKNOWN\r\n"[..],
            b"PROXY UNKNOWN 192.0.2.10 198.51.100.1 51234 443\r\n",
            b"PROXY UNKNOWN a b c d e f g h\r\n",
        ] {
            let (result, rest) = read(&with_hello(header)).await;
            assert_eq!(result.expect("valid"), ProxiedAddress::Local);
            assert_eq!(rest, CLIENT_HELLO);
        }
    }

    #[tokio::test]
    async fn v1_at_most_107_bytes() {
        let mut header = b"PROXY UNKNOWN ".to_vec();
        header.resize(V1_MAX_LEN - 2, b'x');
        header.extend_from_slice(b"\r\n");
        assert_eq!(header.len(), 107);
        let (result, rest) = read(&with_hello(&header)).await;
        assert_eq!(result.expect("107 bytes is the limit"), ProxiedAddress::Local);
        assert_eq!(rest, CLIENT_HELLO);

        let mut header = b"PROXY UNKNOWN ".to_vec();
        header.resize(V1_MAX_LEN - 1, b'x');
        header.extend_from_slice(b"\r\n");
        let (result, _) = read(&header).await;
        assert!(matches!(result, Err(ProxyHeaderError::TooLong { version: 1, limit: 107 })), "{result:?}");
    }

    #[tokio::test]
    async fn v1_without_crlf_is_too_long() {
        let mut header = b"PROXY TCP4 ".to_vec();
        header.resize(300, b'1');
        let (result, rest) = read(&header).await;
        assert!(matches!(result, Err(ProxyHeaderError::TooLong { version: 1, .. })), "{result:?}");
        // It gave up at the limit rather than reading on.
        assert_eq!(rest.len(), 300 - V1_MAX_LEN + 1);
    }

    #[tokio::test]
    async fn v1_bad_lines() {
        for header in [
            &b"PROXY TCP4 192.0.2 198.51.100.1 51234 443\r\n"[..],
            b"PROXY TCP4 192.0.2.300 198.51.100.1 51234 443\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 443 extra\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 51234\r\n",
            b"PROXY TCP4  192.0.2.10 198.51.100.1 51234 443\r\n",
            b"PROXY TCP4 2001:db8::1 2001:db8::2 51234 443\r\n",
            b"PROXY TCP6 192.0.2.10 198.51.100.1 51234 443\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 70000 443\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 65536\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 +51234 443\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 +443\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 -1 443\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 0x50 443\r\n",
            b"PROXY TCP5 192.0.2.10 198.51.100.1 51234 443\r\n",
            b"PROXY tcp4 192.0.2.10 198.51.100.1 51234 443\r\n",
            b"PROXY UNKNOWNX\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\n\r\n",
            b"PROXY TCP4 192.0.2.10\r198.51.100.1 51234 443\r\n",
            b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 44\xff\r\n",
            b"PROXY \r\n\r\n\r\n\r\n",
        ] {
            let (result, _) = read(&with_hello(header)).await;
            assert!(
                matches!(result, Err(ProxyHeaderError::Invalid(_))),
                "{:?}: {result:?}",
                String::from_utf8_lossy(header)
            );
        }
    }

    #[tokio::test]
    async fn v2_proxy_ipv4() {
        let (result, rest) = read(&with_hello(&v2(0x21, 0x11, &v2_ipv4_payload()))).await;
        assert_eq!(result.expect("valid"), proxied("192.0.2.10:51234", "198.51.100.1:443"));
        assert_eq!(rest, CLIENT_HELLO);
    }

    #[tokio::test]
    async fn v2_proxy_ipv6() {
        let (result, rest) = read(&with_hello(&v2(0x21, 0x21, &v2_ipv6_payload()))).await;
        assert_eq!(result.expect("valid"), proxied("[2001:db8::1]:40000", "[2001:db8::2:3]:8443"));
        assert_eq!(rest, CLIENT_HELLO);
    }

    #[tokio::test]
    async fn v2_local_is_local() {
        for header in [
            v2(0x20, 0x00, &[]),
            v2(0x20, 0x11, &v2_ipv4_payload()),
            // The family and address block of a LOCAL header are ignored.
            v2(0x20, 0x11, &[]),
            v2(0x20, 0xff, &[1, 2, 3]),
        ] {
            let (result, rest) = read(&with_hello(&header)).await;
            assert_eq!(result.expect("valid"), ProxiedAddress::Local);
            assert_eq!(rest, CLIENT_HELLO);
        }
    }

    #[tokio::test]
    async fn v2_proxy_unspec_is_local() {
        let (result, rest) = read(&with_hello(&v2(0x21, 0x00, &[]))).await;
        assert_eq!(result.expect("valid"), ProxiedAddress::Local);
        assert_eq!(rest, CLIENT_HELLO);
    }

    #[tokio::test]
    async fn v2_proxy_over_a_unix_stream_is_local() {
        let (result, rest) = read(&with_hello(&v2(0x21, 0x31, &[0u8; 216]))).await;
        assert_eq!(result.expect("valid"), ProxiedAddress::Local);
        assert_eq!(rest, CLIENT_HELLO);
    }

    #[tokio::test]
    async fn v2_tlvs_are_ignored() {
        let mut payload = v2_ipv4_payload();
        // PP2_TYPE_AUTHORITY "example.com", PP2_TYPE_NOOP, PP2_TYPE_UNIQUE_ID.
        payload.extend_from_slice(&[0x02, 0x00, 0x0b]);
        payload.extend_from_slice(b"example.com");
        payload.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]);
        payload.extend_from_slice(&[0x05, 0x00, 0x04, 1, 2, 3, 4]);
        let (result, rest) = read(&with_hello(&v2(0x21, 0x11, &payload))).await;
        assert_eq!(result.expect("valid"), proxied("192.0.2.10:51234", "198.51.100.1:443"));
        assert_eq!(rest, CLIENT_HELLO);

        let mut payload = v2_ipv6_payload();
        payload.resize(V2_MAX_PAYLOAD, 0);
        let (result, rest) = read(&with_hello(&v2(0x21, 0x21, &payload))).await;
        assert_eq!(
            result.expect("536 bytes is the limit"),
            proxied("[2001:db8::1]:40000", "[2001:db8::2:3]:8443")
        );
        assert_eq!(rest, CLIENT_HELLO);
    }

    #[tokio::test]
    async fn v2_bad_headers() {
        let ipv4 = v2_ipv4_payload();
        let unix = [0u8; 216];
        for header in [
            // Version 1 in the version nibble, version 3.
            v2(0x11, 0x11, &ipv4),
            v2(0x31, 0x11, &ipv4),
            // Command 2.
            v2(0x22, 0x11, &ipv4),
            // UDP over IPv4 and IPv6, UNIX datagram.
            v2(0x21, 0x12, &ipv4),
            v2(0x21, 0x22, &v2_ipv6_payload()),
            v2(0x21, 0x32, &unix),
            // Undefined family/protocol combinations.
            v2(0x21, 0x10, &ipv4),
            v2(0x21, 0x13, &ipv4),
            v2(0x21, 0x41, &ipv4),
            // Too short for the family's addresses.
            v2(0x21, 0x11, &ipv4[..8]),
            v2(0x21, 0x21, &ipv4),
        ] {
            let (result, _) = read(&with_hello(&header)).await;
            assert!(matches!(result, Err(ProxyHeaderError::Invalid(_))), "{header:x?}: {result:?}");
        }
    }

    #[tokio::test]
    async fn v2_too_long() {
        let mut header = v2(0x21, 0x11, &[]);
        header[14..16].copy_from_slice(&537u16.to_be_bytes());
        header.extend_from_slice(&[0; 600]);
        let (result, _) = read(&header).await;
        assert!(matches!(result, Err(ProxyHeaderError::TooLong { version: 2, limit: 536 })), "{result:?}");

        header[14..16].copy_from_slice(&u16::MAX.to_be_bytes());
        let (result, _) = read(&header).await;
        assert!(matches!(result, Err(ProxyHeaderError::TooLong { version: 2, .. })), "{result:?}");
    }

    #[tokio::test]
    async fn v2_truncated() {
        let header = v2(0x21, 0x21, &v2_ipv6_payload());
        for cut in [1, 5, 11, 12, 13, 15, 16, 20, header.len() - 1] {
            let (result, _) = read(&header[..cut]).await;
            assert!(matches!(result, Err(ProxyHeaderError::Invalid(_))), "cut at {cut}: {result:?}");
        }
    }

    #[tokio::test]
    async fn garbage_is_refused() {
        for input in [
            &b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\n",
            CLIENT_HELLO,
            b"",
            b"PROXY",
            b"\r\n\r\n\0\r\nQUIX\n\x21\x11\x00\x0c",
            b"proxy tcp4 192.0.2.10 198.51.100.1 51234 443\r\n",
            b"PROXYTCP4 192.0.2.10 198.51.100.1 51234 443\r\n",
        ] {
            let (result, _) = read(input).await;
            assert!(matches!(result, Err(ProxyHeaderError::Invalid(_))), "{input:x?}: {result:?}");
        }
        // Pseudo-random bytes (xorshift), reproducible.
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..500 {
            let input: Vec<u8> = (0..64)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    state.to_le_bytes()[0]
                })
                .collect();
            let (result, _) = read(&input).await;
            assert!(matches!(result, Err(ProxyHeaderError::Invalid(_))), "{input:x?}: {result:?}");
        }
    }

    /// Over a real stream, written a byte at a time: the byte after the header is still there.
    #[tokio::test]
    async fn no_over_read_on_a_stream() {
        for header in [
            b"PROXY TCP4 192.0.2.10 198.51.100.1 51234 443\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(0x21, 0x11, &v2_ipv4_payload()),
            v2(0x20, 0x00, &[]),
        ] {
            let (mut client, mut server) = tokio::io::duplex(1);
            let sent = with_hello(&header);
            let writer = tokio::spawn(async move {
                client.write_all(&sent).await?;
                // Keep the stream open until the reader is done with it.
                let mut end = [0u8; 1];
                let _ = client.read(&mut end).await;
                io::Result::Ok(())
            });
            let result = read_header(&mut server, DEADLINE).await;
            assert!(result.is_ok(), "{result:?}");
            let mut rest = vec![0u8; CLIENT_HELLO.len()];
            server.read_exact(&mut rest).await.expect("the ClientHello");
            assert_eq!(rest, CLIENT_HELLO);
            drop(server);
            writer.await.expect("writer task").expect("writer");
        }
    }

    #[tokio::test]
    async fn silent_peer_times_out() {
        let (_client, mut server) = tokio::io::duplex(64);
        let deadline = Duration::from_millis(100);
        let started = std::time::Instant::now();
        let result = read_header(&mut server, deadline).await;
        assert!(matches!(result, Err(ProxyHeaderError::Timeout(d)) if d == deadline), "{result:?}");
        assert!(started.elapsed() >= deadline);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn stalled_header_times_out() {
        for partial in [b"PROXY TCP4 192.0.2.10 ".to_vec(), v2(0x21, 0x11, &v2_ipv4_payload())[..20].to_vec()]
        {
            let (mut client, mut server) = tokio::io::duplex(256);
            client.write_all(&partial).await.expect("write");
            let result = read_header(&mut server, Duration::from_millis(100)).await;
            assert!(matches!(result, Err(ProxyHeaderError::Timeout(_))), "{result:?}");
        }
    }

    #[test]
    fn errors_display_lowercase() {
        let errors = [
            ProxyHeaderError::Io(io::Error::other("boom")),
            ProxyHeaderError::Timeout(Duration::from_millis(100)),
            ProxyHeaderError::Invalid("not a PROXY protocol header"),
            ProxyHeaderError::TooLong { version: 1, limit: 107 },
        ];
        for error in errors {
            let text = error.to_string();
            assert!(text.starts_with(|c: char| !c.is_ascii_uppercase()), "{text}");
        }
    }
}
