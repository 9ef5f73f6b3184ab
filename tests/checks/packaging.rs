//! The packaging stays consistent with the code and with itself: the Docker build image is the
//! Rust release `Cargo.toml` names and builds without the demo; the image runs unprivileged with
//! its database on the volume; the container's health probe (`deploy/healthcheck.rs`) passes on a
//! 200 and fails on anything else, against a live server; the systemd unit keeps its hardening and
//! passes `systemd-analyze verify` where that tool exists; and every stop timeout (unit, compose)
//! leaves room for the service's own shutdown grace.
//!
//! No Docker engine is needed: the image itself is not built here.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(path: &str) -> String {
    std::fs::read_to_string(root().join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The value of the first `key = "value"` line (Cargo.toml).
fn toml_value(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| {
            let (k, v) = l.split_once('=')?;
            (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_else(|| panic!("no {key} in Cargo.toml"))
}

/// The value of every `Key=value` line of a systemd unit, in order.
fn unit_values(unit: &str, key: &str) -> Vec<String> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(|v| v.trim().to_string())
        .collect()
}

#[test]
fn the_build_image_is_the_rust_release_cargo_toml_names_and_leaves_the_demo_out() {
    let rust_version = toml_value(&read("Cargo.toml"), "rust-version");
    let dockerfile = read("Dockerfile");
    assert!(
        dockerfile.contains(&format!("ARG RUST_VERSION={rust_version}\n")),
        "the Dockerfile's RUST_VERSION is not Cargo.toml's rust-version {rust_version}"
    );
    assert!(dockerfile.contains("FROM rust:${RUST_VERSION}-"));
    assert!(
        dockerfile.contains("cargo build --release --locked --no-default-features"),
        "the image must be built without the demo feature"
    );
}

#[test]
fn the_image_runs_unprivileged_with_its_database_on_the_volume() {
    let dockerfile = read("Dockerfile");
    let user = dockerfile
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(
        !matches!(user.trim(), "USER root" | "USER 0" | "USER 0:0"),
        "{user}"
    );
    assert!(dockerfile.contains("DATABASE_URL=\"sqlite:///data/triage-bot.db?mode=rwc\""));
    assert!(dockerfile.contains("VOLUME [\"/data\"]"));
    assert!(dockerfile.contains("--chown=65532:65532 /out/data /data"));
    assert!(
        dockerfile.contains("CMD [\"/usr/local/bin/healthcheck\", \"/healthz\"]")
            && dockerfile.contains("/out/healthcheck /usr/local/bin/"),
        "the HEALTHCHECK must run the probe the image ships"
    );
    let compose = read("compose.yaml");
    assert!(compose.contains("DATABASE_URL: \"sqlite:///data/triage-bot.db?mode=rwc\""));
    assert!(compose.contains("- triage-bot-data:/data"));
    assert!(compose.contains("env_file: .env"));

    let ignore = read(".dockerignore");
    for kept_out in ["**/.env", "**/*.db", "**/target/"] {
        assert!(
            ignore.lines().any(|l| l == kept_out),
            ".dockerignore lacks {kept_out}"
        );
    }
}

/// A one-request-at-a-time HTTP server: `/healthz` answers 200, anything else 503. Returns the
/// port and the request lines it saw.
fn tiny_server(requests: usize) -> (u16, std::thread::JoinHandle<Vec<String>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handle = std::thread::spawn(move || {
        let mut seen = Vec::new();
        for stream in listener.incoming().take(requests) {
            let mut stream = stream.unwrap();
            // The whole request head, however it arrives.
            let mut buf = Vec::new();
            let mut chunk = [0u8; 256];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut chunk).unwrap() {
                    0 => break,
                    n => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let first = String::from_utf8_lossy(&buf)
                .lines()
                .next()
                .unwrap_or_default()
                .to_string();
            let status = if first.starts_with("GET /healthz ") {
                "200 OK"
            } else {
                "503 Service Unavailable"
            };
            seen.push(first);
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            );
        }
        seen
    });
    (port, handle)
}

#[test]
fn the_health_probe_passes_on_200_and_fails_otherwise() {
    let router = read("src/http/mod.rs");
    assert!(
        router.contains(".route(\"/healthz\""),
        "the service no longer serves /healthz, which the image's HEALTHCHECK probes"
    );

    let dir = tempfile::tempdir().unwrap();
    let probe = dir.path().join("healthcheck");
    let built = Command::new("rustc")
        .args(["--edition", "2024", "-C", "opt-level=s", "-o"])
        .arg(&probe)
        .arg(root().join("deploy/healthcheck.rs"))
        .output()
        .expect("rustc runs");
    assert!(
        built.status.success(),
        "deploy/healthcheck.rs does not compile:\n{}",
        String::from_utf8_lossy(&built.stderr)
    );
    let run = |bind: &str, path: Option<&str>| {
        let mut cmd = Command::new(&probe);
        cmd.env_clear().env("HTTP_BIND", bind);
        if let Some(p) = path {
            cmd.arg(p);
        }
        cmd.output().unwrap()
    };

    let (port, server) = tiny_server(2);
    // 0.0.0.0 (the service's default bind) is probed on the loopback address.
    let healthy = run(&format!("0.0.0.0:{port}"), None);
    assert!(
        healthy.status.success(),
        "{}",
        String::from_utf8_lossy(&healthy.stderr)
    );
    let unready = run(&format!("127.0.0.1:{port}"), Some("/readyz"));
    assert!(!unready.status.success());
    assert!(String::from_utf8_lossy(&unready.stderr).contains("503"));
    assert_eq!(
        server.join().unwrap(),
        ["GET /healthz HTTP/1.1", "GET /readyz HTTP/1.1"]
    );

    // Nobody listening: a failure, not a hang.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    assert!(!run(&format!("127.0.0.1:{port}"), None).status.success());
    assert!(!run("not an address", None).status.success());
}

#[test]
fn the_systemd_unit_is_hardened_and_verifies() {
    let unit = read("deploy/triage-bot.service");
    for (key, value) in [
        ("DynamicUser", "yes"),
        ("StateDirectory", "triage-bot"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("NoNewPrivileges", "yes"),
        ("PrivateTmp", "yes"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("EnvironmentFile", "/etc/triage-bot/env"),
        ("KillSignal", "SIGTERM"),
        ("ExecStart", "/usr/local/bin/triage-bot serve"),
    ] {
        assert!(
            unit_values(&unit, key).iter().any(|v| v == value),
            "deploy/triage-bot.service lacks {key}={value}"
        );
    }

    // The real check, where the tool exists: systemd's own parser, with ExecStart pointed at the
    // binary this test run built (verify refuses a missing executable).
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("systemd-analyze is not installed: the unit's syntax was not verified");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("triage-bot.service");
    std::fs::write(
        &copy,
        unit.replace(
            "/usr/local/bin/triage-bot",
            env!("CARGO_BIN_EXE_triage-bot"),
        ),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&copy)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify: {stderr}"
    );
}

#[test]
fn stop_timeouts_leave_room_for_the_shutdown_grace() {
    let unit = read("deploy/triage-bot.service");
    let unit_secs: u64 = unit_values(&unit, "TimeoutStopSec")
        .first()
        .expect("TimeoutStopSec")
        .parse()
        .expect("TimeoutStopSec in whole seconds");
    let compose = read("compose.yaml");
    let compose_secs: u64 = compose
        .lines()
        .find_map(|l| l.trim().strip_prefix("stop_grace_period: "))
        .and_then(|v| v.strip_suffix('s'))
        .expect("stop_grace_period: Ns in compose.yaml")
        .parse()
        .unwrap();
    assert_eq!(unit_secs, compose_secs, "the unit and compose disagree");
    // Docker's default is 10 s; the unit's comment and the docs promise more.
    assert!(unit_secs >= 60, "{unit_secs}");
    assert!(read("Dockerfile").contains(&format!("--stop-timeout {unit_secs}")));
    assert!(read("README.md").contains(&format!("--stop-timeout {unit_secs}")));

    // When the service documents its own grace period, both timeouts must exceed it.
    let grace = read(".env.example").lines().find_map(|l| {
        l.trim_start_matches(['#', ' '])
            .strip_prefix("SHUTDOWN_GRACE_SECS=")
            .and_then(|v| v.trim().parse::<u64>().ok())
    });
    if let Some(grace) = grace {
        assert!(
            grace + 5 <= unit_secs,
            "SHUTDOWN_GRACE_SECS={grace} leaves too little of TimeoutStopSec={unit_secs}"
        );
    }
}
