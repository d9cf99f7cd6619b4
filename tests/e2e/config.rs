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
        .replace(
            "Listen 127.0.0.1:0 https",
            &format!("Listen 127.0.0.1:{port} https"),
        );
    let path = site.path().join("weir.conf");
    std::fs::write(&path, &conf).unwrap();
    let typo_line = conf
        .lines()
        .position(|l| l.starts_with("MaxRequestWorker "))
        .unwrap()
        + 1;
    let output = weir_command(&["run", "-f"], &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    let expected = format!(
        "Syntax error on line {typo_line} of {}: Invalid command 'MaxRequestWorker', perhaps misspelled",
        path.display()
    );
    assert!(stderr.contains(&expected), "{stderr}");
    assert!(
        stderr.contains("did you mean 'MaxRequestWorkers'"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("line {} of", typo_line + 1)) && stderr.contains("StartServers"),
        "{stderr}"
    );
    assert!(!stderr.contains("bind"), "{stderr}");
    assert!(
        !site.path().join("run").exists(),
        "RuntimeDir was created for a bad config"
    );
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
        site.config(
            "MaxRequestWorkers 300\nMinSpareServers 0\nStartServers -2\nMaxSpareServers 0\n",
        ),
    )
    .unwrap();
    let output = weir_command(&["configtest", "-f"], &corrected)
        .output()
        .unwrap();
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
    let output = weir_command(&["configtest", "-f"], &refused)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("MaxRequestWorkers: invalid value 'lots'"),
        "{stderr}"
    );
}
