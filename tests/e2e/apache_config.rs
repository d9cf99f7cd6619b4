//! Apache's configuration language as real sites write it: Define, ${VAR} (from Define and from
//! weir's environment), <IfDefine>, Include with globs; TLS cipher policy; refusals.

use std::process::Stdio;

use crate::support::client::Client;
use crate::support::{weir_command, Site};

#[test]
fn define_environment_variables_ifdefine_and_include_globs_shape_the_site() {
    let site = Site::new();
    let d = site.path().display().to_string();
    std::fs::create_dir_all(site.path().join("site/htdocs")).unwrap();
    std::fs::write(site.path().join("site/htdocs/index.html"), "from the defined root\n").unwrap();
    std::fs::create_dir_all(site.path().join("conf.d")).unwrap();
    // Read in sorted order: 10 defines what 20 uses.
    std::fs::write(site.path().join("conf.d/10-vars.conf"), "Define SITE_ROOT ${WEIR_TEST_BASE}/site\n")
        .unwrap();
    std::fs::write(
        site.path().join("conf.d/20-root.conf"),
        "<IfDefine USE_SITE>\nDocumentRoot ${SITE_ROOT}/htdocs\n</IfDefine>\n\
         <IfDefine !USE_SITE>\nDocumentRoot /nonexistent\n</IfDefine>\n",
    )
    .unwrap();
    std::fs::write(site.path().join("conf.d/ignored.txt"), "Frobnicate on\n").unwrap();
    let conf = site.config("").replace(&format!("DocumentRoot {d}/htdocs\n"), "")
        + "Define USE_SITE\nInclude conf.d/*.conf\nIncludeOptional nothing.d/*.conf\n\
           <IfDefine NEVER_DEFINED>\nFrobnicate on\n</IfDefine>\n";
    let weir = site.env("WEIR_TEST_BASE", &d).start_with(&conf);
    let reply = Client::new(weir.addr(), &weir.cert_pem).get("/").unwrap();
    assert_eq!(reply.status, 200, "{}", weir.logs());
    assert_eq!(reply.text(), "from the defined root\n");
}

#[test]
fn an_undefined_variable_is_kept_with_apaches_warning_and_errors_name_the_included_file() {
    let site = Site::new();
    let conf_path = site.path().join("weir.conf");
    std::fs::write(
        &conf_path,
        site.config("Define LOGS logs\nServerName ${WEIR_SURELY_UNSET_VAR}.example\n"),
    )
    .unwrap();
    let output = weir_command(&["configtest", "-f"], &conf_path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("AH00111: Config variable ${WEIR_SURELY_UNSET_VAR} is not defined"), "{stderr}");
    assert!(stderr.contains(&format!("of {}", conf_path.display())), "{stderr}");

    let included = site.path().join("bad.conf");
    std::fs::write(&included, "Define GOOD 1\n\nDefine bad:name 2\n<IfDefine>\n</IfDefine>\n").unwrap();
    std::fs::write(&conf_path, site.config("Include bad.conf\n")).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf_path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    let file = included.display();
    assert!(stderr.contains(&format!("line 3 of {file}: Define: invalid value 'bad:name'")), "{stderr}");
    assert!(stderr.contains(&format!("line 4 of {file}")) && stderr.contains("<IfDefine>"), "{stderr}");
}

const OPENSSL: &str = "/usr/bin/openssl";

/// The suite `openssl s_client` negotiates with weir when it offers `suites` in its own order
/// (`-ciphersuites` for TLS 1.3, `-cipher` for TLS 1.2); `None` when the handshake fails, or
/// when openssl is missing (then the caller skips).
fn negotiated(weir: &crate::support::Weir, tls13: bool, suites: &str) -> Option<String> {
    let addr = weir.addr().to_string();
    let mut command = std::process::Command::new(OPENSSL);
    command.args(["s_client", "-connect", &addr, "-servername", "localhost"]);
    if tls13 {
        command.args(["-tls1_3", "-ciphersuites", suites]);
    } else {
        command.args(["-tls1_2", "-cipher", suites]);
    }
    let mut child =
        command.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().ok()?;
    // stdin is closed, so s_client leaves once the handshake is done; bound it anyway.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().ok().flatten().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let output = child.wait_with_output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let cipher =
        text.lines().find_map(|line| line.split_once(", Cipher is ").map(|(_, c)| c.trim().to_string()))?;
    (cipher != "(NONE)").then_some(cipher)
}

fn have_openssl() -> bool {
    if std::path::Path::new(OPENSSL).exists() {
        return true;
    }
    assert_ne!(std::env::var("WEIR_REQUIRE_OPENSSL").as_deref(), Ok("1"), "{OPENSSL} is missing");
    eprintln!("skipped: {OPENSSL} is missing");
    false
}

#[test]
fn the_server_order_wins_unless_sslhonorcipherorder_is_off() {
    if !have_openssl() {
        return;
    }
    // The test certificate is ECDSA P-256, so the ECDSA suites are the TLS 1.2 ones in play.
    let weak_first = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384";
    let weak_first_13 = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384";
    let weir = Site::new().start("");
    assert_eq!(negotiated(&weir, false, weak_first).as_deref(), Some("ECDHE-ECDSA-AES256-GCM-SHA384"));
    assert_eq!(negotiated(&weir, true, weak_first_13).as_deref(), Some("TLS_AES_256_GCM_SHA384"));
    drop(weir);

    let weir = Site::new().start("SSLHonorCipherOrder off\n");
    assert_eq!(negotiated(&weir, false, weak_first).as_deref(), Some("ECDHE-ECDSA-AES128-GCM-SHA256"));
    assert_eq!(negotiated(&weir, true, weak_first_13).as_deref(), Some("TLS_AES_128_GCM_SHA256"));
}

#[test]
fn sslciphersuite_sets_the_suites_and_their_order() {
    if !have_openssl() {
        return;
    }
    let weir = Site::new().start(
        "SSLCipherSuite ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES128-GCM-SHA256:!aNULL:!MD5\n\
         SSLCipherSuite TLSv1.3 TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256\n",
    );
    let all = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-ECDSA-CHACHA20-POLY1305";
    assert_eq!(negotiated(&weir, false, all).as_deref(), Some("ECDHE-ECDSA-CHACHA20-POLY1305"));
    let all_13 = "TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256";
    assert_eq!(negotiated(&weir, true, all_13).as_deref(), Some("TLS_CHACHA20_POLY1305_SHA256"));
    // A suite left out is not offered at all.
    assert_eq!(negotiated(&weir, false, "ECDHE-ECDSA-AES256-GCM-SHA384"), None);
    assert_eq!(negotiated(&weir, true, "TLS_AES_256_GCM_SHA384"), None);
    // And the server still serves over what it does offer.
    let reply = Client::new(weir.addr(), &weir.cert_pem).get("/").unwrap();
    assert_eq!(reply.status, 200);
}

#[test]
fn a_suite_weir_cannot_offer_is_refused_naming_the_ones_it_can() {
    let site = Site::new();
    let conf_path = site.path().join("weir.conf");
    std::fs::write(
        &conf_path,
        site.config("SSLCipherSuite ECDHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES128-GCM-SHA256\n"),
    )
    .unwrap();
    let output = weir_command(&["configtest", "-f"], &conf_path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("SSLCipherSuite: invalid value 'DHE-RSA-AES128-GCM-SHA256'"), "{stderr}");
    assert!(stderr.contains("ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256"), "{stderr}");
}

#[test]
fn small_directives_addtype_directoryindex_serveradmin_and_allowoverride_none() {
    let site = Site::new();
    site.doc("data/readings.csv", b"t,v\n1,2\n");
    site.doc("data/firmware.BIN", b"\x7fELF");
    site.doc("app/start.htm", b"<p>start</p>\n");
    site.script(
        "env",
        "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nprintf 'admin=%s\\n' \"$SERVER_ADMIN\"\n",
    );
    let weir = site.start(
        "ServerAdmin ops@example.net\nServerSignature EMail\nSSLEngine on\nAllowOverride None\n\
         AddType text/csv .csv\nAddType application/x-firmware bin .img\n\
         DirectoryIndex index.html default.htm start.htm\n",
    );
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get("/data/readings.csv").unwrap();
    assert_eq!(reply.header("content-type"), Some("text/csv"), "{}", weir.logs());
    // Extensions match whatever their case, as mod_mime's do.
    assert_eq!(
        client.get("/data/firmware.BIN").unwrap().header("content-type"),
        Some("application/x-firmware")
    );
    // Types weir knows keep working.
    assert_eq!(client.get("/index.html").unwrap().header("content-type"), Some("text/html"));
    // The third DirectoryIndex name is found when the first two are missing.
    let reply = client.get("/app/").unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "<p>start</p>\n"));
    assert_eq!(client.get("/cgi-bin/env").unwrap().text(), "admin=ops@example.net\n");
    let reply = client.get("/no-such-page").unwrap();
    assert_eq!(reply.status, 404);
    assert!(
        reply.text().contains("<a href=\"mailto:ops@example.net\">ops@example.net</a>"),
        "{}",
        reply.text()
    );
}

#[test]
fn directives_weir_lacks_on_purpose_are_refused_with_the_reason_and_the_alternative() {
    let site = Site::new();
    let conf_path = site.path().join("weir.conf");
    let extra = "LoadModule ssl_module /usr/lib/apache2/modules/mod_ssl.so\n\
                 RewriteEngine on\n\
                 RewriteRule ^/old$ /new [R=301]\n\
                 ProxyPass /app http://127.0.0.1:8080/\n\
                 LoadModule rewrite_module /usr/lib/apache2/modules/mod_rewrite.so\n\
                 AllowOverride All\n\
                 RemoteIPHeader X-Forwarded-For\n\
                 <Proxy *>\n</Proxy>\n\
                 DocumnetRoot /srv\n";
    std::fs::write(&conf_path, site.config(extra)).unwrap();
    let conf = std::fs::read_to_string(&conf_path).unwrap();
    let line_of = |start: &str| conf.lines().position(|l| l.starts_with(start)).unwrap() + 1;
    let output = weir_command(&["configtest", "-f"], &conf_path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    let has = |line: usize, words: &[&str]| {
        stderr.lines().any(|l| l.contains(&format!("line {line} of")) && words.iter().all(|w| l.contains(w)))
    };
    assert!(!stderr.contains(&format!("line {} of", line_of("LoadModule ssl_module"))), "{stderr}");
    assert!(has(line_of("RewriteEngine"), &["weir lacks this on purpose", "Redirect"]), "{stderr}");
    assert!(has(line_of("RewriteRule"), &["weir lacks this on purpose", "Redirect"]), "{stderr}");
    assert!(has(line_of("ProxyPass"), &["does not forward", "CGIInterpreter"]), "{stderr}");
    assert!(has(line_of("LoadModule rewrite"), &["LoadModule rewrite_module", "Redirect"]), "{stderr}");
    assert!(has(line_of("AllowOverride"), &["weir reads no .htaccess files"]), "{stderr}");
    assert!(has(line_of("RemoteIPHeader"), &["RemoteIPTrustedProxy"]), "{stderr}");
    assert!(has(line_of("<Proxy"), &["<Proxy>", "weir lacks this on purpose"]), "{stderr}");
    assert!(has(line_of("DocumnetRoot"), &["did you mean 'DocumentRoot'"]), "{stderr}");
}

#[test]
fn logformat_nicknames_and_format_strings_shape_the_access_log() {
    let site = Site::new();
    let d = site.path().display().to_string();
    site.doc("r.txt", b"abc");
    let conf = site.config("").replace(&format!("CustomLog {d}/access.log combined\n"), "")
        + &format!(
            "ServerName meters.example\n\
             LogFormat \"%v:%p %h %l %u %t \\\"%r\\\" %>s %O %b \\\"%{{User-Agent}}i\\\" %m %U%q %H %{{Content-Type}}o\" site\n\
             CustomLog {d}/site.log site\n"
        );
    let weir = site.start_with(&conf);
    let client = Client::new(weir.addr(), &weir.cert_pem);
    assert_eq!(client.get("/r.txt?x=1").unwrap().status, 200);
    let log = weir.path().join("site.log");
    let mut text = String::new();
    let written = crate::support::wait_until(std::time::Duration::from_secs(10), || {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        text.contains("/r.txt")
    });
    assert!(written, "no line in {}\n{}", log.display(), weir.logs());
    let port = weir.addr().port();
    let line = text.lines().find(|l| l.contains("/r.txt")).unwrap();
    assert!(line.starts_with(&format!("meters.example:{port} 127.0.0.1 - - [")), "{line}");
    assert!(
        line.contains("] \"GET /r.txt?x=1 HTTP/1.1\" 200 3 3 \"-\" GET /r.txt?x=1 HTTP/1.1 text/plain"),
        "{line}"
    );

    let conf_path = weir.path().join("bad.conf");
    std::fs::write(
        &conf_path,
        format!("{conf}LogFormat \"%h %I\" withbytesin\nCustomLog {d}/x.log nosuchnick\n"),
    )
    .unwrap();
    let output = weir_command(&["configtest", "-f"], &conf_path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("LogFormat: invalid value '%I': weir cannot fill this"), "{stderr}");
    assert!(stderr.contains("CustomLog: invalid value 'nosuchnick'"), "{stderr}");
}

#[test]
fn addhandler_cgi_script_runs_executable_files_under_documentroot_and_never_sends_them() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let script = "#!/bin/sh\nprintf 'Content-Type: text/plain\\n\\n'\nprintf 'ran %s\\n' \"$SCRIPT_NAME\"\n";
    site.doc("app/hello.cgi", script.as_bytes());
    site.doc("app/plain.cgi", script.as_bytes());
    let docs = site.path().join("htdocs/app");
    std::fs::set_permissions(docs.join("hello.cgi"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(docs.join("plain.cgi"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let weir = site.start("AddHandler cgi-script .cgi .pl\n");
    let client = Client::new(weir.addr(), &weir.cert_pem);
    let reply = client.get("/app/hello.cgi").unwrap();
    assert_eq!((reply.status, reply.text().as_str()), (200, "ran /app/hello.cgi\n"), "{}", weir.logs());
    // Not executable: refused, and its source is not sent either.
    let reply = client.get("/app/plain.cgi").unwrap();
    assert_eq!(reply.status, 403);
    assert!(!reply.text().contains("#!/bin/sh"));

    let conf_path = weir.path().join("bad.conf");
    std::fs::write(&conf_path, "Listen 127.0.0.1:0 http\nAddHandler php-script .php\n").unwrap();
    let output = weir_command(&["configtest", "-f"], &conf_path).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("AddHandler: invalid value 'php-script'") && stderr.contains("CGIInterpreter"),
        "{stderr}"
    );
}
