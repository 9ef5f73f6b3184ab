//! `emulators`: starts the Elasticsearch, Kibana, Slack and WinRM emulators on loopback, seeds a
//! little data, prints one JSON line with their URLs and serves until stdin closes or Ctrl-C.
//!
//! It owns nothing but that wiring. The python checks (`emulators/checks/*.py`) and humans point
//! real clients at the printed URLs:
//!
//! ```text
//! $ cargo run -p emulators --bin emulators
//! {"elasticsearch":"http://127.0.0.1:40001","kibana":"http://127.0.0.1:40002","slack":"http://127.0.0.1:40003/api/",...}
//! ```
//!
//! Environment: `SLACK_BOT_TOKEN` (default `xoxb-emulator-token`), `WINRM_USERNAME` /
//! `WINRM_PASSWORD` (default `Administrator` / `Passw0rd!`). Pass `--ignore-stdin` to run with a
//! closed stdin (e.g. in the background) and stop only on Ctrl-C.

use emulators::elasticsearch::ElasticEmulator;
use emulators::kibana::KibanaEmulator;
use emulators::slack::SlackEmulator;
use emulators::winrm::{WinRmEmulator, WinRmEmulatorConfig};
use tokio::io::AsyncReadExt;

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| default.to_string())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let ignore_stdin = std::env::args().any(|a| a == "--ignore-stdin");
    let slack_token = env_or("SLACK_BOT_TOKEN", "xoxb-emulator-token");
    let winrm_user = env_or("WINRM_USERNAME", "Administrator");
    let winrm_password = env_or("WINRM_PASSWORD", "Passw0rd!");

    let es = ElasticEmulator::start().await?;
    es.seed_sample_alerts();

    let kibana = KibanaEmulator::start().await?;
    // Without a scripted queue, answer every triage request with the same plausible verdict.
    kibana.set_responder(|call| {
        format!(
            "### Triage summary\n\nVerdict: likely malicious (emulated answer).\n\n\
             Recommended commands:\n```powershell\nGet-Process -Name WmiPrvSE\n```\n\n\
             (question was {} characters)",
            call.last_user_content.chars().count()
        )
    });

    let slack = SlackEmulator::start(&slack_token).await?;
    slack.add_user(
        "U0ALICE",
        "alice",
        "Alice Analyst",
        Some("alice@example.com"),
    );
    slack.add_user("U0BOB", "bob", "Bob Responder", Some("bob@example.com"));
    slack.add_usergroup("S0SOC", &["U0ALICE", "U0BOB"]);

    let winrm = WinRmEmulator::start(WinRmEmulatorConfig {
        host_name: "WS-FIN-042".to_string(),
        username: winrm_user.clone(),
        password: winrm_password.clone(),
    })
    .await?;
    winrm.set_default_response("ok\r\n", "", 0);

    let line = serde_json::json!({
        "elasticsearch": es.url(),
        "kibana": kibana.url(),
        "slack": slack.url(),
        "winrm": winrm.url(),
        "slack_bot_token": slack_token,
        "winrm_username": winrm_user,
        "winrm_password": winrm_password,
    });
    println!("{line}");

    let stdin_closed = async {
        if ignore_stdin {
            return std::future::pending::<()>().await;
        }
        let mut stdin = tokio::io::stdin();
        let mut buf = [0u8; 256];
        // Any read error counts as closed: the parent is gone either way.
        while let Ok(n) = stdin.read(&mut buf).await {
            if n == 0 {
                break;
            }
        }
    };
    tokio::select! {
        () = stdin_closed => {}
        r = tokio::signal::ctrl_c() => r?,
    }
    Ok(())
}
