//! HTTPS for the WinRM emulator: the TLS listener in front of the TCP one (certificates from
//! [`crate::tls::TestPki`]), and the peer address both listeners report (NTLM contexts are keyed
//! by it).

use std::net::SocketAddr;

/// The client's address, as connection info for both listeners (NTLM contexts are keyed by it).
#[derive(Clone, Copy, Debug)]
pub(super) struct Peer(pub(super) SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for Peer
{
    fn connect_info(s: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(s: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Peer(*s.remote_addr())
    }
}

/// TLS in front of the emulator's TCP listener. Handshakes run one at a time, which is fine
/// for tests; a failed one (a client refusing the certificate) is logged and skipped.
pub(super) struct TlsListener {
    pub(super) tcp: tokio::net::TcpListener,
    pub(super) acceptor: tokio_rustls::TlsAcceptor,
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Ok((tcp, addr)) = self.tcp.accept().await else {
                continue;
            };
            match self.acceptor.accept(tcp).await {
                Ok(tls) => return (tls, addr),
                Err(e) => tracing::debug!(error = %e, "winrm emulator: TLS handshake failed"),
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
