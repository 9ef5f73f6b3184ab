//! HTTPS for the WinRM emulator: a throwaway CA and host certificate made with the `openssl`
//! command line ([`TestPki`]), the TLS listener in front of the TCP one, and the peer address both
//! listeners report (NTLM contexts are keyed by it).

use std::net::SocketAddr;
use std::sync::Arc;

/// A certificate authority and a host certificate for `127.0.0.1`, made with the `openssl`
/// command line for one HTTPS emulator.
pub struct TestPki {
    /// PEM of the CA that signed the host certificate (what a client trusts with a custom CA).
    pub ca_pem: std::path::PathBuf,
    cert_pem: std::path::PathBuf,
    key_pem: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl TestPki {
    /// Generates a P-256 CA and a server certificate for IP 127.0.0.1 (SAN), valid two days.
    pub fn generate() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let p = |n: &str| dir.path().join(n);
        let run = |args: &[&str]| -> anyhow::Result<()> {
            let out = std::process::Command::new("openssl")
                .args(args)
                .output()
                .map_err(|e| {
                    anyhow::anyhow!(
                        "cannot run openssl ({e}); the HTTPS emulator needs the openssl CLI"
                    )
                })?;
            anyhow::ensure!(
                out.status.success(),
                "openssl {:?} failed: {}",
                args.first(),
                String::from_utf8_lossy(&out.stderr)
            );
            Ok(())
        };
        let s = |p: &std::path::Path| p.to_string_lossy().into_owned();
        std::fs::write(
            p("host.ext"),
            "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\n",
        )?;
        run(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &s(&p("ca.key")),
            "-out",
            &s(&p("ca.pem")),
            "-days",
            "2",
            "-subj",
            "/CN=triage-bot emulator CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        run(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &s(&p("host.key")),
            "-out",
            &s(&p("host.csr")),
            "-subj",
            "/CN=127.0.0.1",
        ])?;
        run(&[
            "x509",
            "-req",
            "-in",
            &s(&p("host.csr")),
            "-CA",
            &s(&p("ca.pem")),
            "-CAkey",
            &s(&p("ca.key")),
            "-CAcreateserial",
            "-out",
            &s(&p("host.pem")),
            "-days",
            "2",
            "-extfile",
            &s(&p("host.ext")),
        ])?;
        Ok(Self {
            ca_pem: p("ca.pem"),
            cert_pem: p("host.pem"),
            key_pem: p("host.key"),
            _dir: dir,
        })
    }

    pub(super) fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let certs =
            CertificateDer::pem_file_iter(&self.cert_pem)?.collect::<Result<Vec<_>, _>>()?;
        let key = PrivateKeyDer::from_pem_file(&self.key_pem)?;
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

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
