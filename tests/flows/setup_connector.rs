//! The deploying engineer's view of `triage-bot setup kibana-connector`: it makes the Index or
//! Webhook connector a rule action hands alerts over with (or finds the one made before), prints
//! the rule action to paste, never prints the secret, and says what to do when Kibana refuses.

use crate::common::*;
use triage_bot::cli::setup::{ConnectorKind, KibanaConnectorArgs, kibana_connector};

const SECRET: &str = "push-secret-0123456789";

fn settings(world: &World, extra: &[(&str, &str)]) -> triage_bot::config::Settings {
    let mut env = vec![
        ("KIBANA_WEBHOOK_SECRET", SECRET),
        ("INDEX_ACTION_INDEX", "triage-bot-actions"),
    ];
    env.extend_from_slice(extra);
    world.settings_with(&env).unwrap()
}

fn index_args() -> KibanaConnectorArgs {
    KibanaConnectorArgs::default()
}

fn webhook_args() -> KibanaConnectorArgs {
    KibanaConnectorArgs {
        kind: ConnectorKind::Webhook,
        url: Some("https://triage-bot.example.internal:8080".into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn the_index_connector_is_created_once_and_the_rule_action_is_printed() {
    let world = World::start().await.unwrap();
    let s = settings(&world, &[]);
    let out = kibana_connector(&s, &index_args()).await.unwrap();
    let stored = world.kibana.stored_connectors();
    assert_eq!(stored.len(), 1);
    let c = &stored[0].connector;
    assert_eq!(c["connector_type_id"], ".index");
    assert_eq!(c["config"]["index"], "triage-bot-actions");
    let id = c["id"].as_str().unwrap();
    assert!(
        out.contains(&format!(
            "Created connector \"triage-bot index\" (.index) in space default: id {id}"
        )),
        "{out}"
    );
    assert!(
        out.contains("\"context.hits\": \"[{{context.hits}}]\""),
        "{out}"
    );
    assert!(out.contains("\"rule.name\": \"{{rule.name}}\""), "{out}");
    assert!(
        out.contains("INDEX_ACTION_INDEX=triage-bot-actions"),
        "{out}"
    );

    // Again: found by name and reused, not made twice.
    let out = kibana_connector(&s, &index_args()).await.unwrap();
    assert_eq!(world.kibana.stored_connectors().len(), 1);
    assert!(
        out.contains(&format!(
            "already exists in space default: reusing it (id {id})"
        )),
        "{out}"
    );

    // The document the printed action writes is one the worker reads (the same parser).
    let doc = serde_json::json!({ "@timestamp": "2026-12-07T10:00:00Z", "rule.name": "R", "context.hits": "[]" });
    assert!(
        triage_bot::pipeline::ingest::action_doc::entries("d", "i", &doc)
            .unwrap()
            .alerts
            .is_empty()
    );

    // --delete removes it.
    let out = kibana_connector(
        &s,
        &KibanaConnectorArgs {
            delete: true,
            ..index_args()
        },
    )
    .await
    .unwrap();
    assert!(out.contains(&format!("Deleted connector {id}")), "{out}");
    assert!(world.kibana.stored_connectors().is_empty());
    let e = kibana_connector(
        &s,
        &KibanaConnectorArgs {
            delete: true,
            ..index_args()
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("nothing deleted"), "{e}");
    validate_kibana_requests(&world).await;
}

#[tokio::test]
async fn the_webhook_connector_carries_the_secret_header_which_is_never_printed() {
    let world = World::start().await.unwrap();
    let s = settings(&world, &[("KIBANA_SPACE", "soc")]);
    let out = kibana_connector(&s, &webhook_args()).await.unwrap();
    assert!(!out.contains(SECRET), "the secret was printed: {out}");
    assert!(
        out.contains("X-Triage-Bot-Token: <the secret from KIBANA_WEBHOOK_SECRET>"),
        "{out}"
    );
    assert!(out.contains("[{{{context.alerts}}}]"), "{out}");
    let stored = world.kibana.stored_connectors();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].space, "soc");
    assert_eq!(
        stored[0].connector["config"]["url"],
        "https://triage-bot.example.internal:8080/api/webhook/kibana"
    );
    assert_eq!(
        stored[0].secrets["secretHeaders"]["X-Triage-Bot-Token"],
        SECRET
    );
    assert!(
        !stored[0].connector.to_string().contains(SECRET),
        "the secret is not in the config"
    );
    assert!(
        world
            .kibana
            .connector_requests()
            .iter()
            .all(|(_, path, _)| path.starts_with("/s/soc/api/actions/"))
    );
    // --space overrides KIBANA_SPACE: nothing of that name in the default space.
    let e = kibana_connector(
        &s,
        &KibanaConnectorArgs {
            delete: true,
            space: Some("default".into()),
            ..webhook_args()
        },
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("in space default"), "{e}");
    validate_kibana_requests(&world).await;
}

#[tokio::test]
async fn each_refusal_says_what_to_do() {
    let world = World::start().await.unwrap();
    let s = settings(&world, &[]);
    // A basic licence has no Webhook connector.
    world.kibana.set_licence("basic");
    let e = kibana_connector(&s, &webhook_args())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("needs a gold licence") && e.contains("--kind index"),
        "{e}"
    );
    let out = kibana_connector(
        &s,
        &KibanaConnectorArgs {
            list_types: true,
            ..index_args()
        },
    )
    .await
    .unwrap();
    assert!(
        out.lines()
            .any(|l| l.contains(".webhook") && l.contains("needs a gold licence")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.contains(".index") && l.ends_with("enabled")),
        "{out}"
    );
    world.kibana.set_licence("platinum");
    // Not in xpack.actions.enabledActionTypes.
    world.kibana.disable_connector_type(".index");
    let e = kibana_connector(&s, &index_args())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("xpack.actions.enabledActionTypes"), "{e}");
    // Kibana's own 400, with the fix.
    world.kibana.set_allowed_hosts(&["kibana.example.internal"]);
    let e = kibana_connector(&s, &webhook_args())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("Kibana refused to create the connector: the configuration is not valid (400): error validating action type config: error configuring webhook action: target url"), "{e}");
    assert!(
        e.contains("add this service's host to xpack.actions.allowedHosts"),
        "{e}"
    );
    // A name taken by another type.
    world
        .kibana
        .add_connector("c-9", ".server-log", "triage-bot webhook");
    world.kibana.set_allowed_hosts(&["*"]);
    let e = kibana_connector(&s, &webhook_args())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("already used by a .server-log connector (id c-9)") && e.contains("--name"),
        "{e}"
    );
    // What is missing locally is named before Kibana is asked.
    let e = kibana_connector(
        &s,
        &KibanaConnectorArgs {
            name: Some("other".into()),
            url: None,
            ..webhook_args()
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("--url"), "{e}");
    let no_secret = world.settings_with(&[]).unwrap();
    let e = kibana_connector(
        &no_secret,
        &KibanaConnectorArgs {
            name: Some("other".into()),
            ..webhook_args()
        },
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(e.contains("KIBANA_WEBHOOK_SECRET"), "{e}");
    assert!(world.kibana.stored_connectors().is_empty());
    validate_kibana_requests(&world).await;
}

/// The emulator answers a body the connector type refuses as Kibana does.
#[tokio::test]
async fn the_kibana_emulator_refuses_bad_connector_bodies_with_kibanas_error_shape() {
    let world = World::start().await.unwrap();
    let post = |body: serde_json::Value| {
        let url = format!("{}/api/actions/connector", world.kibana.url());
        async move {
            let r = reqwest::Client::new()
                .post(url)
                .header("kbn-xsrf", "true")
                .json(&body)
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap(),
            )
        }
    };
    let (status, body) =
        post(serde_json::json!({ "connector_type_id": ".index", "config": {} })).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        serde_json::json!({ "statusCode": 400, "error": "Bad Request",
        "message": "[request body.name]: expected value of type [string] but got [undefined]" })
    );
    let (status, body) =
        post(serde_json::json!({ "name": "x", "connector_type_id": ".index", "config": {} })).await;
    assert_eq!(
        (status, body["message"].as_str().unwrap()),
        (
            400,
            "error validating action type config: [index]: expected value of type [string] but got [undefined]"
        )
    );
    let (status, body) =
        post(serde_json::json!({ "name": "x", "connector_type_id": ".nope", "config": {} })).await;
    assert_eq!(
        (status, body["message"].as_str().unwrap()),
        (400, "Action type \".nope\" is not registered.")
    );
    let r = reqwest::Client::new()
        .delete(format!(
            "{}/api/actions/connector/missing",
            world.kibana.url()
        ))
        .header("kbn-xsrf", "true")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["message"],
        "Saved object [action/missing] not found"
    );
}
