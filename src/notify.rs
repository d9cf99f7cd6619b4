//! systemd's readiness protocol (`Type=notify`): READY=1, RELOADING=1, STOPPING=1 sent as
//! datagrams to `$NOTIFY_SOCKET` when it is set. Written here because it is one datagram; a
//! crate would bring more than it saves.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// Sends one state line; silently nothing when weir is not run by systemd.
pub fn send(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let path = path.to_string_lossy().into_owned();
    let address = match path.strip_prefix('@') {
        // An abstract socket: systemd writes its leading NUL as '@'.
        Some(name) => SocketAddr::from_abstract_name(name.as_bytes()),
        None => SocketAddr::from_pathname(&path),
    };
    let Ok(address) = address else { return };
    if let Ok(socket) = UnixDatagram::unbound() {
        if let Err(error) = socket.send_to_addr(state.as_bytes(), &address) {
            tracing::warn!(%error, "could not notify systemd");
        }
    }
}

/// RELOADING=1 with the monotonic timestamp `Type=notify-reload` asks for.
pub fn reloading() {
    let now = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1000)
        .unwrap_or(0);
    send(&format!("RELOADING=1\nMONOTONIC_USEC={now}"));
}
