//! A client that hangs up while its request is in the pool: over HTTP/1.1 nothing reads the
//! socket while the edge waits for the worker, so the close would be seen only when the answer
//! is written, after the script had run to its end or to Timeout. So, once the request's body is
//! in, the connection's socket is watched for the peer's FIN or RST (EPOLLRDHUP), as nginx does
//! for a proxied request; pipelined bytes only make it readable, and are left where they are.
//! When it fires the exchange is dropped, and the worker, seeing the edge gone, kills the
//! script's process group: the same path an h2 stream takes when its client resets it.
//!
//! A client that half-closes after its request (shutdown of its write side) is taken as gone,
//! as nginx takes it; TLS clients do not half-close.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tokio::io::Interest;
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::handshake_stage::Staged;
use crate::stall_guard::StallGuard;

/// A connection whose TCP socket can be watched.
pub trait ClientSocket {
    fn tcp(&self) -> BorrowedFd<'_>;
}

impl ClientSocket for StallGuard<Staged<TcpStream>> {
    fn tcp(&self) -> BorrowedFd<'_> {
        self.get_ref().get_ref().as_fd()
    }
}

impl ClientSocket for StallGuard<Box<TlsStream<Staged<TcpStream>>>> {
    fn tcp(&self) -> BorrowedFd<'_> {
        self.get_ref().get_ref().0.get_ref().as_fd()
    }
}

/// How long a request runs before its socket is watched: most answers from the pool come
/// sooner, and then the watch costs a descriptor copy and nothing more (no registration with
/// the runtime's poller, which is two more system calls a request).
const WATCH_AFTER: Duration = Duration::from_millis(100);

/// A second descriptor for a connection's socket, registered with the runtime on its own once
/// the request has run for [`WATCH_AFTER`]: watching it reads nothing, and dropping it closes
/// only this descriptor, never the connection.
pub struct Watch {
    fd: Mutex<Option<OwnedFd>>,
    watched: OnceLock<Option<TcpStream>>,
}

impl Watch {
    pub fn of(socket: &impl ClientSocket) -> Watch {
        Watch { fd: Mutex::new(socket.tcp().try_clone_to_owned().ok()), watched: OnceLock::new() }
    }

    fn watched(&self) -> Option<&TcpStream> {
        self.watched
            .get_or_init(|| {
                let fd = self.fd.lock().ok()?.take()?;
                TcpStream::from_std(std::net::TcpStream::from(fd)).ok()
            })
            .as_ref()
    }

    /// Resolves when the peer has closed or reset the connection; never, if the socket could
    /// not be watched (the request then runs as before, to its end or Timeout).
    pub async fn hung_up(&self) {
        if self.watched.get().is_none() {
            tokio::time::sleep(WATCH_AFTER).await;
        }
        let Some(watched) = self.watched() else {
            return std::future::pending().await;
        };
        loop {
            match watched.ready(Interest::READABLE).await {
                Ok(ready) if ready.is_read_closed() => return,
                // Only readable (a pipelined request, a TLS record): wait for the next change.
                // A closure that would block clears the readiness it saw, reading nothing.
                Ok(_) => {
                    let _ = watched
                        .try_io(Interest::READABLE, || Err::<(), _>(std::io::ErrorKind::WouldBlock.into()));
                }
                Err(_) => return std::future::pending().await,
            }
        }
    }
}
