//! Virtual hosts in the edge: which site answers a request ([`weir_conf::vhost::VhostMap`]),
//! each site's router and access log, and which certificate a TLS handshake shows (by SNI).
//!
//! A site is numbered as on the edge–worker contract: 0 the main server, then each
//! `<VirtualHost>` in order. The number travels to the worker in [`weir_wire::VHOST`], so a
//! script is always resolved with the settings of the site that routed it.

use std::path::PathBuf;
use std::sync::Arc;

use http::request::Parts;
use http::{header, StatusCode};
use rustls::ServerConfig;
use weir_conf::vhost::VhostMap;

use crate::access_log::AccessLog;
use crate::client_facts::ClientFacts;
use crate::router::Router;

/// What one site answers with.
pub struct HostSite {
    /// Its `<Location>`s, static files and pool routes.
    pub router: Router,
    /// Its CustomLog (shared with every site that names the same file).
    pub access_log: Option<Arc<AccessLog>>,
    /// Its `ErrorDocument`s, the main server's merged with its own.
    pub error_documents: weir_conf::error_document::ErrorDocuments,
    /// Whether any of its `<Location>`s has an `ErrorDocument`: only then are they looked at.
    pub location_documents: bool,
    /// A `<VirtualHost>` with an ErrorLog other than the main server's: its requests are
    /// served in a `site` span, so their error-log lines go there.
    pub own_error_log: bool,
    /// `SSLOptions +ExportCertData`: its certificate, sent with its requests for the pool.
    pub export_cert_data: Option<crate::cert_export::ExportCertData>,
    /// ServerName, or where its section starts: for log lines.
    pub label: String,
    /// The certificate, key and chain it shows over TLS; two sites with different ones cannot
    /// answer on the same TLS connection (mod_ssl's `ssl_server_compatible`).
    pub tls_identity: Option<TlsIdentity>,
}

/// The files of a site's certificate.
pub type TlsIdentity = (PathBuf, PathBuf, Option<PathBuf>);

/// Every site, and how a request picks one.
pub struct Hosts {
    map: VhostMap,
    sites: Vec<HostSite>,
}

impl Hosts {
    /// `sites[0]` is the main server.
    pub fn new(map: VhostMap, sites: Vec<HostSite>) -> Hosts {
        assert!(!sites.is_empty(), "the main server is always a site");
        Hosts { map, sites }
    }

    /// The site numbered `id`; the main server for a number no site has.
    pub fn site(&self, id: usize) -> &HostSite {
        self.sites.get(id).unwrap_or(&self.sites[0])
    }

    /// Whether any site passes certificates to its scripts: only then does a connection keep
    /// its client's.
    pub fn exports_cert_data(&self) -> bool {
        self.sites.iter().any(|site| site.export_cert_data.is_some())
    }

    pub fn all(&self) -> &[HostSite] {
        &self.sites
    }

    /// The site a request is for: by the connection's local address, then its Host (h2's
    /// `:authority`). Without `<VirtualHost>`s, always the main server.
    pub fn select(&self, facts: &ClientFacts, parts: &Parts) -> usize {
        if self.map.is_empty() {
            return 0;
        }
        self.map.select(facts.local, facts.tls.is_some(), request_host(parts))
    }

    /// The default site of the connection's address: for answers made before a request is
    /// read whole (a malformed head, a timeout).
    pub fn default_for(&self, facts: &ClientFacts) -> usize {
        if self.map.is_empty() {
            return 0;
        }
        self.map.select(facts.local, facts.tls.is_some(), None)
    }

    /// mod_ssl's check (ssl_hook_ReadReq, as in httpd 2.4.64): on a TLS connection whose
    /// certificate was chosen among sites, a request with SNI but no Host is 400 (AH02031), and
    /// one whose Host selects a site with another certificate than the handshake's (the SNI
    /// site, or the default one without SNI) is 421 Misdirected Request (AH02032), so the
    /// client opens a new connection for it. h2 clients coalesce connections for names one
    /// certificate covers; this is what stops a request reaching a site through a connection
    /// made for another.
    pub fn misdirected(&self, facts: &ClientFacts, parts: &Parts, site: usize) -> Option<StatusCode> {
        let tls = facts.tls.as_ref()?;
        let handshake = tls.handshake_site?;
        let sni = tls.sni.as_deref();
        let host = request_host(parts);
        if let (Some(sni), None) = (sni, host) {
            tracing::debug!(client = %facts.peer, "AH02031: Hostname {sni} provided via SNI, but no hostname provided in HTTP request");
            return Some(StatusCode::BAD_REQUEST);
        }
        if handshake == site || self.site(handshake).tls_identity == self.site(site).tls_identity {
            return None;
        }
        let sni = match sni {
            Some(name) => name.to_string(),
            None => format!("{} (default host as no SNI was provided)", self.site(handshake).label),
        };
        tracing::debug!(
            client = %facts.peer,
            "AH02032: Hostname {sni} provided via SNI and hostname {} provided via HTTP have no compatible SSL setup",
            host.unwrap_or("")
        );
        Some(StatusCode::MISDIRECTED_REQUEST)
    }
}

/// The site a request is routed by (a request extension): the pool is told it
/// ([`weir_wire::VHOST`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SiteId(pub usize);

/// The authority a request names: h2's `:authority` (or an absolute-form target's), else Host.
pub fn request_host(parts: &Parts) -> Option<&str> {
    parts
        .uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()))
}

/// The TLS configurations of sites with certificates of their own: the handshake reads the
/// ClientHello first, picks the site by local address and SNI, and answers with its
/// configuration.
#[derive(Debug)]
pub struct HostTls {
    map: VhostMap,
    /// By site number; `None`: a site with no certificate (its handshakes fail).
    configs: Vec<Option<Arc<ServerConfig>>>,
}

impl HostTls {
    pub fn new(map: VhostMap, configs: Vec<Option<Arc<ServerConfig>>>) -> HostTls {
        HostTls { map, configs }
    }

    /// The site a handshake to `local` naming `sni` is for, and its configuration.
    pub fn choose(
        &self,
        local: std::net::SocketAddr,
        sni: Option<&str>,
    ) -> (usize, Option<Arc<ServerConfig>>) {
        let site = self.map.select(local, true, sni);
        (site, self.configs.get(site).cloned().flatten())
    }
}
