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
