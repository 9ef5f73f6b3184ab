//! The engineer deploying triage-bot runs `check-config --connect`: every dependency is tried,
//! and each broken one is named with what to change. One healthy world, then one broken
//! dependency at a time; and the command's exit status and JSON as a deployment script sees them.

use crate::common::*;
use triage_bot::cli::check_config::{Check, connect_all};
use triage_bot::demo::{BOT_TOKEN, CONNECTOR_ID, WINRM_PASSWORD};

async fn checks(world: &World, overrides: &[(&str, &str)]) -> Vec<Check> {
    let settings = world.settings_with(overrides).unwrap();
    connect_all(&settings, Some(HOST)).await
}

/// The one failed check whose name starts with `name`, and its fix.
fn failed<'a>(checks: &'a [Check], name: &str) -> &'a Check {
    let failed: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(failed.len(), 1, "exactly one failure expected: {failed:#?}");
    assert!(failed[0].name.starts_with(name), "{failed:#?}");
    failed[0]
}

fn fix(c: &Check) -> &str {
    c.fix.as_deref().unwrap_or_default()
}

#[tokio::test]
async fn a_healthy_deployment_passes_every_check() {
    let world = World::start().await.unwrap();
    let checks = checks(&world, &[("SLACK_TRANSPORT", "http")]).await;
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
    for wanted in [
        "database",
        "elasticsearch: source security_alerts",
        "elasticsearch: source endpoint_alerts",
        "kibana: cases",
        "kibana: assistant connector",
        "slack: bot token",
        "slack: bot scopes",
        "slack: channel",
        "winrm: WS-FIN-042",
    ] {
        assert!(
            names.iter().any(|n| n.starts_with(wanted)),
            "{wanted} in {names:?}"
        );
    }
}

#[tokio::test]
async fn the_database_is_looked_at_not_changed() {
    let world = World::start().await.unwrap();
    // A new database: reachable, and every migration still to run — check-config runs none.
    let c = checks(&world, &[]).await;
    let db = c.iter().find(|c| c.name == "database").unwrap();
    assert!(db.ok, "{db:#?}");
    assert!(
        db.detail.contains("migrations to run at the next start"),
        "{db:#?}"
    );
    // Once the service has started it is up to date.
    let app = world.start_app().await.unwrap();
    let c = checks(&world, &[]).await;
    let db = c.iter().find(|c| c.name == "database").unwrap();
    assert!(db.detail.contains("schema up to date"), "{db:#?}");
    if world.database_url().starts_with("postgres") {
        assert!(db.detail.contains("several replicas"), "{db:#?}");
    }
    app.stop().await;
    // One that cannot be reached is named, with what to check, its password masked.
    let c = checks(
        &world,
        &[(
            "DATABASE_URL",
            "postgres://triage:hunter2@127.0.0.1:1/triage",
        )],
    )
    .await;
    let db = failed(&c, "database");
    assert!(fix(db).contains("DATABASE_URL"), "{db:#?}");
    assert!(!db.detail.contains("hunter2"), "{db:#?}");
}

#[tokio::test]
async fn refused_elasticsearch_credentials_name_the_settings() {
    let world = World::start().await.unwrap();
    world.es.require_auth("ApiKey the-right-key");
    let checks = checks(&world, &[("ELASTICSEARCH_API_KEY", "a-wrong-key")]).await;
    let bad: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(bad.len(), 2, "both sources: {bad:#?}");
    assert!(bad.iter().all(|c| fix(c).contains("ELASTICSEARCH_API_KEY")));
}

#[tokio::test]
async fn a_missing_connector_lists_the_ones_there_are() {
    let world = World::start().await.unwrap();
    let checks = checks(&world, &[("KIBANA_CONNECTOR_ID", "gpt-5-typo")]).await;
    let c = failed(&checks, "kibana: assistant connector gpt-5-typo");
    assert!(
        fix(c).contains("KIBANA_CONNECTOR_ID") && fix(c).contains(CONNECTOR_ID),
        "{c:#?}"
    );
}

#[tokio::test]
async fn refused_kibana_credentials_name_the_settings() {
    let world = World::start().await.unwrap();
    world.kibana.require_auth("ApiKey the-right-key");
    let checks = checks(&world, &[("KIBANA_API_KEY", "a-wrong-key")]).await;
    let bad: Vec<&Check> = checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(bad.len(), 2, "cases and the connector list: {bad:#?}");
    assert!(
        bad.iter().all(|c| fix(c).contains("KIBANA_API_KEY")),
        "{bad:#?}"
    );
}

#[tokio::test]
async fn a_wrong_slack_token_says_which_token_to_use() {
    let world = World::start().await.unwrap();
    let checks = checks(&world, &[("SLACK_BOT_TOKEN", "xoxb-wrong")]).await;
    let c = failed(&checks, "slack: bot token");
    assert!(
        fix(c).contains("SLACK_BOT_TOKEN") && fix(c).contains("xoxb-"),
        "{c:#?}"
    );
}

#[tokio::test]
async fn missing_scopes_are_listed() {
    let world = World::start().await.unwrap();
    world
        .slack
        .set_scopes(&["chat:write", "channels:history", "users:read"]);
    let checks = checks(&world, &[]).await;
    let c = failed(&checks, "slack: bot scopes");
    for scope in [
        "users:read.email",
        "usergroups:read",
        "groups:history",
        "app_mentions:read",
    ] {
        assert!(c.detail.contains(scope), "{c:#?}");
    }
}

#[tokio::test]
async fn a_bot_outside_the_alert_channel_is_told_to_invite_it() {
    let world = World::start().await.unwrap();
    world.slack.remove_bot_from(CHANNEL);
    let checks = checks(&world, &[]).await;
    let c = failed(&checks, "slack: channel");
    assert!(fix(c).contains("/invite"), "{c:#?}");
}

#[tokio::test]
async fn a_wrong_socket_mode_token_is_named() {
    let world = World::start().await.unwrap();
    let checks = checks(
        &world,
        &[
            ("SLACK_TRANSPORT", "socket"),
            ("SLACK_APP_TOKEN", "xapp-wrong"),
        ],
    )
    .await;
    let c = failed(&checks, "slack: Socket Mode app token");
    assert!(fix(c).contains("SLACK_APP_TOKEN"), "{c:#?}");
}

#[tokio::test]
async fn a_wrong_winrm_password_is_named() {
    let world = World::start().await.unwrap();
    world
        .winrm
        .set_auth(emulators::winrm::EmulatorAuth::stock());
    let checks = checks(&world, &[("WINRM_PASSWORD", "not-the-password")]).await;
    let c = failed(&checks, "winrm: WS-FIN-042");
    assert!(fix(c).contains("WINRM_PASSWORD"), "{c:#?}");
}

#[tokio::test]
async fn the_command_exits_non_zero_and_prints_json_for_machines() {
    let world = World::start().await.unwrap();
    // Async, so the emulators on this runtime keep answering while the command runs.
    let run = || {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_triage-bot"));
        cmd.args(["check-config", "--connect", "--json", "--winrm", HOST])
            .env_clear()
            .envs(world.env())
            .current_dir(&world.dir);
        async move { cmd.output().await.unwrap() }
    };
    let ok = run().await;
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&ok.stdout).unwrap();
    assert!(
        report["checks"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["ok"] == true)
    );

    world.slack.remove_bot_from(CHANNEL);
    let broken = run().await;
    assert!(!broken.status.success());
    let report: serde_json::Value = serde_json::from_slice(&broken.stdout).unwrap();
    let failed: Vec<&serde_json::Value> = report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["ok"] == false)
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert!(String::from_utf8_lossy(&broken.stderr).contains("1 required check(s) failed"));
    // Secrets never reach the report.
    let text = String::from_utf8_lossy(&broken.stdout);
    for secret in [BOT_TOKEN, SIGNING_SECRET, WINRM_PASSWORD] {
        assert!(!text.contains(secret), "{secret} leaked");
    }
}

#[tokio::test]
async fn read_only_cases_are_caught_and_the_write_test_leaves_nothing_behind() {
    let world = World::start().await.unwrap();
    let healthy = checks(&world, &[]).await;
    assert!(healthy.iter().all(|c| c.ok), "{healthy:#?}");
    assert!(world.kibana.cases().is_empty(), "the test case was deleted");

    world.kibana.forbid_case_writes();
    let checks = checks(&world, &[]).await;
    let c = failed(&checks, "kibana: cases");
    assert!(fix(c).contains("write cases"), "{c:#?}");
}

#[tokio::test]
async fn the_action_index_is_checked_when_configured() {
    let world = World::start().await.unwrap();
    world.es.index_doc(
        "triage-bot-actions",
        "a1",
        serde_json::json!({ "@timestamp": "2026-12-07T10:00:00Z" }),
    );
    let settings = world
        .settings_with(&[("INDEX_ACTION_INDEX", "triage-bot-actions")])
        .unwrap();
    let checks = triage_bot::cli::check_config::connect_all(&settings, None).await;
    let check = checks
        .iter()
        .find(|c| c.name == "elasticsearch: source index_action (triage-bot-actions)")
        .unwrap_or_else(|| panic!("{checks:?}"));
    assert!(check.ok, "{check:?}");
}
