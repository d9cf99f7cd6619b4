//! Directives Apache has and weir lacks on purpose: each refused with the reason, and the weir
//! way to get the same result where there is one. One table, so the migration guide and
//! `configtest` say the same thing.

use crate::error::Problem;

/// One group of directives weir refuses.
pub struct Refusal {
    /// The directives (and section names), as Apache spells them.
    pub names: &'static [&'static str],
    /// Why weir lacks them.
    pub reason: &'static str,
    /// What to write instead, if anything does the job.
    pub alternative: Option<&'static str>,
}

/// Every directive refused on purpose.
pub const REFUSED: &[Refusal] = &[
    Refusal {
        names: &["RewriteEngine", "RewriteRule", "RewriteCond", "RewriteBase", "RewriteMap", "RewriteOptions"],
        reason: "weir has no mod_rewrite: a second request language in the configuration is a second place for paths to be read two ways",
        alternative: Some("Redirect, RedirectMatch or Alias for simple rewrites; a Handler or script for the rest"),
    },
    Refusal {
        names: &[
            "ProxyPass", "ProxyPassMatch", "ProxyPassReverse", "ProxyPassReverseCookieDomain",
            "ProxyPassReverseCookiePath", "ProxyRequests", "ProxyPreserveHost", "ProxyVia", "ProxyTimeout",
            "ProxyErrorOverride", "ProxyAddHeaders", "ProxySet", "BalancerMember", "ProxyRemote",
            "ProxyBlock", "SSLProxyEngine", "SSLProxyVerify", "SSLProxyCheckPeerName", "Proxy", "ProxyMatch",
        ],
        reason: "weir does not forward requests to other servers: code runs in its own prefork pool",
        alternative: Some("run the application as CGI (ScriptAlias, CGIInterpreter) or as a Rust Handler"),
    },
    Refusal {
        names: &["RemoteIPHeader", "RemoteIPInternalProxy", "RemoteIPProxiesHeader", "RemoteIPTrustedProxyList"],
        reason: "weir never takes the client's address from a request header",
        alternative: Some("Listen … proxy-protocol with RemoteIPTrustedProxy naming your load balancers"),
    },
    Refusal {
        names: &["Action", "Script"],
        reason: "weir has no mod_actions: handlers are not mapped to CGI programs",
        alternative: Some("CGIInterpreter .ext /path/to/interpreter (such as CGIInterpreter .php /usr/bin/php-cgi)"),
    },
    Refusal {
        names: &["ScriptSock", "ScriptLog", "ScriptLogLength", "ScriptLogBuffer", "CGIDScriptTimeout"],
        reason: "weir runs scripts in its prefork workers: there is no cgid daemon or script log",
        alternative: Some("a script's standard error goes to the ErrorLog; Timeout bounds a script's time"),
    },
    Refusal {
        names: &[
            "SSIErrorMsg", "SSITimeFormat", "SSIStartTag", "SSIEndTag", "SSIUndefinedEcho",
            "SSILegacyExprParser", "SSIEtag", "SSILastModified", "XBitHack",
        ],
        reason: "weir does not parse server-side includes: static files are sent as they are",
        alternative: Some("build the page in a CGI script or Handler"),
    },
    Refusal {
        names: &["AccessFileName", "AllowOverrideList"],
        reason: "weir reads no .htaccess files: every rule is in the main configuration, read once",
        alternative: Some("move the .htaccess directives into the configuration, in <Directory> or <Location>"),
    },
    Refusal {
        names: &[
            "SecRuleEngine", "SecRule", "SecAction", "SecDefaultAction", "SecRequestBodyAccess",
            "SecResponseBodyAccess", "SecAuditEngine", "SecAuditLog", "SecRuleRemoveById", "SecDataDir",
            "SecTmpDir", "SecMarker",
        ],
        reason: "weir has no web application firewall (mod_security)",
        alternative: Some("the edge's strict request parsing, RateLimit and the LimitRequest* limits; a WAF in front if you need rule sets"),
    },
    Refusal {
        names: &[
            "AuthDigestProvider", "AuthDigestDomain", "AuthDigestNonceLifetime", "AuthDigestAlgorithm",
            "AuthDigestQop", "AuthDigestShmemSize",
        ],
        reason: "weir has no Digest authentication: it rests on MD5 and shared nonce state",
        alternative: Some("AuthType Basic over TLS, or client certificates (SSLVerifyClient)"),
    },
    Refusal {
        names: &["php_value", "php_flag", "php_admin_value", "php_admin_flag"],
        reason: "weir has no mod_php: PHP runs as php-cgi in a worker, isolated per request",
        alternative: Some("CGIInterpreter .php /usr/bin/php-cgi, with PHP settings in php.ini"),
    },
    Refusal {
        names: &["UserDir"],
        reason: "weir serves no per-user web directories",
        alternative: Some("Alias /~name/ /home/name/public_html/"),
    },
    Refusal {
        names: &["Dav", "DavLockDB", "DavMinTimeout", "DavDepthInfinity"],
        reason: "weir has no WebDAV: clients cannot change files through the server",
        alternative: None,
    },
    Refusal {
        names: &["CacheEnable", "CacheDisable", "CacheRoot", "CacheQuickHandler", "CacheLock"],
        reason: "weir does not cache responses",
        alternative: Some("static files carry ETag and Last-Modified; a cache in front for the rest"),
    },
    Refusal {
        names: &["AddOutputFilterByType", "SetOutputFilter", "AddOutputFilter", "DeflateCompressionLevel"],
        reason: "weir does not compress or filter responses (compression over TLS leaks secrets, as BREACH showed)",
        alternative: Some("serve pre-compressed files, or compress in the application"),
    },
    Refusal {
        names: &["LoadFile"],
        reason: "weir loads no shared objects: its modules are built in",
        alternative: Some("nothing: <IfModule> answers for the modules weir emulates"),
    },
];

/// The refusal for a directive or section name, if weir lacks it on purpose.
pub fn lookup(name: &str) -> Option<&'static Refusal> {
    REFUSED.iter().find(|refusal| refusal.names.iter().any(|n| n.eq_ignore_ascii_case(name)))
}

/// The error for a refused name.
pub fn problem(name: &str, refusal: &Refusal) -> Problem {
    Problem::Refused { name: name.to_string(), reason: refusal.reason, alternative: refusal.alternative }
}

/// Modules some weir alternative replaces, for `LoadModule` of a module weir does not emulate.
const MODULE_ALTERNATIVES: &[(&str, &str)] = &[
    ("rewrite", "RewriteRule"),
    ("proxy", "ProxyPass"),
    ("remoteip", "RemoteIPHeader"),
    ("actions", "Action"),
    ("cgid", "ScriptSock"),
    ("include", "XBitHack"),
    ("security2", "SecRule"),
    ("auth_digest", "AuthDigestProvider"),
    ("php", "php_value"),
    ("userdir", "UserDir"),
    ("dav", "Dav"),
    ("cache", "CacheEnable"),
    ("deflate", "AddOutputFilterByType"),
];

/// `LoadModule name path`: fine for a module weir emulates (it is built in), refused for any
/// other, with the alternative where a weir directive does its job.
pub fn load_module(emulated: &[&str], args: &[String]) -> Result<(), Problem> {
    let module = &args[0];
    let short = module.strip_suffix("_module").unwrap_or(module);
    if emulated.contains(&short) {
        return Ok(());
    }
    let refusal = MODULE_ALTERNATIVES
        .iter()
        .find(|(prefix, _)| short.starts_with(prefix))
        .and_then(|(_, directive)| lookup(directive));
    Err(Problem::Refused {
        name: format!("LoadModule {module}"),
        reason: refusal.map_or(
            "weir loads no modules: the ones it emulates are built in, and this is not one of them",
            |r| r.reason,
        ),
        alternative: refusal.and_then(|r| r.alternative),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_name_once_and_every_module_alternative_resolves() {
        let all: Vec<&str> = REFUSED.iter().flat_map(|r| r.names.iter().copied()).collect();
        for (index, name) in all.iter().enumerate() {
            assert!(!all[..index].iter().any(|n| n.eq_ignore_ascii_case(name)), "{name} twice");
            assert!(crate::directives::find(name).is_none(), "{name} is both accepted and refused");
        }
        for (_, directive) in MODULE_ALTERNATIVES {
            assert!(lookup(directive).is_some(), "{directive}");
        }
    }

    #[test]
    fn load_module_accepts_emulated_modules_only() {
        let args = |m: &str| vec![m.to_string(), format!("/usr/lib/apache2/modules/mod_{m}.so")];
        let emulated = &["ssl", "status"];
        assert!(load_module(emulated, &args("ssl_module")).is_ok());
        let text = load_module(emulated, &args("rewrite_module")).unwrap_err().to_string();
        assert!(text.contains("LoadModule rewrite_module") && text.contains("Redirect"), "{text}");
        let text = load_module(emulated, &args("proxy_fcgi_module")).unwrap_err().to_string();
        assert!(text.contains("CGIInterpreter"), "{text}");
        let text = load_module(emulated, &args("lua_module")).unwrap_err().to_string();
        assert!(text.contains("weir loads no modules"), "{text}");
    }
}
