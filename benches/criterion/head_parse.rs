//! Request-head validation (`weir_edge::h1::head::parse`): the strict RFC 9112 reader every
//! HTTP/1.1 request passes through in the edge, including its second reading by httparse.
//!
//! Run: `cargo bench -p weir-edge --bench head_parse` (the heads below are typical of what
//! browsers, curl and load balancers send; the last two are rejected or incomplete).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use weir_edge::h1::head::{parse, Limits};

const CURL: &[u8] =
    b"GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n";

const BROWSER: &[u8] = b"GET /static/app.js?v=3 HTTP/1.1\r\n\
Host: appliance.example.net\r\n\
User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n\
Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n\
Accept-Language: en-US,en;q=0.5\r\n\
Accept-Encoding: gzip, deflate, br, zstd\r\n\
Referer: https://appliance.example.net/\r\n\
Connection: keep-alive\r\n\
Cookie: session=9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08; theme=dark\r\n\
Upgrade-Insecure-Requests: 1\r\n\
Sec-Fetch-Dest: document\r\n\
Sec-Fetch-Mode: navigate\r\n\
Sec-Fetch-Site: same-origin\r\n\
If-None-Match: \"5d8c72a5edda8d6a\"\r\n\
Priority: u=0, i\r\n\r\n";

const POST: &[u8] = b"POST /cgi-bin/hello HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1048576\r\nX-Forwarded-For: 192.0.2.7\r\n\r\n";

/// Well-formed but ambiguous (bare LF after a field): must be rejected.
const BARE_LF: &[u8] = b"GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n";

/// Half a head, as after the first read of a slow client.
const PARTIAL: &[u8] = b"GET /1k.bin HTTP/1.1\r\nHost: 127.0.0.1:8443\r\nUser-Agent: curl/7.88";

fn many_fields() -> Vec<u8> {
    let mut head = b"GET /api/v1/items?page=2 HTTP/1.1\r\nHost: api.example.net\r\n".to_vec();
    for i in 0..40 {
        head.extend_from_slice(
            format!("X-Custom-Field-{i}: value-{i}-abcdefghijklmnopqrstuvwxyz\r\n").as_bytes(),
        );
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn bench(c: &mut Criterion) {
    let limits = Limits::default();
    let many = many_fields();
    let cases: [(&str, &[u8]); 6] = [
        ("curl", CURL),
        ("browser", BROWSER),
        ("post", POST),
        ("40_fields", &many),
        ("reject_bare_lf", BARE_LF),
        ("incomplete", PARTIAL),
    ];
    let mut group = c.benchmark_group("head_parse");
    for (name, head) in cases {
        group.throughput(Throughput::Bytes(head.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), head, |b, head| {
            b.iter(|| {
                let _ = black_box(parse(black_box(head), &limits));
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
