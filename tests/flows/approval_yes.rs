//! The SOC analyst's main story: a critical alert arrives, the AI proposes commands, the tagged
//! handler clicks Yes in Slack, the commands run on the host, and the Kibana case tells it all.

use crate::common::*;

#[tokio::test]
async fn a_critical_alert_is_triaged_approved_run_and_recorded() {
    let world = World::start().await.unwrap();
    let app = world.start_app().await.unwrap();

    // The alert is picked up and triaged; Slack gets exactly one approval message.
    wait_for_approval_request(&world).await;
    let msgs = top_level(&world);
    assert_eq!(msgs.len(), 1, "exactly one approval message");
    let msg = &msgs[0];
    assert_eq!(msg.channel, CHANNEL);
    assert_eq!(
        block_types(&msg.blocks),
        [
            "header", "section", "section", "section", "section", "section", "context", "actions"
        ]
    );
    assert!(
        msg.blocks[0]["text"]["text"]
            .as_str()
            .unwrap()
            .contains("Registry Run Key Set by WMI Provider Host")
    );
    let text = all_text(&msg.blocks);
    assert!(
        text.contains(&format!("<@{HANDLER_ID}>")),
        "the handler is tagged"
    );
    assert!(
        msg.text.contains(&format!("<@{HANDLER_ID}>")),
        "the fallback text tags the handler too"
    );
    assert!(text.contains("10.20.4.42"));
    for (cmd, _) in COMMANDS {
        let shown = cmd
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        assert!(
            text.contains(
                &serde_json::to_string(&shown)
                    .unwrap()
                    .trim_matches('"')
                    .to_string()
            ),
            "command shown: {cmd}"
        );
    }
    let actions = msg.blocks.as_array().unwrap().last().unwrap();
    let ids: Vec<&str> = actions["elements"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        [
            ACTION_APPROVE,
            ACTION_APPROVE_INVESTIGATION,
            triage_bot::pipeline::approval::blocks::ACTION_EDIT,
            triage_bot::pipeline::approval::blocks::ACTION_REQUEST_CHANGES,
            ACTION_DECLINE
        ]
    );
    assert!(
        text.contains("/app/security/alerts/redirect/"),
        "a link to the alert in Kibana"
    );
    assert!(
        world.winrm.executed().is_empty(),
        "nothing runs before approval"
    );

    // The handler clicks Yes.
    let (status, _) = world.click(&app, HANDLER_ID, ACTION_APPROVE).await.unwrap();
    assert_eq!(status, 200);
    let done = wait_for_state(&app, IncidentState::Executed, T)
        .await
        .unwrap();
    wait_for_batch_summary(&world).await;

    // Exactly the approved commands ran, in order, on the alert's host, each in a closed shell.
    let ran: Vec<String> = world
        .winrm
        .executed()
        .into_iter()
        .map(|e| e.script.expect("PowerShell -EncodedCommand"))
        .collect();
    let expected: Vec<String> = COMMANDS.iter().map(|(c, _)| c.to_string()).collect();
    assert_eq!(ran, expected);
    assert_eq!(world.winrm.open_shells(), 0, "every shell was deleted");

    // Slack: the message was updated in place (no buttons, who decided), results are in the thread.
    let msg = top_level(&world).remove(0);
    assert!(msg.updated >= 1);
    assert!(
        !block_types(&msg.blocks).contains(&"actions".to_string()),
        "buttons removed"
    );
    assert!(all_text(&msg.blocks).contains(&format!("*Approved* by <@{HANDLER_ID}>")));
    let replies = thread_replies(&world);
    assert!(
        replies
            .iter()
            .all(|r| r.thread_ts.as_deref() == Some(msg.ts.as_str()))
    );
    let results: Vec<_> = replies
        .iter()
        .filter(|r| r.text.contains("exit code 0"))
        .collect();
    assert_eq!(results.len(), 8, "one result per command in the thread");
    assert!(results[0].text.contains("WmiPrvSE"), "output is shown");
    assert!(
        replies
            .iter()
            .any(|r| r.text.contains("8 succeeded, 0 failed"))
    );

    // Kibana: one case, alert attached by concrete index, outputs in the description.
    let case = wait_for_record(&world, &app).await;
    assert_eq!(world.kibana.cases().len(), 1, "exactly one case");
    assert_eq!(case["owner"], "securitySolution");
    assert_eq!(case["severity"], "critical");
    assert_eq!(
        case["title"],
        format!("[Critical] Registry Run Key Set by WMI Provider Host on {HOST}")
    );
    let tags: Vec<&str> = case["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap())
        .collect();
    assert!(tags.contains(&"triage-bot"));
    assert!(tags.contains(&format!("triage-bot:incident:{}", done.id).as_str()));
    let comments = case["comments"].as_array().unwrap();
    let alert = comments
        .iter()
        .find(|c| c["type"] == "alert")
        .expect("alert attached");
    assert_eq!(alert["alertId"], ALERT_ID);
    assert_eq!(alert["index"], ALERT_INDEX);
    assert_eq!(
        alert["rule"]["name"],
        "Registry Run Key Set by WMI Provider Host"
    );
    let description = case["description"].as_str().unwrap();
    assert!(description.chars().count() <= 30_000);
    assert!(description.contains(&format!("**approved** by Slack user {HANDLER_ID}")));
    assert!(
        description.contains("185.220.101.7"),
        "command output recorded"
    );
    assert!(comments.iter().any(|c| {
        c["comment"]
            .as_str()
            .is_some_and(|t| t.starts_with("**Approved**"))
    }));

    finish(&world, app).await;
}
