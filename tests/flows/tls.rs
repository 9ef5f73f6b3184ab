//! Deploying against a self-managed Elastic stack with its own certificate authority:
//! Elasticsearch, Kibana and an OpenAI-compatible server each behind HTTPS signed by a private CA.
//! Without the CA file the connection is refused with an error that names the setting to use;
//! with `*_CA_FILE` it works; the lab-only `*_INSECURE` switch works too.

use std::net::SocketAddr;

use crate::common::*;
use emulators::openai::OpenAiEmulator;
use emulators::tls::TestPki;
use serde_json::{Value, json};
use triage_bot::clients::ai::Assistant;
use triage_bot::clients::elastic::ElasticClient;
use triage_bot::clients::kibana::KibanaHttp;
use triage_bot::clients::openai::OpenAiClient;
use triage_bot::config::Settings;

/// The same emulator behind HTTPS: `http://127.0.0.1:P/x` → `https://127.0.0.1:Q/x`.
async fn behind_tls(plain: &str, pki: &TestPki) -> String {
    let rest = plain.trim_start_matches("http://");
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let backend: SocketAddr = host.parse().expect("emulator address");
    let front = emulators::tls::front(backend, pki).await.unwrap();
    if path.is_empty() {
        format!("https://{front}")
    } else {
        format!("https://{front}/{path}")
    }
}

/// The settings for three cases: no CA file, the CA file, the insecure switch.
fn three_ways(world: &World, pki: &TestPki, base: &[(&str, &str)], prefix: &str) -> [Settings; 3] {
    let ca_var = format!("{prefix}_CA_FILE");
    let insecure_var = format!("{prefix}_INSECURE");
    let ca = pki.ca_pem.display().to_string();
    let with = |extra: &[(&str, &str)]| {
        let mut all = base.to_vec();
        all.extend_from_slice(extra);
        world.settings_with(&all).unwrap()
    };
    [
        with(&[]),
        with(&[(ca_var.as_str(), ca.as_str())]),
        with(&[(insecure_var.as_str(), "true")]),
    ]
}

fn search_body() -> Value {
    json!({ "size": 10, "query": { "match_all": {} } })
}

#[tokio::test]
async fn elasticsearch_with_a_private_ca() {
    let world = World::start().await.unwrap();
    let pki = TestPki::generate().unwrap();
    let url = behind_tls(&world.es.url(), &pki).await;
    let [plain, with_ca, insecure] = three_ways(
        &world,
        &pki,
        &[("ELASTICSEARCH_URL", &url)],
        "ELASTICSEARCH",
    );
    let index = ".internal.alerts-security.alerts-default-*";

    let refused = ElasticClient::new(&plain.elastic)
        .unwrap()
        .search(index, search_body())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("ELASTICSEARCH_CA_FILE"), "{refused}");

    let hits = ElasticClient::new(&with_ca.elastic)
        .unwrap()
        .search(index, search_body())
        .await
        .unwrap();
    assert!(
        hits.iter().any(
            |h| matches!(h, triage_bot::clients::elastic::SearchHit::Decoded(d) if d.id == ALERT_ID)
        ),
        "{hits:?}"
    );

    let hits = ElasticClient::new(&insecure.elastic)
        .unwrap()
        .search(index, search_body())
        .await
        .unwrap();
    assert!(!hits.is_empty());
}

#[tokio::test]
async fn kibana_with_a_private_ca() {
    let world = World::start().await.unwrap();
    let pki = TestPki::generate().unwrap();
    let url = behind_tls(&world.kibana.url(), &pki).await;
    let [plain, with_ca, insecure] = three_ways(&world, &pki, &[("KIBANA_URL", &url)], "KIBANA");
    let find = |http: KibanaHttp| async move {
        let rb = http.request(reqwest::Method::GET, "/api/cases/_find");
        http.json::<Value>(rb).await
    };

    let refused = find(KibanaHttp::new(&plain.kibana).unwrap())
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("KIBANA_CA_FILE"), "{refused}");
    let found = find(KibanaHttp::new(&with_ca.kibana).unwrap())
        .await
        .unwrap();
    assert!(found.get("cases").is_some(), "{found}");
    assert!(
        find(KibanaHttp::new(&insecure.kibana).unwrap())
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn an_openai_compatible_server_with_a_private_ca() {
    let world = World::start().await.unwrap();
    let openai = OpenAiEmulator::start().await.unwrap();
    let pki = TestPki::generate().unwrap();
    let url = behind_tls(&openai.base_url(), &pki).await;
    let base = [
        ("ASSISTANT", "openai"),
        ("OPENAI_BASE_URL", url.as_str()),
        ("OPENAI_MODEL", "m"),
    ];
    let [plain, with_ca, insecure] = three_ways(&world, &pki, &base, "OPENAI");
    let client = |s: &Settings| OpenAiClient::new(s.triage.assistant.openai.as_ref().unwrap());

    let refused = client(&plain)
        .unwrap()
        .ask("q", None)
        .await
        .unwrap_err()
        .to_string();
    assert!(refused.contains("OPENAI_CA_FILE"), "{refused}");
    openai.push_answer("over TLS");
    let reply = client(&with_ca).unwrap().ask("q", None).await.unwrap();
    assert_eq!(reply.text, "over TLS");
    openai.push_answer("insecure");
    assert!(client(&insecure).unwrap().ask("q", None).await.is_ok());
}

#[tokio::test]
async fn a_ca_file_without_certificates_is_refused_at_start_up() {
    let world = World::start().await.unwrap();
    let not_pem = world.dir.join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    let e = world
        .settings_with(&[("KIBANA_CA_FILE", &not_pem.display().to_string())])
        .unwrap_err()
        .to_string();
    assert!(e.contains("KIBANA_CA_FILE"), "{e}");
    let e = world
        .settings_with(&[("ELASTICSEARCH_CA_FILE", "/nonexistent/ca.pem")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("ELASTICSEARCH_CA_FILE"), "{e}");
}
