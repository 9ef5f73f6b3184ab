//! The `enrichments` table: the context gathered around an incident's alert before triage.

use super::{Store, now_text};

impl Store {
    /// The enrichment recorded for an incident, if any.
    pub async fn enrichment(&self, incident: &str) -> anyhow::Result<Option<serde_json::Value>> {
        let row: Option<String> =
            sqlx::query_scalar("SELECT data FROM enrichments WHERE incident_id = $1")
                .bind(incident)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.and_then(|d| serde_json::from_str(&d).ok()))
    }

    /// Records an incident's enrichment; the first one recorded stays (a retry reuses it).
    pub async fn save_enrichment(
        &self,
        incident: &str,
        data: &serde_json::Value,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO enrichments (incident_id, data, gathered_at) VALUES ($1, $2, $3)
             ON CONFLICT(incident_id) DO NOTHING",
        )
        .bind(incident)
        .bind(data.to_string())
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
