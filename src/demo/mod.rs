//! The emulated world the demo (`triage-bot demo`, [`crate::cli::demo`]) and the flow tests run
//! against: [`World`] — the emulators, seeded with one critical alert, a scripted assistant, a
//! Slack workspace and a Windows host — plus acting as Slack (signed clicks) and waiting on
//! recorded state. Built only with the default `demo` feature, so a production build
//! (`--no-default-features`) carries no emulators.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::app::{App, RunningApp};
use crate::config::Settings;
use crate::domain::IncidentState;
use emulators::elasticsearch::ElasticEmulator;
use emulators::kibana::KibanaEmulator;
use emulators::slack::SlackEmulator;
use emulators::winrm::{WinRmEmulator, WinRmEmulatorConfig};

pub use crate::samples::*;

/// The GenAI connector the demo's Kibana has, and the assistant uses.
pub const CONNECTOR_ID: &str = "demo-gpt-4o";

/// The emulated outside world.
pub struct World {
    pub es: ElasticEmulator,
    pub kibana: KibanaEmulator,
    pub slack: SlackEmulator,
    pub winrm: WinRmEmulator,
    pub dir: PathBuf,
    /// Where the service keeps its record: a SQLite file in `dir`, or a scratch PostgreSQL
    /// database when the tests run on PostgreSQL.
    database_url: String,
    _tmp: tempfile::TempDir,
}

impl World {
    /// Starts the emulators and seeds the scenario: one critical alert (timestamped now), a
    /// scripted assistant, the handler in Slack, and the host's answers to the commands.
    pub async fn start() -> anyhow::Result<Self> {
        let postgres = if crate::config::test_on_postgres() {
            Some(crate::config::test_postgres().ok_or_else(|| {
                anyhow::anyhow!("TRIAGE_BOT_TEST_DATABASE=postgres needs TRIAGE_BOT_TEST_POSTGRES")
            })?)
        } else {
            None
        };
        Self::start_on(postgres.as_deref()).await
    }

    /// [`Self::start`], the service's record in a fresh database on the PostgreSQL server of
    /// `postgres` (an admin URL), or in a SQLite file when `None`.
    pub async fn start_on(postgres: Option<&str>) -> anyhow::Result<Self> {
        // Quiet unless RUST_LOG asks: the demo prints its own timeline, tests capture logs.
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        let _ = crate::telemetry::prometheus();
        let tmp = tempfile::tempdir()?;
        let es = ElasticEmulator::start().await?;
        let kibana = KibanaEmulator::start().await?;
        let slack = SlackEmulator::start(BOT_TOKEN).await?;
        let winrm = WinRmEmulator::start(WinRmEmulatorConfig {
            host_name: HOST.into(),
            username: WINRM_USER.into(),
            password: WINRM_PASSWORD.into(),
        })
        .await?;
        kibana.add_connector(CONNECTOR_ID, ".gen-ai", "OpenAI GPT-4o");
        slack.add_user(HANDLER_ID, "alice", HANDLER_NAME, Some("alice@example.com"));
        slack.add_user(
            OTHER_USER,
            "mallory",
            "Mallory Intern",
            Some("mallory@example.com"),
        );
        let answer = triage_answer();
        kibana.set_responder(move |call| {
            if call.last_user_content.starts_with("Who handles") {
                format!("{HANDLER_NAME}.")
            } else {
                answer.clone()
            }
        });
        for (cmd, out) in COMMANDS {
            winrm.set_response(cmd, out, "", 0);
        }
        // What `check-config --connect --winrm HOST` runs.
        winrm.set_response("$env:COMPUTERNAME", &format!("{HOST}\r\n"), "", 0);
        es.index_doc(
            ALERT_INDEX,
            ALERT_ID,
            alert_document(ALERT_ID, &chrono::Utc::now().to_rfc3339()),
        );
        let database_url = if let Some(admin) = postgres {
            crate::store::Store::scratch_postgres(admin).await?
        } else {
            format!(
                "sqlite://{}?mode=rwc",
                tmp.path().join("triage-bot.db").display()
            )
        };
        Ok(Self {
            database_url,
            dir: tmp.path().to_path_buf(),
            es,
            kibana,
            slack,
            winrm,
            _tmp: tmp,
        })
    }

    pub fn database_url(&self) -> String {
        self.database_url.clone()
    }

    /// The environment a deployment would set, pointing at the emulators.
    pub fn env(&self) -> HashMap<String, String> {
        let pairs = [
            ("DATABASE_URL", self.database_url()),
            ("HTTP_BIND", "127.0.0.1:0".into()),
            ("ELASTICSEARCH_URL", self.es.url()),
            ("KIBANA_URL", self.kibana.url()),
            ("KIBANA_CONNECTOR_ID", CONNECTOR_ID.into()),
            ("SLACK_API_URL", self.slack.url()),
            ("SLACK_BOT_TOKEN", BOT_TOKEN.into()),
            ("SLACK_SIGNING_SECRET", SIGNING_SECRET.into()),
            ("SLACK_CHANNEL", CHANNEL.into()),
            ("WINRM_HOST_MAP", format!("{HOST}={}", self.winrm.url())),
            ("WINRM_USERNAME", WINRM_USER.into()),
            ("WINRM_PASSWORD", WINRM_PASSWORD.into()),
            ("WINRM_OPERATION_TIMEOUT_SECS", "2".into()),
            ("POLL_INTERVAL_SECS", "0.2".into()),
            ("WORKER_TICK_SECS", "0.2".into()),
            ("RETRY_BASE_SECS", "0.05".into()),
        ];
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    pub fn settings_with(&self, overrides: &[(&str, &str)]) -> anyhow::Result<Settings> {
        let mut env = self.env();
        for (k, v) in overrides {
            env.insert(k.to_string(), v.to_string());
        }
        Ok(Settings::from_lookup(&|k| env.get(k).cloned())?)
    }

    /// The app with some settings changed, as a deployment's environment would.
    pub async fn start_app_with(&self, overrides: &[(&str, &str)]) -> anyhow::Result<RunningApp> {
        App::start(self.settings_with(overrides)?, None).await
    }

    pub async fn start_app(&self) -> anyhow::Result<RunningApp> {
        App::start(self.settings_with(&[])?, None).await
    }

    /// Acts as Slack: a signed block_actions click on the approval message.
    pub async fn click(
        &self,
        app: &RunningApp,
        user: &str,
        action_id: &str,
    ) -> anyhow::Result<(u16, String)> {
        self.click_at(
            app,
            user,
            action_id,
            chrono::Utc::now().timestamp(),
            SIGNING_SECRET,
        )
        .await
    }

    pub async fn click_at(
        &self,
        app: &RunningApp,
        user: &str,
        action_id: &str,
        timestamp: i64,
        secret: &str,
    ) -> anyhow::Result<(u16, String)> {
        self.click_url(&app.url(), user, action_id, timestamp, secret)
            .await
    }

    /// Acts as Slack towards the app at `app_url` (a separate process, say): a signed click.
    pub async fn click_url(
        &self,
        app_url: &str,
        user: &str,
        action_id: &str,
        timestamp: i64,
        secret: &str,
    ) -> anyhow::Result<(u16, String)> {
        let msg = self
            .slack
            .messages()
            .into_iter()
            .find(|m| m.thread_ts.is_none())
            .ok_or_else(|| anyhow::anyhow!("no approval message posted"))?;
        let value = button_value(&msg.blocks, action_id)
            .ok_or_else(|| anyhow::anyhow!("the message has no {action_id} button"))?;
        let name = if user == HANDLER_ID {
            "alice"
        } else {
            "someone"
        };
        let payload = emulators::slack::block_actions_payload(
            user,
            name,
            &msg.channel,
            &msg.ts,
            action_id,
            &value,
        );
        emulators::slack::post_interaction(
            &format!("{app_url}/slack/interactions"),
            secret,
            &payload,
            timestamp,
        )
        .await
    }
}

impl World {
    /// Acts as Slack: a signed click on the message `message_ts` carrying exactly `value` — as a
    /// stale client or a forger would send it.
    pub async fn click_value(
        &self,
        app: &RunningApp,
        user: &str,
        message_ts: &str,
        action_id: &str,
        value: &str,
    ) -> anyhow::Result<(u16, String)> {
        let payload = emulators::slack::block_actions_payload(
            user, "someone", CHANNEL, message_ts, action_id, value,
        );
        let url = format!("{}/slack/interactions", app.url());
        emulators::slack::post_interaction(
            &url,
            SIGNING_SECRET,
            &payload,
            chrono::Utc::now().timestamp(),
        )
        .await
    }
}

/// The `value` of the button with `action_id` in a message's blocks.
pub fn button_value(blocks: &Value, action_id: &str) -> Option<String> {
    blocks
        .as_array()?
        .iter()
        .filter_map(|b| b.get("elements")?.as_array())
        .flatten()
        .find(|e| e.get("action_id").and_then(Value::as_str) == Some(action_id))?
        .get("value")?
        .as_str()
        .map(String::from)
}

/// Polls the database every 20 ms until `check` answers `Ok(Some(_))`, or fails after `timeout`
/// with `what` and the last thing `check` saw. The database is the app's record, so this waits on
/// recorded state, never on time alone.
async fn poll_db<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<(Option<T>, String)>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let (found, seen) = check().await?;
        if let Some(v) = found {
            return Ok(v);
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}; {seen}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until an incident reaches `state`.
pub async fn wait_for_state(
    app: &RunningApp,
    state: IncidentState,
    timeout: Duration,
) -> anyhow::Result<crate::store::IncidentRow> {
    poll_db(timeout, &format!("an incident in {state}"), || async {
        let incidents = app.ctx.store.incidents().await?;
        let states: Vec<IncidentState> = incidents.iter().map(|i| i.state).collect();
        Ok((
            incidents.into_iter().find(|i| i.state == state),
            format!("states now: {states:?}"),
        ))
    })
    .await
}

/// Waits until at least `n` incidents are in `state`.
pub async fn wait_for_incidents(
    app: &RunningApp,
    state: IncidentState,
    n: usize,
    timeout: Duration,
) -> anyhow::Result<Vec<crate::store::IncidentRow>> {
    poll_db(timeout, &format!("{n} incidents in {state}"), || async {
        let incidents = app.ctx.store.incidents().await?;
        let there: Vec<_> = incidents.into_iter().filter(|i| i.state == state).collect();
        let seen = format!("{} so far", there.len());
        Ok(((there.len() >= n).then_some(there), seen))
    })
    .await
}

/// Indexes a critical alert like the sample one, on another host.
pub fn index_alert_on(world: &World, id: &str, host: &str) {
    let mut doc = alert_document(id, &chrono::Utc::now().to_rfc3339());
    doc["host"]["name"] = serde_json::json!(host);
    doc["host"]["hostname"] = serde_json::json!(host);
    world.es.index_doc(ALERT_INDEX, id, doc);
}

/// Waits until no queued side effect is left to perform.
pub async fn wait_until_settled(app: &RunningApp, timeout: Duration) -> anyhow::Result<()> {
    poll_db(timeout, "the outbox to drain", || async {
        let busy = app.ctx.store.unfinished_jobs().await?;
        Ok((
            (busy == 0).then_some(()),
            format!("{busy} jobs still queued"),
        ))
    })
    .await
}
