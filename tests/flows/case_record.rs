//! The SOC lead's story: every incident has exactly one Kibana case that tells what happened —
//! status, tactics, assignee, the Slack thread — even when Kibana misbehaves along the way.

use crate::common::*;

#[tokio::test]
async fn the_case_follows_the_incident_from_open_to_closed() {
    let world = World::start().await.unwrap();
    let app = world
        .start_app_with(&[("CASE_ASSIGNEES", "windows=u_alice_profile_uid")])
        .await
        .unwrap();
    wait_for_approval_request(&world).await;

    let case = world.kibana.cases().remove(0);
    assert_eq!(case["status"], "open");
    assert_eq!(case["category"], "Persistence");
    assert_eq!(
        case["assignees"],
        serde_json::json!([{ "uid": "u_alice_profile_uid" }])
    );
    let tags: Vec<&str> = case["tags"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    assert!(tags.contains(&"tactic:Persistence"));
    assert!(tags.contains(&format!("host:{HOST}").as_str()));
    assert_eq!(case["settings"]["syncAlerts"], true);

    world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    // In progress once approved …
    world
        .kibana
        .wait_until("the case in progress", T, |s| {
            s.case_requests
                .iter()
                .any(|(m, _, b)| m == "PATCH" && b.to_string().contains("in-progress"))
        })
        .await
        .unwrap();
    wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    // … closed after every command succeeded, with the Slack thread linked.
    let case = wait_for_record(&world, &app).await;
    assert_eq!(case["status"], "closed");
    let description = case["description"].as_str().unwrap();
    assert!(
        description.contains("| Slack thread | https://"),
        "{description}"
    );
    let comments: Vec<String> = comment_texts(&case);
    assert!(
        comments
            .iter()
            .any(|c| c.starts_with("Approval requested in Slack: https://"))
    );
    for seq in 1..=8 {
        assert!(
            comments
                .iter()
                .any(|c| c.starts_with(&format!("**Command {seq}** on {HOST}"))),
            "a comment for command {seq}"
        );
    }
    assert!(comments.iter().any(|c| c.contains("Result: exit code 0")));
    finish(&world, app).await;
}

#[tokio::test]
async fn an_unreachable_or_flaky_kibana_loses_nothing_and_duplicates_nothing() {
    let world = World::start().await.unwrap();
    // The first case writes fail outright; a later comment reaches Kibana but its answer is lost.
    world.kibana.fail_cases_next(3, 503);
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    world.kibana.lose_case_responses_next(1);
    world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    let case = wait_for_record(&world, &app).await;

    assert_eq!(
        world.kibana.cases().len(),
        1,
        "one case despite the failures"
    );
    let comments: Vec<String> = comment_texts(&case);
    let mut unique = comments.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        comments.len(),
        "no comment twice: {comments:#?}"
    );
    for seq in 1..=8 {
        assert_eq!(
            comments
                .iter()
                .filter(|c| c.starts_with(&format!("**Command {seq}** on")))
                .count(),
            1,
            "command {seq}: {comments:#?}\n{:#?}",
            world
                .kibana
                .requests()
                .iter()
                .map(|r| format!("{} {} {}", r.method, r.path, r.status))
                .collect::<Vec<_>>()
        );
    }
    let alerts = case["comments"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["type"] == "alert")
        .count();
    assert_eq!(alerts, 1, "the alert attached once");
    finish(&world, app).await;
}

#[tokio::test]
async fn case_show_prints_the_local_audit_record_from_the_database_alone() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();
    wait_for_approval_request(&world).await;
    world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    let done = wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    wait_for_record(&world, &app).await;
    let case_id = app
        .ctx
        .store
        .incident(&done.id)
        .await
        .unwrap()
        .unwrap()
        .case_id
        .unwrap();
    finish(&world, app).await;

    // The operator's command, run as a separate process against the same database.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_triage-bot"))
        .args(["case", "show", &done.id])
        .env("DATABASE_URL", world.database_url())
        .env("KIBANA_URL", "https://kibana.example")
        .env_remove("KIBANA_PUBLIC_URL")
        .env_remove("KIBANA_SPACE")
        .current_dir(&world.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("Incident {}  [executed]", done.id)),
        "{stdout}"
    );
    assert!(stdout.contains(&format!(
        "https://kibana.example/app/security/cases/{case_id}"
    )));
    assert!(stdout.contains(&format!("approved (all) by {HANDLER_ID}")));
    assert!(stdout.contains("8. [remediation · changes state] Remove-Item -Path 'C:\\ProgramData\\odu\\odupd.exe' -Force → succeeded exit 0"), "{stdout}");
    assert!(stdout.contains("ApprovalDecided"));

    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_triage-bot"))
        .args(["case", "show", "no-such-incident"])
        .env("DATABASE_URL", world.database_url())
        .current_dir(&world.dir)
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no incident no-such-incident"));
}

#[tokio::test]
async fn an_update_at_a_stale_version_is_retried_at_the_current_one_keeping_the_analysts_edit() {
    use triage_bot::clients::kibana::{
        KibanaHttp,
        cases::{CasesClient, NewCase},
    };
    let world = World::start().await.unwrap();
    let settings = world.settings_with(&[]).unwrap();
    let cases = CasesClient::new(KibanaHttp::new(&settings.kibana).unwrap());
    let created = cases
        .create(NewCase {
            title: "[Critical] test".into(),
            description: "first".into(),
            tags: vec!["triage-bot".into()],
            severity: triage_bot::domain::Severity::Critical,
            category: None,
            assignee: None,
        })
        .await
        .unwrap();

    // An analyst retitles the case in Kibana: the version we hold is now stale.
    let resp = reqwest::Client::new()
        .patch(format!("{}/api/cases", world.kibana.url()))
        .header("kbn-xsrf", "true")
        .json(&serde_json::json!({ "cases": [{ "id": created.id, "version": created.version, "title": "retitled by an analyst" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    let updated = cases
        .update(
            &created.id,
            &created.version,
            serde_json::json!({ "status": "closed" }),
        )
        .await
        .unwrap();
    assert_eq!(updated.status, "closed");
    assert_eq!(updated.title, "retitled by an analyst");
    let statuses: Vec<u16> = world
        .kibana
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .map(|r| r.status)
        .collect();
    assert_eq!(
        statuses,
        [200, 409, 200],
        "our stale PATCH was refused, then retried at the current version"
    );
    validate_kibana_requests(&world).await;
}

#[tokio::test]
async fn cases_go_to_the_configured_space_with_api_key_auth() {
    let world = World::start().await.unwrap();
    world.kibana.require_auth("ApiKey c29jLWJvdDpzM2NyM3Q=");
    let app = world
        .start_app_with(&[
            ("KIBANA_SPACE", "soc"),
            ("KIBANA_API_KEY", "c29jLWJvdDpzM2NyM3Q="),
        ])
        .await
        .unwrap();
    wait_for_approval_request(&world).await;
    let stored = world
        .kibana
        .recorder()
        .read()
        .cases
        .iter()
        .map(|c| c.space.clone())
        .collect::<Vec<_>>();
    assert_eq!(stored, ["soc"]);
    assert!(
        world
            .kibana
            .requests()
            .iter()
            .all(|r| r.path.starts_with("/s/soc/") && r.status != 401)
    );
    let msg = top_level(&world).remove(0);
    assert!(
        msg.blocks
            .to_string()
            .contains("/s/soc/app/security/alerts/redirect/")
    );
    finish(&world, app).await;
}
