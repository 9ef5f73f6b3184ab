//! Running the independent python clients (`elasticsearch`, `slack_sdk`, `pywinrm`) against the
//! emulators, from Rust tests.
//!
//! The packages are pinned in `emulators/checks/requirements.txt`. When they are not importable,
//! [`run_check`] installs them with pip into `target/pydeps` (a project-local folder, put on
//! `PYTHONPATH`), so `cargo test --workspace` passes on a fresh machine; if that install fails the
//! test fails with the pip output — it never skips, since a silent skip would let an emulator
//! drift from the real wire format unnoticed. `PYTHON` chooses the interpreter.

use std::path::PathBuf;
use std::process::Output;
use std::time::Duration;

use tokio::sync::OnceCell;

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn checks_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("checks")
}

fn pydeps_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("pydeps")
}

fn command() -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(python());
    let mut path = pydeps_dir().into_os_string();
    if let Some(existing) = std::env::var_os("PYTHONPATH") {
        path.push(":");
        path.push(existing);
    }
    cmd.env("PYTHONPATH", path).kill_on_drop(true);
    cmd
}

async fn importable() -> Result<bool, String> {
    let out = command()
        .args([
            "-c",
            "import elasticsearch, slack_sdk, winrm, openapi_schema_validator, yaml",
        ])
        .output()
        .await
        .map_err(|e| format!("cannot run `{}` ({e}); install Python 3", python()))?;
    Ok(out.status.success())
}

/// Makes sure the pinned packages can be imported, installing them once per process if needed.
pub async fn ensure_requirements() -> Result<(), String> {
    static READY: OnceCell<Result<(), String>> = OnceCell::const_new();
    READY
        .get_or_init(|| async {
            if importable().await? {
                return Ok(());
            }
            let requirements = checks_dir().join("requirements.txt");
            let out = command()
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--target",
                ])
                .arg(pydeps_dir())
                .arg("-r")
                .arg(&requirements)
                .output()
                .await
                .map_err(|e| format!("cannot run pip ({e})"))?;
            if !out.status.success() {
                return Err(format!(
                    "installing {} failed:\n{}",
                    requirements.display(),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            if importable().await? {
                Ok(())
            } else {
                Err("the python packages are still not importable after pip install".into())
            }
        })
        .await
        .clone()
}

/// Runs `emulators/checks/<script> <args…>` and returns its output; fails with the script's
/// stdout and stderr unless it exits 0 within two minutes.
pub async fn run_check(script: &str, args: &[String]) -> Result<String, String> {
    ensure_requirements().await?;
    let child = command().arg(checks_dir().join(script)).args(args).output();
    let out: Output = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .map_err(|_| format!("{script} did not finish within 120 s"))?
        .map_err(|e| format!("cannot run {script}: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    if !out.status.success() {
        return Err(format!(
            "{script} failed with {}\n--- stdout ---\n{stdout}\n--- stderr ---\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(stdout)
}
