//! Sockets the supervisor opens before it forks and keeps for the life of the server, so a
//! restarted edge or pool finds them where they were and no client sees connection refused.

use std::net::{SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use socket2::{Domain, Protocol, Socket, Type};
use weir_conf::{ListenScheme, Listener};
use weir_prefork::privileges::{self, Account};

/// Apache's default ListenBacklog.
const LISTEN_BACKLOG: i32 = 511;

/// A bound TCP listener with its scheme.
pub struct BoundListener {
    pub socket: TcpListener,
    pub scheme: ListenScheme,
    /// A PROXY protocol header precedes each connection.
    pub proxy_protocol: bool,
    /// The address as configured (port 0 stays 0), to match it again on reload.
    pub configured: SocketAddr,
    /// The address actually bound (port 0 resolved).
    pub local: SocketAddr,
}

impl BoundListener {
    pub fn scheme_name(&self) -> &'static str {
        match self.scheme {
            ListenScheme::Https => "https",
            ListenScheme::Http => "http",
        }
    }
}

/// Why a socket could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("AH00072: make_sock: could not bind to address {addr}: {source}")]
    Bind { addr: SocketAddr, source: std::io::Error },
    #[error("could not create the pool socket {path}: {source}")]
    Pool { path: PathBuf, source: std::io::Error },
}

/// Binds every `Listen` line.
pub fn bind_all(listeners: &[Listener]) -> Result<Vec<BoundListener>, SocketError> {
    listeners.iter().map(bind).collect()
}

fn bind(listener: &Listener) -> Result<BoundListener, SocketError> {
    let addr = listener.addr;
    let fail = |source| SocketError::Bind { addr, source };
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP)).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    if addr.is_ipv6() {
        socket.set_only_v6(true).map_err(fail)?;
    }
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(LISTEN_BACKLOG).map_err(fail)?;
    let socket: TcpListener = socket.into();
    let local = socket.local_addr().map_err(fail)?;
    Ok(BoundListener {
        socket,
        scheme: listener.scheme,
        proxy_protocol: listener.proxy_protocol,
        configured: addr,
        local,
    })
}

/// The listeners a reloaded configuration asks for: the sockets already open are kept (same
/// configured address and protocol; no connection is ever refused), new ones are bound. Those
/// left out close when the old generation that holds them has gone.
pub fn rebind(wanted: &[Listener], open: &[BoundListener]) -> Result<Vec<BoundListener>, SocketError> {
    wanted
        .iter()
        .map(|listener| {
            let existing = open.iter().find(|o| {
                o.configured == listener.addr
                    && o.scheme == listener.scheme
                    && o.proxy_protocol == listener.proxy_protocol
            });
            match existing {
                Some(open) => {
                    let socket = open
                        .socket
                        .try_clone()
                        .map_err(|source| SocketError::Bind { addr: listener.addr, source })?;
                    Ok(BoundListener {
                        socket,
                        scheme: open.scheme,
                        proxy_protocol: open.proxy_protocol,
                        configured: open.configured,
                        local: open.local,
                    })
                }
                None => bind(listener),
            }
        })
        .collect()
}

/// Creates a pool's Unix listener `name` in RuntimeDir (already prepared, see runtime_files):
/// mode 0600, owned by the edge's account, so the edge is the only process besides root that may
/// connect to it. Workers never need its path: they inherit the listening descriptor.
pub fn pool_listener(
    runtime_dir: &Path,
    name: &str,
    edge: Option<&Account>,
) -> Result<(UnixListener, PathBuf), SocketError> {
    let path = runtime_dir.join(name);
    let fail = |source| SocketError::Pool { path: path.clone(), source };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(fail(error)),
    }
    // The socket file takes the umask's mode at bind: closed from the first instant, not only
    // once chmod has run.
    // SAFETY: umask only swaps the process's file-creation mask; the supervisor is single-threaded.
    let previous = unsafe { libc::umask(0o177) };
    let bound = UnixListener::bind(&path);
    // SAFETY: as above, restoring the mask.
    unsafe { libc::umask(previous) };
    let listener = bound.map_err(fail)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(fail)?;
    privileges::chown_to(&path, edge).map_err(fail)?;
    Ok((listener, path))
}

/// Writes `RuntimeDir/listen`, one `scheme address` line per listener, atomically: tests and
/// tools wait for this file, so it appears whole or not at all, once the server is ready.
pub fn write_address_file(runtime_dir: &Path, listeners: &[BoundListener]) -> std::io::Result<PathBuf> {
    let mut text = String::new();
    for listener in listeners {
        text.push_str(&format!("{} {}\n", listener.scheme_name(), listener.local));
    }
    let path = runtime_dir.join("listen");
    crate::runtime_files::write_replacing(&path, text.as_bytes())?;
    Ok(path)
}
