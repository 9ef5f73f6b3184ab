//! The container's health probe: `GET /healthz` on triage-bot's own HTTP server, exit 0 on a 200
//! and 1 on anything else (refused, timed out, another status).
//!
//! The runtime image (distroless) has no shell, curl or wget, and triage-bot has no probe
//! subcommand, so the Dockerfile compiles this file with plain `rustc` (standard library only)
//! into a small binary next to triage-bot (linked against the C library the distroless `cc` image ships). It reads `HTTP_BIND` as the service does
//! (`0.0.0.0:8080` is probed on 127.0.0.1, `[::]:8080` on ::1); an argument overrides the path.
//! `tests/checks/packaging.rs` builds and runs it against a live server.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::process::ExitCode;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

fn target(bind: &str) -> Option<SocketAddr> {
    let mut addr = bind.to_socket_addrs().ok()?.next()?;
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr {
            SocketAddr::V4(_) => [127, 0, 0, 1].into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    Some(addr)
}

fn probe(addr: SocketAddr, path: &str) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(TIMEOUT)).ok();
    stream.set_write_timeout(Some(TIMEOUT)).ok();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .map_err(|e| e.to_string())?;
    let mut head = [0u8; 64];
    let mut got = 0;
    while got < 12 {
        match stream.read(&mut head[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => return Err(e.to_string()),
        }
    }
    let status = String::from_utf8_lossy(&head[..got]);
    let status = status.lines().next().unwrap_or_default();
    if status.starts_with("HTTP/1.1 200") || status.starts_with("HTTP/1.0 200") {
        Ok(())
    } else {
        Err(format!("answered {status:?}"))
    }
}

fn main() -> ExitCode {
    let bind = std::env::var("HTTP_BIND").unwrap_or_else(|_| "0.0.0.0:8080".into());
    let path = std::env::args().nth(1).unwrap_or_else(|| "/healthz".into());
    let Some(addr) = target(&bind) else {
        eprintln!("healthcheck: HTTP_BIND={bind:?} is not an address");
        return ExitCode::FAILURE;
    };
    match probe(addr, &path) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("healthcheck: GET http://{addr}{path}: {e}");
            ExitCode::FAILURE
        }
    }
}
