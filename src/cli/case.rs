//! `triage-bot case show`: the local audit record of one incident — what was proposed, decided
//! and run — with its Kibana case id and URL.

/// Needs only DATABASE_URL (and KIBANA_PUBLIC_URL / KIBANA_URL / KIBANA_SPACE for the link).
pub async fn show(incident: &str) -> anyhow::Result<()> {
    let url = crate::config::database_url_from_env();
    let store = crate::store::Store::connect(&url).await?;
    print!(
        "{}",
        crate::pipeline::record::show::render(&store, incident, case_base().as_deref()).await?
    );
    Ok(())
}

/// The Kibana base URL case links are made from (`KIBANA_PUBLIC_URL`, else `KIBANA_URL`, in
/// `KIBANA_SPACE`), when set.
pub fn case_base() -> Option<String> {
    let space = std::env::var("KIBANA_SPACE").ok();
    std::env::var("KIBANA_PUBLIC_URL")
        .or_else(|_| std::env::var("KIBANA_URL"))
        .ok()
        .map(|b| crate::config::kibana_app_base(&b, space.as_deref()))
}
