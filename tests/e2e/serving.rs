//! Requests over TLS, HTTP/1.1 and h2: static files from the edge, scripts through the pool.

use crate::support::client::{Client, Proto};
use crate::support::{payload, Site};

const MIB: usize = 1024 * 1024;

const ECHO_SCRIPT: &str =
    "#!/bin/sh\nprintf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\nexec cat\n";

#[test]
fn index_page_over_h1_and_h2() {
    let weir = Site::new().start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for proto in [Proto::H1, Proto::H2] {
        let reply = client.request(proto, "GET", "/", Vec::new()).unwrap();
        assert_eq!(reply.status, 200, "{proto:?}");
        assert_eq!(reply.text(), "<h1>index</h1>\n");
        assert_eq!(reply.header("content-type"), Some("text/html"));
        assert_eq!(reply.header("server"), Some("weir"));
        let expected = if proto == Proto::H2 { http::Version::HTTP_2 } else { http::Version::HTTP_11 };
        assert_eq!(reply.version, expected);
    }
}

#[test]
fn a_mebibyte_file_byte_for_byte_over_h1_and_h2() {
    let site = Site::new();
    let data = payload(MIB);
    site.doc("big.bin", &data);
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for proto in [Proto::H1, Proto::H2] {
        let reply = client.request(proto, "GET", "/big.bin", Vec::new()).unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(reply.body.len(), MIB, "{proto:?}");
        assert!(reply.body == data, "{proto:?}: body differs");
    }
    let head = client.request(Proto::H1, "HEAD", "/big.bin", Vec::new()).unwrap();
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1048576"));
    assert!(head.body.is_empty());
}

#[test]
fn missing_files_and_escapes_are_404_and_leak_nothing() {
    let site = Site::new();
    std::fs::write(site.path().join("secret.txt"), "outside the root").unwrap();
    std::os::unix::fs::symlink(site.path().join("secret.txt"), site.path().join("htdocs/link.txt")).unwrap();
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    for path in
        ["/nope.html", "/../secret.txt", "/%2e%2e/secret.txt", "/..%2fsecret.txt", "/link.txt", "/x%00.html"]
    {
        let reply = client.get(path).unwrap();
        assert!(
            reply.status == 404 || reply.status == 403 || reply.status == 400,
            "{path}: {}",
            reply.status
        );
        assert!(!reply.text().contains("outside the root"), "{path} leaked");
    }
}

#[test]
fn cgi_output_and_a_mebibyte_post_through_a_worker() {
    let site = Site::new();
    site.script(
        "env",
        "#!/bin/sh\nprintf 'Status: 201 Made\\r\\nContent-Type: text/plain\\r\\nX-Script: yes\\r\\n\\r\\n'\n\
         echo \"METHOD=$REQUEST_METHOD\"\necho \"QUERY=$QUERY_STRING\"\necho \"SCRIPT=$SCRIPT_NAME\"\n\
         echo \"INFO=$PATH_INFO\"\necho \"LENGTH=$CONTENT_LENGTH\"\necho \"TYPE=$CONTENT_TYPE\"\necho \"AGENT=$HTTP_X_TEST\"\n\
         echo \"PID=$$ PARENT=$PPID\"\n",
    );
    site.script("echo", ECHO_SCRIPT);
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.request(Proto::H1, "GET", "/cgi-bin/env/extra/path?a=1&b=2", Vec::new()).unwrap();
    assert_eq!(reply.status, 201, "{}", reply.text());
    assert_eq!(reply.header("x-script"), Some("yes"));
    let text = reply.text();
    for expected in ["METHOD=GET", "QUERY=a=1&b=2", "SCRIPT=/cgi-bin/env", "INFO=/extra/path", "LENGTH=\n"] {
        assert!(text.contains(expected), "{expected:?} missing from\n{text}");
    }
    // The script ran under a worker: its parent is one of the pool master's children.
    let parent: i32 = text.split("PARENT=").nth(1).unwrap().trim().parse().unwrap();
    let proc = crate::support::procs::read(parent).expect("the worker is alive");
    assert_eq!(proc.cmdline, "weir: worker");

    let data = payload(MIB);
    for proto in [Proto::H1, Proto::H2] {
        let reply = client.request(proto, "POST", "/cgi-bin/echo", data.clone()).unwrap();
        assert_eq!(reply.status, 200, "{proto:?}: {}", reply.text());
        assert_eq!(reply.body.len(), MIB, "{proto:?}");
        assert!(reply.body == data, "{proto:?}: echoed body differs");
    }
}

#[test]
fn scripts_that_are_missing_or_not_executable_never_run() {
    let site = Site::new();
    std::fs::write(site.path().join("cgi-bin/plain"), "#!/bin/sh\necho ran > /tmp/should-not-exist\n")
        .unwrap();
    let weir = site.start("");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/cgi-bin/plain").unwrap().status, 403);
    assert_eq!(client.get("/cgi-bin/missing").unwrap().status, 404);
    assert_eq!(client.get("/cgi-bin/..%2f..%2fbin%2fsh").unwrap().status, 404);
}
