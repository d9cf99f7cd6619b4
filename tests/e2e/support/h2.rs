//! Raw h2 clients for tests that hold request bodies open: hyper's client with a body fed piece
//! by piece, on a TLS connection from a chosen source address.

use std::sync::Arc;

use super::attack::{self, Dial};
use super::Weir;

/// A request body fed piece by piece through a channel; the stream stays open while the sender
/// lives.
pub struct Fed(pub tokio::sync::mpsc::Receiver<bytes::Bytes>);

impl hyper::body::Body for Fed {
    type Data = bytes::Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|piece| piece.map(|bytes| Ok(hyper::body::Frame::data(bytes))))
    }
}

/// An h2 connection to weir (h2 checked to be what ALPN chose).
pub async fn connect(weir: &Weir) -> hyper::client::conn::http2::SendRequest<Fed> {
    connect_from(weir, Dial::default()).await
}

/// [`connect`] from a chosen source address.
pub async fn connect_from(weir: &Weir, dial: Dial) -> hyper::client::conn::http2::SendRequest<Fed> {
    let mut config = (*attack::tls_config(&weir.cert_pem)).clone();
    config.alpn_protocols = vec![b"h2".to_vec()];
    let stream =
        attack::tls_connect_with(weir.addr(), &Arc::new(config), dial).await.expect("TLS connection");
    assert_eq!(stream.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "h2 by ALPN");
    let io = hyper_util::rt::TokioIo::new(stream);
    let (sender, conn) = hyper::client::conn::http2::handshake(hyper_util::rt::TokioExecutor::new(), io)
        .await
        .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}
