//! Static files served by the edge: validators, conditional and range requests, and escapes.

use crate::support::client::{Client, Proto};
use crate::support::{h2, payload, Site};

#[test]
fn conditional_requests_and_ranges() {
    let site = Site::new();
    let data = payload(10_000);
    site.doc("data.bin", &data);
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let full = client.get("/data.bin").unwrap();
    assert_eq!(full.status, 200);
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    let etag = full.header("etag").expect("ETag").to_string();
    let modified = full.header("last-modified").expect("Last-Modified").to_string();

    let get_with = |pairs: &[(&str, &str)]| {
        let mut request = String::from("GET /data.bin HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
        for (name, value) in pairs {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        let raw = client.raw(request.as_bytes()).unwrap();
        let split = raw.windows(4).position(|w| w == b"\r\n\r\n").expect("a response head") + 4;
        let head = String::from_utf8_lossy(&raw[..split]).to_string();
        let status: u16 = head[9..12].parse().unwrap();
        (status, head.to_ascii_lowercase(), raw[split..].to_vec())
    };

    let (status, head, body) = get_with(&[("If-None-Match", &etag)]);
    assert_eq!(status, 304, "{head}");
    assert!(body.is_empty());
    assert!(head.contains(&format!("etag: {}", etag.to_ascii_lowercase())), "{head}");
    assert_eq!(get_with(&[("If-None-Match", "\"something-else\"")]).0, 200);
    assert_eq!(get_with(&[("If-Modified-Since", &modified)]).0, 304);
    assert_eq!(get_with(&[("If-Modified-Since", "Thu, 01 Jan 2015 00:00:00 GMT")]).0, 200);
    // If-None-Match takes precedence over If-Modified-Since.
    assert_eq!(get_with(&[("If-None-Match", "\"x\""), ("If-Modified-Since", &modified)]).0, 200);

    let (status, head, body) = get_with(&[("Range", "bytes=100-199")]);
    assert_eq!(status, 206, "{head}");
    assert!(head.contains("content-range: bytes 100-199/10000"), "{head}");
    assert_eq!(body, &data[100..200]);
    let (status, _, body) = get_with(&[("Range", "bytes=-10")]);
    assert_eq!(status, 206);
    assert_eq!(body, &data[9990..]);
    let (status, head, _) = get_with(&[("Range", "bytes=20000-")]);
    assert_eq!(status, 416, "{head}");
    assert!(head.contains("content-range: bytes */10000"), "{head}");
    let (status, _, body) = get_with(&[("Range", "bytes=0-9"), ("If-Range", "\"stale\"")]);
    assert_eq!(status, 200);
    assert_eq!(body.len(), data.len());
    let (status, _, body) = get_with(&[("Range", "bytes=0-9"), ("If-Range", &etag)]);
    assert_eq!((status, body.as_slice()), (206, &data[..10]));

    let head = client.request(Proto::H2, "HEAD", "/data.bin", Vec::new()).unwrap();
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(head.header("content-length"), Some("10000"));
}

#[test]
fn directory_index_redirect_and_no_listing() {
    let site = Site::new();
    site.doc("docs/index.html", b"docs index\n");
    site.doc("empty/readme.txt", b"x");
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/docs/").unwrap().text(), "docs index\n");
    let redirect = client.get("/docs").unwrap();
    assert_eq!(redirect.status, 301);
    assert_eq!(redirect.header("location"), Some("/docs/"));
    let listing = client.get("/empty/").unwrap();
    assert_eq!(listing.status, 403);
    assert!(!listing.text().contains("readme"));
    assert_eq!(client.get("/readme.css").unwrap().status, 404);
    assert_eq!(client.get("/").unwrap().header("content-type"), Some("text/html"));
}

#[test]
fn escape_attempts_never_leave_the_document_root() {
    let site = Site::new();
    let marker = "SECRET-OUTSIDE-THE-ROOT";
    std::fs::write(site.path().join("secret.txt"), marker).unwrap();
    std::fs::create_dir(site.path().join("outside")).unwrap();
    std::fs::write(site.path().join("outside/secret.txt"), marker).unwrap();
    site.doc("sub/inside.txt", b"inside");
    std::os::unix::fs::symlink(site.path().join("secret.txt"), site.path().join("htdocs/link.txt")).unwrap();
    std::os::unix::fs::symlink(site.path().join("outside"), site.path().join("htdocs/linkdir")).unwrap();
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let long = format!("/{}", "a/".repeat(3000));
    let attempts = [
        "/../secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/.%2e/secret.txt",
        "/%2e./secret.txt",
        "/sub/../../secret.txt",
        "/sub/%2e%2e/%2e%2e/secret.txt",
        "/%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
        "/..\\secret.txt",
        "/link.txt",
        "/linkdir/secret.txt",
        "/linkdir/",
        "/x%00.html",
        "/index.html%00.txt",
        "//etc/passwd",
        "/%252e%252e/secret.txt",
        "/....//secret.txt",
        "/%c0%ae%c0%ae/secret.txt",
        "/..;/secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/%2fetc%2fpasswd",
        "/etc/passwd",
        "/./../secret.txt",
        "https://localhost/../secret.txt",
        long.as_str(),
    ];
    assert!(attempts.len() >= 20);
    for target in attempts {
        let request = format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let raw = client.raw(request.as_bytes()).unwrap();
        let text = String::from_utf8_lossy(&raw);
        let status: u16 = text.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
        assert!([400, 403, 404, 414].contains(&status), "{target}: status {status}\n{text}");
        assert!(!text.contains(marker) && !text.contains("root:x:0:0"), "{target} leaked: {text}");
    }
    // The same targets as h2 `:path`s. One that does not start with '/' (the absolute form) is
    // no `:path` at all: the h2 layer resets it as malformed.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    for target in attempts {
        let outcome = runtime.block_on(h2::exchange(&weir, &h2::get(target), None));
        let text = outcome.text();
        let refused = match outcome.status {
            Some(status) => [400, 403, 404, 414].contains(&status),
            None => !target.starts_with('/') && outcome.reset == Some(h2::PROTOCOL_ERROR),
        };
        assert!(refused, "h2 {target}: {:?} {}\n{text}", outcome.status, outcome.frames);
        assert!(!text.contains(marker) && !text.contains("root:x:0:0"), "h2 {target} leaked: {text}");
    }
    // The same files are reachable from inside, so the refusals above are about the path.
    assert_eq!(client.get("/sub/inside.txt").unwrap().text(), "inside");
}
