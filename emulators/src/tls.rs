//! HTTPS for any emulator: a throwaway CA and a host certificate for 127.0.0.1 made with the
//! `openssl` command line ([`TestPki`]), and [`front`], a TLS-terminating proxy that puts any
//! plain emulator behind HTTPS — so a client's trust settings (a private CA file, the insecure
//! switch) are tested against a real TLS handshake.

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

    /// A TLS acceptor serving the host certificate.
    pub fn acceptor(&self) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
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

/// Serves TLS on a new loopback port and forwards each connection's bytes to `backend` (a plain
/// emulator). Returns the HTTPS address. A failed handshake (a client refusing the certificate)
/// is logged and the connection dropped, as a real server would.
pub async fn front(backend: SocketAddr, pki: &TestPki) -> anyhow::Result<SocketAddr> {
    let acceptor = pki.acceptor()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                continue;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        tracing::debug!(error = %e, "TLS front: handshake failed");
                        return;
                    }
                };
                if let Ok(mut plain) = tokio::net::TcpStream::connect(backend).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                }
            });
        }
    });
    Ok(addr)
}
