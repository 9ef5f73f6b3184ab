//! The assistant backend is configuration: the same triage runs against the Kibana Security AI
//! Assistant (with a space, basic auth and a stored system prompt), Kibana Agent Builder, and an
//! OpenAI-compatible streaming server — each through the app against its emulator.

use std::sync::Arc;

use crate::common::*;
use emulators::openai::{Ending, OpenAiEmulator};
use triage_bot::app::App;
use triage_bot::clients::ai::Assistant;
use triage_bot::config::OpenAiSettings;

const HANDLER_NAME: &str = "Alice Analyst";

async fn openai_world() -> (World, OpenAiEmulator) {
    let world = World::start().await.unwrap();
    let openai = OpenAiEmulator::start().await.unwrap();
    openai.require_key("sk-test-key");
    let answer = triage_bot::samples::triage_answer();
    openai.set_responder(move |call| {
        if call.last_user_content().starts_with("Who handles") {
            format!("{HANDLER_NAME}.")
        } else {
            answer.clone()
        }
    });
    (world, openai)
}

#[tokio::test]
async fn an_openai_compatible_server_triages_over_sse() {
    let (world, openai) = openai_world().await;
    let base = openai.base_url();
    let settings = world
        .settings_with(&[
            ("ASSISTANT", "openai"),
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_MODEL", "llama3.1:8b"),
            ("OPENAI_API_KEY", "sk-test-key"),
        ])
        .unwrap();
    let app = App::start(settings, None).await.unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    let triage = incident.triage().unwrap();
    assert_eq!(triage.investigation.len(), 5);
    assert_eq!(triage.remediation.len(), 3);
    assert_eq!(incident.handler_slack_id.as_deref(), Some(HANDLER_ID));
    assert!(
        incident.conversation_id.is_some(),
        "the client keeps a conversation per incident"
    );
    let calls = openai.calls();
    let triage_call = calls
        .iter()
        .find(|c| {
            c.last_user_content()
                .contains("BEGIN ALERT (untrusted data)")
        })
        .expect("the triage prompt went to the model server");
    assert!(triage_call.stream);
    assert_eq!(
        triage_call.response_format, None,
        "structured output is opt-in for servers other than api.openai.com"
    );
    assert_eq!(triage_call.model, "llama3.1:8b");
    assert_eq!(
        triage_call.authorization.as_deref(),
        Some("Bearer sk-test-key")
    );
    assert!(
        world.kibana.calls().is_empty(),
        "the Kibana assistant was not asked"
    );
    wait_for_approval_request(&world).await;
    app.stop().await;
}

#[tokio::test]
async fn the_openai_client_keeps_history_and_retries_only_what_can_succeed() {
    let (_world, openai) = openai_world().await;
    let settings = OpenAiSettings {
        base_url: openai.base_url(),
        api_key: Some(triage_bot::secret::Secret::new("sk-test-key".to_string())),
        model: "m".into(),
        timeout: std::time::Duration::from_secs(10),
        tls: Default::default(),
        structured_output: false,
    };
    let client: Arc<dyn Assistant> = Arc::new(
        triage_bot::clients::openai::OpenAiClient::new(&settings)
            .unwrap()
            .with_retries(2),
    );
    let conv = client.start_conversation("t").await.unwrap().unwrap();
    openai.push_answer("first answer");
    let r = client.ask("first question", Some(&conv)).await.unwrap();
    assert_eq!(r.text, "first answer");
    assert_eq!(r.conversation_id.as_deref(), Some(conv.as_str()));
    // A stream cut before [DONE] is retried; the retry's answer is used.
    openai.push_answer_ending("partial", Ending::Truncated);
    openai.push_answer("second answer");
    let r = client.ask("second question", Some(&conv)).await.unwrap();
    assert_eq!(r.text, "second answer");
    let calls = openai.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(
        calls[2].messages,
        vec![
            ("user".to_string(), "first question".to_string()),
            ("assistant".to_string(), "first answer".to_string()),
            ("user".to_string(), "second question".to_string()),
        ],
        "the stateless API gets the conversation's history"
    );
    // A mid-stream error is reported with the server's message and not retried.
    openai.push_answer_ending("x", Ending::Error("model overloaded".into()));
    let e = client.ask("third", None).await.unwrap_err();
    assert!(e.to_string().contains("model overloaded"), "{e}");
    assert_eq!(openai.calls().len(), 4);
    // A wrong key is a 401 with OpenAI's message, not retried, and the key is not echoed.
    let bad = triage_bot::clients::openai::OpenAiClient::new(&OpenAiSettings {
        api_key: Some(triage_bot::secret::Secret::new("sk-wrong".to_string())),
        ..settings
    })
    .unwrap()
    .with_retries(2);
    let e = Assistant::ask(&bad, "q", None).await.unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("401") && msg.contains("Incorrect API key"),
        "{msg}"
    );
    assert!(!msg.contains("sk-wrong"));
    assert_eq!(openai.calls().len(), 4, "a 401 is never retried");
}

#[tokio::test]
async fn structured_output_gets_the_triage_as_json() {
    let (world, openai) = openai_world().await;
    let markdown = triage_bot::samples::triage_answer();
    let json_answer = serde_json::json!({
        "summary": "WmiPrvSE.exe wrote a Run key on WS-FIN-042 (10.20.4.42): persistence.",
        "investigation": ["Get-Process -Id 3312", "Get-FileHash -Path 'C:\\ProgramData\\odu\\odupd.exe'"],
        "remediation": ["Stop-Process -Id 3312 -Force"],
    })
    .to_string();
    openai.set_responder(move |call| {
        if call.last_user_content().starts_with("Who handles") {
            format!("{HANDLER_NAME}.")
        } else if call.response_format.is_some() {
            json_answer.clone()
        } else {
            markdown.clone()
        }
    });
    let base = openai.base_url();
    let app = world
        .start_app_with(&[
            ("ASSISTANT", "openai"),
            ("OPENAI_BASE_URL", &base),
            ("OPENAI_MODEL", "gpt-4o-2024-08-06"),
            ("OPENAI_API_KEY", "sk-test-key"),
            ("OPENAI_STRUCTURED_OUTPUT", "true"),
        ])
        .await
        .unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    let triage = incident.triage().unwrap();
    assert_eq!(
        triage.summary,
        "WmiPrvSE.exe wrote a Run key on WS-FIN-042 (10.20.4.42): persistence."
    );
    assert_eq!(
        triage.investigation,
        vec![
            "Get-Process -Id 3312",
            "Get-FileHash -Path 'C:\\ProgramData\\odu\\odupd.exe'"
        ]
    );
    assert_eq!(triage.remediation, vec!["Stop-Process -Id 3312 -Force"]);
    let calls = openai.calls();
    let triage_call = calls
        .iter()
        .find(|c| c.last_user_content().contains("BEGIN ALERT"))
        .unwrap();
    let format = triage_call
        .response_format
        .as_ref()
        .expect("a response format");
    assert_eq!(format["type"], "json_schema");
    assert_eq!(format["json_schema"]["name"], "triage");
    assert_eq!(format["json_schema"]["strict"], true);
    let handler_call = calls
        .iter()
        .find(|c| c.last_user_content().starts_with("Who handles"))
        .unwrap();
    assert_eq!(
        handler_call.response_format, None,
        "only triage is structured"
    );
    wait_for_approval_request(&world).await;
    app.stop().await;
}

#[tokio::test]
async fn a_server_that_refuses_structured_output_is_asked_for_markdown_from_then_on() {
    let (_world, openai) = openai_world().await;
    openai.refuse_json_schema(true);
    let client = triage_bot::clients::openai::OpenAiClient::new(&OpenAiSettings {
        base_url: openai.base_url(),
        api_key: Some(triage_bot::secret::Secret::new("sk-test-key".to_string())),
        model: "llama3.1:8b".into(),
        timeout: std::time::Duration::from_secs(10),
        structured_output: true,
        tls: Default::default(),
    })
    .unwrap()
    .with_retries(2);
    let r = client.ask_triage("triage this alert", None).await.unwrap();
    let parsed = triage_bot::pipeline::triage::parser::parse_answer(&r.text);
    assert_eq!(
        parsed.investigation.len(),
        5,
        "the markdown answer is parsed"
    );
    assert_eq!(openai.recorder().read().refused_formats, 1);
    let calls = openai.calls();
    assert_eq!(
        calls.len(),
        1,
        "refused once, then answered without the format"
    );
    assert_eq!(calls[0].response_format, None);
    client.ask_triage("and this one", None).await.unwrap();
    assert_eq!(
        openai.recorder().read().refused_formats,
        1,
        "the format is not offered again"
    );
    assert_eq!(openai.calls().len(), 2);
}

#[tokio::test]
async fn agent_builder_triages_and_keeps_the_conversation() {
    let world = World::start().await.unwrap();
    let settings = world
        .settings_with(&[
            ("ASSISTANT", "agent_builder"),
            ("AGENT_BUILDER_AGENT_ID", "security.agent"),
            ("KIBANA_SPACE", "soc"),
        ])
        .unwrap();
    let app = App::start(settings, None).await.unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    assert_eq!(incident.triage().unwrap().investigation.len(), 5);
    let calls = world.kibana.calls();
    let triage_call = calls
        .iter()
        .find(|c| c.last_user_content.contains("BEGIN ALERT"))
        .unwrap();
    assert_eq!(triage_call.space, "soc");
    assert_eq!(triage_call.body["agent_id"], "security.agent");
    assert_eq!(triage_call.body["connector_id"], "demo-gpt-4o");
    assert_eq!(
        incident.conversation_id, triage_call.conversation_id,
        "the conversation the first converse created is the incident's"
    );
    assert!(
        world
            .kibana
            .requests()
            .iter()
            .any(|r| r.path == "/s/soc/api/agent_builder/converse" && r.status == 200)
    );
    assert!(
        !world
            .kibana
            .requests()
            .iter()
            .any(|r| r.path.contains("chat/complete")),
        "chat/complete is not used"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_unknown_agent_fails_the_triage_with_kibanas_message() {
    let world = World::start().await.unwrap();
    let settings = world
        .settings_with(&[
            ("ASSISTANT", "agent_builder"),
            ("AGENT_BUILDER_AGENT_ID", "no.such.agent"),
        ])
        .unwrap();
    let app = App::start(settings, None).await.unwrap();
    let incident = wait_for_state(&app, IncidentState::TriageFailed, T)
        .await
        .unwrap();
    let err = incident.error.unwrap();
    assert!(
        err.contains("404") && err.contains("Agent no.such.agent not found"),
        "{err}"
    );
    app.stop().await;
}

#[tokio::test]
async fn kibana_chat_complete_in_a_space_with_basic_auth_and_a_prompt_id() {
    let world = World::start().await.unwrap();
    world.kibana.require_auth("Basic dHJpYWdlOnMzY3JldA=="); // triage:s3cret
    let settings = world
        .settings_with(&[
            ("KIBANA_SPACE", "soc"),
            ("KIBANA_USERNAME", "triage"),
            ("KIBANA_PASSWORD", "s3cret"),
            ("KIBANA_PROMPT_ID", "soc-triage-prompt"),
        ])
        .unwrap();
    let app = App::start(settings, None).await.unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    let conv = incident.conversation_id.clone().expect("a conversation");
    let stored = world.kibana.conversations();
    assert!(
        stored
            .iter()
            .any(|c| c["id"] == conv.as_str() && c["namespace"] == "soc"),
        "the conversation was created in the space before asking"
    );
    let calls = world.kibana.calls();
    let triage_call = calls
        .iter()
        .find(|c| c.last_user_content.contains("BEGIN ALERT"))
        .unwrap();
    assert!(triage_call.is_stream, "streamed by default");
    assert_eq!(triage_call.body["promptId"], "soc-triage-prompt");
    assert_eq!(triage_call.body["conversationId"], conv.as_str());
    assert_eq!(triage_call.body["persist"], true);
    assert_eq!(triage_call.space, "soc");
    app.stop().await;
}

#[tokio::test]
async fn the_kibana_client_retries_what_can_succeed_and_surfaces_kibanas_messages() {
    let world = World::start().await.unwrap();
    let settings = world.settings_with(&[("ASSISTANT_RETRIES", "2")]).unwrap();
    let client = triage_bot::clients::ai::build(&settings).unwrap();
    assert_eq!(client.name(), "kibana");

    // A 503 (assistant error shape) is retried, and the retry's answer is used.
    world.kibana.fail_next(1, 503);
    world.kibana.push_answer("fine now");
    let r = client.ask("q1", None).await.unwrap();
    assert_eq!(r.text, "fine now");
    let statuses: Vec<u16> = world
        .kibana
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/complete"))
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [503, 200]);

    // A 400 is not retried; Kibana's own message is in the error.
    world.kibana.fail_next(1, 400);
    let e = client.ask("q2", None).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("Kibana answered 400: emulated failure"),
        "{e}"
    );
    // An unknown conversation: the assistant's 404 message, not retried.
    let e = client
        .ask("q3", Some("no-such-conversation"))
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("conversation id: \"no-such-conversation\" not found"),
        "{e}"
    );
    // Wrong credentials: the core error shape's message, and no secret in it.
    world.kibana.require_auth("ApiKey right-key");
    let bad = triage_bot::clients::ai::build(
        &world
            .settings_with(&[("KIBANA_API_KEY", "wrong-key-value")])
            .unwrap(),
    )
    .unwrap();
    let e = bad.ask("q4", None).await.unwrap_err().to_string();
    assert!(
        e.contains("401") && e.contains("unable to authenticate user"),
        "{e}"
    );
    assert!(!e.contains("wrong-key-value"));
    let after: usize = world
        .kibana
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/chat/complete"))
        .count();
    assert_eq!(after, 5, "none of the three permanent failures was retried");
}

#[tokio::test]
async fn kibana_chat_complete_without_streaming() {
    let world = World::start().await.unwrap();
    let settings = world
        .settings_with(&[("KIBANA_AI_STREAM", "false")])
        .unwrap();
    let app = App::start(settings, None).await.unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    assert_eq!(incident.triage().unwrap().remediation.len(), 3);
    let calls = world.kibana.calls();
    let triage_call = calls
        .iter()
        .find(|c| c.last_user_content.contains("BEGIN ALERT"))
        .unwrap();
    assert!(!triage_call.is_stream);
    assert_eq!(triage_call.conversation_id, incident.conversation_id);
    app.stop().await;
}

#[tokio::test]
async fn a_closing_json_block_the_prompt_asks_for_is_preferred_on_any_backend() {
    let world = World::start().await.unwrap();
    let markdown = triage_bot::samples::triage_answer();
    world.kibana.set_responder(move |call| {
        if call.last_user_content.starts_with("Who handles") {
            format!("{HANDLER_NAME}.")
        } else if call.last_user_content.contains("fenced JSON block") {
            format!(
                "{markdown}\n```json\n{}\n```\n",
                serde_json::json!({
                    "summary": "Run-key persistence by WmiPrvSE.exe on WS-FIN-042 (10.20.4.42).",
                    "investigation": ["Get-Process -Id 3312"],
                    "remediation": ["Stop-Process -Id 3312 -Force"],
                })
            )
        } else {
            markdown.clone()
        }
    });
    let app = world
        .start_app_with(&[("PROMPT_JSON_BLOCK", "true")])
        .await
        .unwrap();
    let incident = wait_for_state(&app, IncidentState::AwaitingApproval, T)
        .await
        .unwrap();
    let triage = incident.triage().unwrap();
    assert_eq!(
        triage.summary,
        "Run-key persistence by WmiPrvSE.exe on WS-FIN-042 (10.20.4.42)."
    );
    assert_eq!(triage.investigation, vec!["Get-Process -Id 3312"]);
    assert_eq!(triage.remediation, vec!["Stop-Process -Id 3312 -Force"]);
    app.stop().await;
}
