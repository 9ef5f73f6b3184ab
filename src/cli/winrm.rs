//! `triage-bot winrm run`: one command on one host with the production WinRM client, printing
//! stdout, stderr and the exit code — for operators checking connectivity and credentials, and
//! for tests. The password comes from an environment variable or a file, never the command line
//! (which other local users can read in the process list).

use std::path::PathBuf;
use std::time::Duration;

use crate::clients::winrm::{TlsOptions, WinRmAuth, WinRmClient, WinRmConfig};
use crate::secret::Secret;

#[derive(clap::Subcommand, Debug)]
pub enum WinRmCommand {
    /// Run one PowerShell command on a host and print stdout, stderr and the exit code.
    Run(RunArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct RunArgs {
    /// `http://host:5985/wsman` (ntlm) or `https://host:5986/wsman` (basic).
    #[arg(long)]
    pub endpoint: String,
    /// `ntlm` (with message sealing, over http) or `basic` (over https).
    #[arg(long, default_value = "ntlm")]
    pub transport: String,
    /// `DOMAIN\user`, `user@domain` or a local account name.
    #[arg(long)]
    pub username: String,
    /// Name of the environment variable that holds the password.
    #[arg(long, conflicts_with = "password_file")]
    pub password_env: Option<String>,
    /// A file whose first line is the password.
    #[arg(long)]
    pub password_file: Option<PathBuf>,
    /// PEM file with the CA certificate(s) to trust for https.
    #[arg(long)]
    pub ca: Option<PathBuf>,
    /// Do not validate the https certificate (labs only; logged as a warning).
    #[arg(long)]
    pub insecure: bool,
    /// The PowerShell command.
    #[arg(long)]
    pub command: String,
    /// Run the command inside the approved-command wrapper (Format-List, error capture), as
    /// the service does; without it the command runs as a plain script.
    #[arg(long)]
    pub wrapped: bool,
    /// WS-Management OperationTimeout in seconds.
    #[arg(long, default_value_t = 20.0)]
    pub operation_timeout: f64,
    /// Deadline for the command, in seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
}

/// Reads the password from the named variable or the file (first line, without its line end).
pub fn password(args: &RunArgs) -> anyhow::Result<Secret> {
    match (&args.password_env, &args.password_file) {
        (Some(var), _) => {
            let v = std::env::var(var).map_err(|_| {
                anyhow::anyhow!("the environment variable {var} (--password-env) is not set")
            })?;
            Ok(Secret::new(v))
        }
        (None, Some(path)) => Secret::from_file(path),
        (None, None) => anyhow::bail!("give --password-env VAR or --password-file FILE"),
    }
}

/// The client configuration the arguments describe.
pub fn config(args: &RunArgs) -> anyhow::Result<WinRmConfig> {
    let auth = WinRmAuth::parse(&args.transport).ok_or_else(|| {
        anyhow::anyhow!(
            "--transport must be ntlm or basic, not {:?}",
            args.transport
        )
    })?;
    let secs = |v: f64, flag: &str| {
        if v.is_finite() && v > 0.0 {
            Ok(Duration::from_secs_f64(v))
        } else {
            Err(anyhow::anyhow!(
                "{flag} must be a positive number of seconds"
            ))
        }
    };
    let mut cfg = WinRmConfig::new(
        args.endpoint.clone(),
        args.username.clone(),
        password(args)?,
    );
    cfg.auth = auth;
    cfg.tls = TlsOptions {
        ca_file: args.ca.clone(),
        insecure: args.insecure,
    };
    cfg.operation_timeout = secs(args.operation_timeout, "--operation-timeout")?;
    cfg.read_timeout = cfg.operation_timeout + Duration::from_secs(10);
    cfg.command_timeout = secs(args.timeout, "--timeout")?;
    cfg.validate()?;
    Ok(cfg)
}

/// What `winrm run` prints.
pub fn render(stdout: &str, stderr: &str, exit_code: i64) -> String {
    let mut out = String::new();
    out.push_str("--- stdout ---\n");
    out.push_str(stdout);
    if !stdout.is_empty() && !stdout.ends_with('\n') {
        out.push('\n');
    }
    out.push_str("--- stderr ---\n");
    out.push_str(stderr);
    if !stderr.is_empty() && !stderr.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&format!("--- exit code: {exit_code}\n"));
    out
}

/// Runs the subcommand and returns what to print.
pub async fn run_to_string(cmd: &WinRmCommand) -> anyhow::Result<String> {
    match cmd {
        WinRmCommand::Run(args) => {
            let client = WinRmClient::new(config(args)?)?;
            let out = if args.wrapped {
                client.run_approved(&args.command).await
            } else {
                client.run_powershell(&args.command).await
            }
            // The error's own text already names its cause; as a chain it would print it twice.
            .map_err(|e| anyhow::anyhow!("{e}"))?;
            Ok(render(&out.stdout, &out.stderr, out.exit_code))
        }
    }
}

/// `triage-bot winrm …`.
pub async fn run(cmd: WinRmCommand) -> anyhow::Result<()> {
    print!("{}", run_to_string(&cmd).await?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clients::winrm::tests::{PASSWORD, USER, emulator};

    #[tokio::test]
    async fn cli_winrm_run_prints_stdout_stderr_and_the_exit_code() {
        let emu = emulator().await;
        emu.set_auth(emulators::winrm::EmulatorAuth::stock());
        emu.set_response("Get-Service", "Running  WinRM\r\n", "warning line\r\n", 3);
        // A variable name unique to this test: tests share the process environment.
        let var = "TRIAGE_BOT_TEST_CLI_WINRM_PASSWORD";
        // SAFETY: only this test reads or writes this variable.
        unsafe { std::env::set_var(var, PASSWORD) };
        let args = RunArgs {
            endpoint: emu.url(),
            transport: "ntlm".into(),
            username: format!("WIN-EMU01\\{USER}"),
            password_env: Some(var.into()),
            password_file: None,
            ca: None,
            insecure: false,
            command: "Get-Service".into(),
            wrapped: false,
            operation_timeout: 2.0,
            timeout: 10.0,
        };
        let printed = run_to_string(&WinRmCommand::Run(args.clone()))
            .await
            .unwrap();
        assert_eq!(
            printed,
            "--- stdout ---\nRunning  WinRM\r\n--- stderr ---\nwarning line\n--- exit code: 3\n"
        );
        assert!(
            emu.requests()
                .iter()
                .filter(|r| r.action.is_some())
                .all(|r| r.sealed)
        );
        // A password file works the same; a missing variable is a clear error naming it only.
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, format!("{PASSWORD}\n")).unwrap();
        let from_file = RunArgs {
            password_env: None,
            password_file: Some(file),
            wrapped: true,
            ..args.clone()
        };
        assert!(
            run_to_string(&WinRmCommand::Run(from_file))
                .await
                .unwrap()
                .contains("exit code: 3")
        );
        assert!(emu.executed().last().unwrap().wrapped);
        let missing = RunArgs {
            password_env: Some("TRIAGE_BOT_TEST_NO_SUCH_VAR".into()),
            ..args
        };
        let err = run_to_string(&WinRmCommand::Run(missing))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("TRIAGE_BOT_TEST_NO_SUCH_VAR"),
            "{err}"
        );
    }
}
