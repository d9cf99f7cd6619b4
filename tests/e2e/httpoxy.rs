//! httpoxy: a client's `Proxy:` request header must not become a script's `HTTP_PROXY`, the
//! variable HTTP client libraries read as their outgoing proxy (Apache drops it since 2.4.25), nor
//! reach a Handler, over HTTP/1.1 and h2 alike.

use std::collections::HashMap;
use std::time::Duration;

use http_body_util::BodyExt;

use crate::support::client::Client;
use crate::support::{h2, Site, Weir};

/// Prints the CGI environment.
const ENV_SCRIPT: &str = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'\nenv\n";

const EVIL: &str = "http://evil:1";

/// `env` output as a map.
fn env_map(text: &str) -> HashMap<String, String> {
    text.lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// The script's environment and the Handler's view of `Proxy`, over HTTP/1.1.
fn over_h1(weir: &Weir) -> (String, String) {
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let ask = |path: &str| {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\nProxy: {EVIL}\r\nX-Marker: seen\r\nConnection: close\r\n\r\n"
        );
        let bytes = client.raw(request.as_bytes()).expect("exchange");
        let text = String::from_utf8_lossy(&bytes).into_owned();
        assert!(text.starts_with("HTTP/1.1 200"), "{path}: {text}");
        text.split_once("\r\n\r\n").map(|(_, body)| body.to_string()).unwrap_or_default()
    };
    (ask("/cgi-bin/env"), ask("/app/header?name=proxy"))
}

/// The same over h2.
fn over_h2(weir: &Weir) -> (String, String) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut answers = Vec::new();
        for path in ["/cgi-bin/env", "/app/header?name=proxy"] {
            let mut sender = h2::connect(weir).await;
            let (tx, rx) = tokio::sync::mpsc::channel(1);
            drop(tx);
            let request = http::Request::builder()
                .uri(format!("https://localhost{path}"))
                .header("proxy", EVIL)
                .header("x-marker", "seen")
                .body(h2::Fed(rx))
                .expect("request");
            let exchange = async {
                let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
                let status = response.status().as_u16();
                let body = response.into_body().collect().await.map_err(|e| e.to_string())?;
                Ok::<_, String>((status, String::from_utf8_lossy(&body.to_bytes()).into_owned()))
            };
            let (status, body) = tokio::time::timeout(Duration::from_secs(20), exchange)
                .await
                .expect("an answer in 20 s")
                .expect("h2 exchange");
            assert_eq!(status, 200, "{path}: {body}");
            answers.push(body);
        }
        (answers.remove(0), answers.remove(0))
    })
}

#[test]
fn a_proxy_request_header_never_becomes_http_proxy() {
    let site = Site::new().with_example("testapp");
    site.script("env", ENV_SCRIPT);
    let weir = site.start("");
    for (proto, (script, handler)) in [("HTTP/1.1", over_h1(&weir)), ("h2", over_h2(&weir))] {
        let env = env_map(&script);
        // Other request headers do arrive, so an absent HTTP_PROXY means a dropped one.
        assert_eq!(env.get("HTTP_X_MARKER").map(String::as_str), Some("seen"), "{proto}: {script}");
        assert!(!env.contains_key("HTTP_PROXY"), "{proto}: HTTP_PROXY reached the script:\n{script}");
        assert!(!script.contains("evil"), "{proto}: {script}");
        assert_eq!(handler, "-", "{proto}: the Handler saw Proxy: {handler}");
    }
}
