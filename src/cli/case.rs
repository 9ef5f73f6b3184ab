//! `triage-bot case show`: the local audit record of one incident — what was proposed, decided
//! and run — with its Kibana case id and URL.

/// Needs only DATABASE_URL (and KIBANA_PUBLIC_URL / KIBANA_URL / KIBANA_SPACE for the link).
pub async fn show(incident: &str) -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| crate::config::DEFAULT_DATABASE_URL.into());
    let store = crate::store::Store::connect(&url).await?;
    let space = std::env::var("KIBANA_SPACE").ok();
    let base = std::env::var("KIBANA_PUBLIC_URL")
        .or_else(|_| std::env::var("KIBANA_URL"))
        .ok()
        .map(|b| crate::config::kibana_app_base(&b, space.as_deref()));
    print!(
        "{}",
        crate::pipeline::record::show::render(&store, incident, base.as_deref()).await?
    );
    Ok(())
}
