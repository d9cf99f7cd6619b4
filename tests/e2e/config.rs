//! Configuration errors on the command line.

use std::process::Stdio;

use crate::support::{weir_command, Site};

#[test]
fn a_bad_config_is_refused_with_file_line_and_reason_before_anything_is_bound() {
    let site = Site::new();
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = held.local_addr().unwrap().port();
    let conf = site
        .config("MaxRequestWorker 5\nStartServers many\n")
        .replace("Listen 127.0.0.1:0 https", &format!("Listen 127.0.0.1:{port} https"));
    let path = site.path().join("weir.conf");
    std::fs::write(&path, &conf).unwrap();
    let typo_line = conf.lines().position(|l| l.starts_with("MaxRequestWorker ")).unwrap() + 1;
    let output =
        weir_command(&["run", "-f"], &path).stdout(Stdio::piped()).stderr(Stdio::piped()).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    let expected = format!(
        "Syntax error on line {typo_line} of {}: Invalid command 'MaxRequestWorker', perhaps misspelled",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(stderr.contains("did you mean 'MaxRequestWorkers'"), "{stderr}");
    assert!(
        stderr.contains(&format!("line {} of", typo_line + 1)) && stderr.contains("StartServers"),
        "{stderr}"
    );
    assert!(!stderr.contains("bind"), "{stderr}");
    assert!(!site.path().join("run").exists(), "RuntimeDir was created for a bad config");
    drop(held);
}

#[test]
fn configtest_says_syntax_ok_or_lists_errors() {
    let site = Site::new();
    let good = site.path().join("good.conf");
    std::fs::write(&good, site.config("")).unwrap();
    let output = weir_command(&["configtest", "-f"], &good).output().unwrap();
    assert!(output.status.success());
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "Syntax OK");

    let bad = site.path().join("bad.conf");
    std::fs::write(&bad, site.config("Listen 127.0.0.1:99999\n")).unwrap();
    let output = weir_command(&["configtest", "-f"], &bad).output().unwrap();
    assert_eq!(output.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&output.stderr).contains("Listen"));
}

#[test]
fn out_of_range_pool_values_are_corrected_with_apaches_warnings_and_non_numbers_refused() {
    let site = Site::new();
    let corrected = site.path().join("corrected.conf");
    std::fs::write(
        &corrected,
        site.config("MaxRequestWorkers 300\nMinSpareServers 0\nStartServers -2\nMaxSpareServers 0\n"),
    )
    .unwrap();
    let output = weir_command(&["configtest", "-f"], &corrected).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "Syntax OK");
    for expected in [
        "AH00180: WARNING: MaxRequestWorkers of 300 exceeds ServerLimit value of 256 servers, decreasing MaxRequestWorkers to 256.",
        "AH00184: WARNING: StartServers of -2 not allowed, increasing to 1.",
        "AH00186: WARNING: MinSpareServers of 0 not allowed, increasing to 1",
        "MaxSpareServers of 0 is below MinSpareServers + 1, increasing to 2",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in\n{stderr}");
    }

    let refused = site.path().join("refused.conf");
    std::fs::write(&refused, site.config("MaxRequestWorkers lots\n")).unwrap();
    let output = weir_command(&["configtest", "-f"], &refused).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("MaxRequestWorkers: invalid value 'lots'"), "{stderr}");
}

#[test]
fn weir_cert_makes_a_fleet_ca_server_and_device_certificates_without_overwriting() {
    use std::os::unix::fs::PermissionsExt;
    let site = Site::new();
    let dir = site.path().join("pki");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_weir")).arg("cert").args(args).output().unwrap()
    };
    let out = dir.display().to_string();
    assert!(run(&["ca", "--out", &out, "--cn", "Water Utility CA"]).status.success());
    assert!(run(&["server", "--ca", &out, "--out", &out, "--name", "localhost"]).status.success());
    assert!(run(&["client", "--ca", &out, "--out", &out, "--cn", "meter-0042", "--org", "Water Utility"])
        .status
        .success());
    for key in ["ca.key", "server.key", "meter-0042.key"] {
        let mode = std::fs::metadata(dir.join(key)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{key}");
    }
    let before = std::fs::read(dir.join("ca.key")).unwrap();
    let again = run(&["ca", "--out", &out]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("pass --force"));
    assert_eq!(std::fs::read(dir.join("ca.key")).unwrap(), before, "overwritten without --force");
    assert!(run(&["ca", "--out", &out, "--force"]).status.success());
    assert_ne!(std::fs::read(dir.join("ca.key")).unwrap(), before);
    // The server certificate and its key make a pair weir accepts.
    let conf = site.path().join("pki.conf");
    let text = site
        .config("")
        .replace(&format!("{}/cert.pem", site.path().display()), &format!("{out}/server.crt"))
        .replace(&format!("{}/key.pem", site.path().display()), &format!("{out}/server.key"));
    std::fs::write(&conf, text).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn configtest_catches_a_key_that_does_not_match_and_warns_of_risky_settings() {
    let site = Site::new();
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(site.path().join("other.key"), other.signing_key.serialize_pem()).unwrap();
    let conf = site.path().join("mismatch.conf");
    let text = site.config("LimitRequestBody 0\nRequestReadTimeout header=0\n").replace(
        &format!("{}/key.pem", site.path().display()),
        &format!("{}/other.key", site.path().display()),
    );
    std::fs::write(&conf, text).unwrap();
    let output = weir_command(&["configtest", "-f"], &conf).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains("cannot be used together"), "{stderr}");
    assert!(stderr.contains("LimitRequestBody 0"), "{stderr}");
    assert!(stderr.contains("header timeout off"), "{stderr}");
}
