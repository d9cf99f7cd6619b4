//! The table of bad configurations: each must be refused with its message and its line.

use std::path::Path;

use crate::config::{Config, Source};

/// (configuration text, expected line, expected words in the message).
const CASES: &[(&str, usize, &str)] = &[
    ("Listen 80\nMaxRequestWorker 5\n", 2, "Invalid command 'MaxRequestWorker', perhaps misspelled"),
    ("Listen 80\nMaxRequestWorker 5\n", 2, "did you mean 'MaxRequestWorkers'"),
    ("Listen 80\nStartServer 5\n", 2, "did you mean 'StartServers'"),
    ("Listen 80\nDocumnetRoot /srv\n", 2, "did you mean 'DocumentRoot'"),
    ("Listen 80\nFrobnicate on\n", 2, "Invalid command 'Frobnicate'"),
    ("Listen 80\nStartServers\n", 2, "StartServers takes one argument"),
    ("Listen 80\nStartServers 1 2\n", 2, "StartServers takes one argument"),
    ("Listen 80\nStartServers many\n", 2, "StartServers: invalid value 'many'"),
    ("Listen 80\nMaxRequestWorkers 1.5\n", 2, "MaxRequestWorkers: invalid value '1.5'"),
    ("Listen 80\nServerLimit lots\n", 2, "ServerLimit: invalid value"),
    ("Listen 80\nMinSpareServers 3x\n", 2, "MinSpareServers: invalid value"),
    ("Listen 80\nMaxConnectionsPerChild -1\n", 2, "MaxConnectionsPerChild: invalid value '-1'"),
    ("Listen 80\nTimeout soon\n", 2, "Timeout: invalid value 'soon'"),
    ("Listen 80\nKeepAlive maybe\n", 2, "KeepAlive: invalid value 'maybe': expected On or Off"),
    ("Listen 80\nLimitRequestBody -5\n", 2, "LimitRequestBody: invalid value '-5'"),
    ("Listen 80\nSpillLimit lots\n", 2, "SpillLimit: invalid value 'lots'"),
    ("Listen 80\nLimitRequestLine 10\n", 2, "LimitRequestLine: invalid value '10': must be from 64"),
    ("Listen 80\nLimitRequestFields many\n", 2, "LimitRequestFields: invalid value"),
    ("Listen localhost:80\n", 1, "Listen: invalid value 'localhost:80'"),
    ("Listen 80 ftp\n", 1, "Listen: invalid value 'ftp'"),
    ("Listen 99999\n", 1, "Listen: invalid value '99999'"),
    ("Listen 127.0.0.1:8080\nListen 127.0.0.1:8080\n", 0, "Listen 127.0.0.1:8080 is given more than once"),
    ("StartServers 2\n", 0, "no Listen is set"),
    (
        "Listen 80\nListen 8080 proxy-protocol\n",
        2,
        "Listen 0.0.0.0:8080 has proxy-protocol, but no RemoteIPTrustedProxy",
    ),
    ("Listen 80\nRemoteIPTrustedProxy lb.example.net\n", 2, "host names are not resolved"),
    (
        "Listen 80\nRemoteIPTrustedProxy 10.0.0.5 10.0.0.0/33\n",
        2,
        "RemoteIPTrustedProxy: invalid value '10.0.0.0/33'",
    ),
    ("Listen 80\nRemoteIPTrustedProxy\n", 2, "RemoteIPTrustedProxy takes one or more arguments"),
    ("Listen 443\n", 0, "no SSLCertificateFile is set"),
    ("Listen 443\nSSLCertificateFile c.pem\n", 0, "no SSLCertificateKeyFile is set"),
    ("Listen 80\nRequestReadTimeout header=6-2,MinRate=1\n", 2, "maximum timeout is below the initial one"),
    ("Listen 80\nRequestReadTimeout header=2-6\n", 2, "needs MinRate"),
    ("Listen 80\nRequestReadTimeout head=5\n", 2, "the stage must be handshake, header or body"),
    ("Listen 80\nRequestReadTimeout body=5,MinRate=0\n", 2, "MinRate must be a positive number"),
    ("Listen 80\nRateLimit 5/m\n", 2, "RateLimit: invalid value '5/m'"),
    ("Listen 80\nRateLimit 5/s burst=0\n", 2, "expected burst=N"),
    ("Listen 80\nHeader edit X-A b\n", 2, "the action must be set, append, merge, add or unset"),
    ("Listen 80\nHeader set X-A\n", 2, "this action needs a value"),
    ("Listen 80\nServerTokens Everything\n", 2, "ServerTokens: invalid value 'Everything'"),
    ("Listen 80\nServerSignature Loud\n", 2, "ServerSignature: invalid value 'Loud'"),
    ("Listen 80\nTraceEnable sometimes\n", 2, "TraceEnable: invalid value"),
    ("Listen 80\nSSLProtocol +TLSv1\n", 2, "older versions can only be removed"),
    ("Listen 80\nSSLProtocol all -TLSv1.2 -TLSv1.3\n", 2, "no protocol version is left enabled"),
    ("Listen 80\nSSLVerifyClient sometimes\n", 2, "SSLVerifyClient: invalid value 'sometimes'"),
    ("Listen 80\nSSLVerifyClient require\n", 0, "no SSLCACertificateFile is set"),
    ("Listen 80\nProtocols h3\n", 2, "Protocols: invalid value 'h3'"),
    ("Listen 80\nCGIInterpreter php /usr/bin/php-cgi\n", 2, "the extension must start with a dot"),
    ("Listen 80\nRLimitCPU 10 5\n", 2, "the soft limit is above the hard limit"),
    ("Listen 80\nRLimitMEM lots\n", 2, "RLimitMEM: invalid value 'lots'"),
    ("Listen 80\nMaxMemoryPerChild 12Q\n", 2, "MaxMemoryPerChild: invalid value '12Q'"),
    ("Listen 80\nErrorLog \"|/usr/bin/logger\"\n", 2, "ErrorLog: invalid value"),
    ("Listen 80\nCustomLog logs/access.log vhost\n", 2, "no LogFormat above defines this nickname"),
    ("Listen 80\nLogFormat \"%h %I\" bytes\n", 2, "LogFormat: invalid value '%I': weir cannot fill this"),
    ("Listen 80\nDefine a:b\n", 2, "Variable name must not contain ':'"),
    ("Listen 80\n<IfDefine A B>\n</IfDefine>\n", 2, "<IfDefine> takes one argument"),
    ("Listen 80\nSSLCipherSuite DHE-RSA-AES128-GCM-SHA256\n", 2, "weir cannot offer this cipher suite"),
    ("Listen 80\nSSLCipherSuite TLSv1.3 TLS_AES_128_CCM_SHA256\n", 2, "weir cannot offer this TLSv1.3 suite"),
    ("Listen 80\nSSLCipherSuite aNULL:MEDIUM\n", 2, "no cipher suite is left"),
    ("Listen 80\nSSLHonorCipherOrder maybe\n", 2, "SSLHonorCipherOrder: invalid value 'maybe'"),
    ("Listen 80\nSSLOptions +StdEnvVars ExportCertData\n", 2, "Illegal combination of options"),
    ("Listen 80\nSSLOptions +FakeBasicAuth\n", 2, "SSLOptions: invalid value '+FakeBasicAuth'"),
    ("Listen 80\nSSLOptions +ExportCertData +Everything\n", 2, "expected StdEnvVars or ExportCertData"),
    ("Listen 80\nSSLEngine optional\n", 2, "SSLEngine: invalid value 'optional'"),
    ("Listen 80\nErrorDocument 200 /ok.html\n", 2, "weir takes an error status (400 to 599)"),
    ("Listen 80\nErrorDocument 404 //evil.example/x\n", 2, "expected a local URL path"),
    ("Listen 80\nErrorDocument 404 ftp://files.example/\n", 2, "an http:// or https:// URL"),
    ("Listen 80\nErrorDocument 404 \"Gone %{REQUEST_URI}\"\n", 2, "does not evaluate expressions"),
    (
        "Listen 80\n<Location /app>\nErrorDocument 401 https://login.example/\n</Location>\n",
        3,
        "cannot be used for 401",
    ),
    (
        "Listen 80\n<Location /app>\nErrorDocument 404 //elsewhere/x\n</Location>\n",
        3,
        "expected a local URL path",
    ),
    ("Listen 80\nAllowOverride All\n", 2, "weir reads no .htaccess files"),
    ("Listen 80\nAllowOverride AuthConfig Indexes\n", 2, "weir reads no .htaccess files"),
    ("Listen 80\nAddType text .txt\n", 2, "AddType: invalid value 'text'"),
    ("Listen 80\nAddType text/plain a/b\n", 2, "AddType: invalid value 'a/b'"),
    ("Listen 80\nServerAdmin \"<a>\"\n", 2, "ServerAdmin: invalid value '<a>'"),
    ("Listen 80\nRewriteEngine On\n", 2, "RewriteEngine: weir lacks this on purpose"),
    ("Listen 80\nProxyPass / http://backend/\n", 2, "instead: run the application as CGI"),
    ("Listen 80\nLoadModule php_module /usr/lib/apache2/modules/libphp.so\n", 2, "CGIInterpreter .php"),
    (
        "Listen 80\n<Location />\nRewriteRule ^ /x\n</Location>\n",
        3,
        "RewriteRule: weir lacks this on purpose",
    ),
    ("Listen 80\nRewriteEngnie On\n", 2, "did you mean"),
    ("Listen 80\nScriptAlias /cgi-bin/\n", 2, "ScriptAlias takes two arguments"),
    ("Listen 80\n<IfModule mpm_prefork_module>\nStartServers 2\n", 2, "section was not closed"),
    ("Listen 80\n</IfModule>\n", 2, "</IfModule> without matching <IfModule> section"),
    ("Listen 80\n<Frobnicate x>\n</Frobnicate>\n", 2, "Invalid command '<Frobnicate>'"),
    ("Listen 80\nServerName \"unterminated\n", 2, "unterminated quoted argument"),
    (
        "Listen 80\n<Location /server-status>\nSetHandler server-info\n</Location>\n",
        3,
        "SetHandler: invalid value 'server-info'",
    ),
    ("Listen 80\n<Location /s>\nRequire group admins\n</Location>\n", 3, "Require: invalid value"),
    (
        "Listen 80\n<Location /s>\nRequire user bob\n</Location>\n",
        2,
        "requires a user, but no AuthType Basic applies",
    ),
    (
        "Listen 80\n<Location /s>\nRequire not local\n</Location>\n",
        3,
        "negative Require directive has no effect",
    ),
    ("Listen 80\n<Location /s>\nAuthType Digest\n</Location>\n", 3, "weir refuses Digest"),
    ("Listen 80\n<Location /s>\nStartServers 3\n</Location>\n", 3, "StartServers is not allowed here"),
    ("Listen 80\nSetHandler server-status\n", 2, "SetHandler is not allowed here"),
    ("Listen 80\nInclude missing-file.conf\n", 2, "Could not open configuration file"),
    ("Listen 80\nInclude conf.d/*.nothing\n", 2, "No matches for the wildcard"),
    (
        "Listen 80\n<VirtualHost *:80>\nTimeout 5\n</VirtualHost>\n",
        3,
        "Timeout cannot occur within <VirtualHost> section",
    ),
    (
        "Listen 80\n<VirtualHost *:80>\nRequire all granted\n</VirtualHost>\n",
        3,
        "Require is not allowed here",
    ),
    ("Listen 80\n<VirtualHost>\n</VirtualHost>\n", 2, "<VirtualHost> takes one or more arguments"),
    ("Listen 80\nErrorDocument 404 /errors/../private/p.txt\n", 2, "without . or .. segments"),
    ("Listen 80\nDirectoryIndex index.html ../admin/index.sh\n", 2, "no / and no .."),
    ("Listen 80\n<Files pub/a.txt>\nRequire all denied\n</Files>\n", 2, "which holds no /"),
    ("Listen 80\n<Directory /srv>\nDirectoryIndex /cgi-bin/ok\n</Directory>\n", 3, "no / and no .."),
    ("Listen 80\nAliasMatch ^/x/(.*)$ /srv/$1/../x\n", 2, "must not contain .."),
    ("Listen 80\n<VirtualHost *:eighty>\n</VirtualHost>\n", 2, "the port must be a number or *"),
    (
        "Listen 80\n<VirtualHost *:80>\nSSLEngine optional\n</VirtualHost>\n",
        3,
        "SSLEngine: invalid value 'optional'",
    ),
    (
        "Listen 80\n<FilesMatch x>\nOptions MultiViews\n</FilesMatch>\n",
        3,
        "Options: invalid value 'MultiViews'",
    ),
    ("Listen 80\n<Files a b>\n</Files>\n", 2, "<Files> takes one argument"),
    ("Listen 80\nServerAlias a.test\n", 2, "ServerAlias only used in <VirtualHost>"),
];

fn load(text: &str) -> Result<Config, crate::ConfigErrors> {
    let dir = std::env::temp_dir().join("weir-bad-configs");
    let _ = std::fs::create_dir_all(dir.join("conf.d"));
    Config::from_text(text, Path::new("/etc/weir/weir.conf"), Source::File("/etc/weir/weir.conf".into()), dir)
}

#[test]
fn every_bad_config_names_its_line_and_problem() {
    assert!(CASES.len() >= 40, "the table holds {} cases", CASES.len());
    for (text, line, expected) in CASES {
        let errors = match load(text) {
            Ok(_) => panic!("accepted a bad configuration:\n{text}"),
            Err(errors) => errors,
        };
        let found = errors.0.iter().find(|e| e.to_string().contains(expected));
        let Some(error) = found else {
            panic!("{text:?}: no error mentions {expected:?}; got:\n{errors}");
        };
        assert_eq!(error.line, *line, "{text:?}: wrong line in {error}");
        if *line > 0 {
            assert!(
                error
                    .to_string()
                    .starts_with(&format!("Syntax error on line {line} of /etc/weir/weir.conf: ")),
                "{error}"
            );
        }
    }
}

#[test]
fn several_errors_are_reported_in_one_run() {
    let errors = load("Listen 80\nStartServers x\nMaxSpare 3\nTimeout y\n").unwrap_err();
    let lines: Vec<usize> = errors.0.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 3, 4], "{errors}");
}

#[test]
fn the_shipped_default_configuration_loads_and_names_every_directive() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/weir.conf");
    let text = std::fs::read_to_string(&path).expect("conf/weir.conf");
    Config::load(&path).unwrap_or_else(|errors| panic!("conf/weir.conf does not load:\n{errors}"));
    for directive in crate::directives::DIRECTIVES {
        let named = text.lines().any(|line| {
            let line = line.trim_start().trim_start_matches('#');
            line.split_whitespace().next().is_some_and(|word| word.eq_ignore_ascii_case(directive.name))
        });
        let alias = ["MaxClients", "MaxRequestsPerChild"].contains(&directive.name);
        assert!(named || alias, "conf/weir.conf does not mention {}", directive.name);
    }
}

#[test]
fn the_migration_example_loads() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../conf/examples/apache-prefork-site.conf");
    Config::load(&path).unwrap_or_else(|errors| panic!("the example does not load:\n{errors}"));
}

#[test]
fn the_migration_guide_lists_every_directive_accepted_or_refused() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/migrating-from-apache.md");
    let text = std::fs::read_to_string(&path).expect("docs/migrating-from-apache.md");
    let table = text.split("\n## Directives\n").nth(1).expect("a ## Directives section");
    let first_columns: Vec<&str> =
        table.lines().filter(|l| l.starts_with("| `")).filter_map(|l| l.split(" | ").next()).collect();
    let listed = |name: &str| {
        first_columns.iter().any(|cell| {
            cell.split(['`', ' ', ',', '(', ')', '<', '>', '[', '*']).any(|word| {
                word.eq_ignore_ascii_case(name) || (name.starts_with("AuthDigest") && word == "AuthDigest")
            })
        })
    };
    let refused = crate::refused::REFUSED.iter().flat_map(|r| r.names.iter().copied());
    let missing: Vec<&str> =
        crate::directives::DIRECTIVES.iter().map(|d| d.name).chain(refused).filter(|n| !listed(n)).collect();
    // The mod_proxy and mod_security rows name the family and its common members.
    let families = ["Proxy", "Sec", "SSLProxy"];
    let missing: Vec<&str> =
        missing.into_iter().filter(|n| !families.iter().any(|f| n.starts_with(f))).collect();
    assert!(missing.is_empty(), "docs/migrating-from-apache.md's Directives table lacks {missing:?}");
}
