//! The handler-question cache: the assistant's answer to "who handles {os} alerts?", keyed by
//! the question, with the time it was asked, so it is reused for a while (and across restarts)
//! instead of costing an AI call per alert.

use std::time::Duration;

use chrono::{Duration as ChronoDuration, Utc};

use super::{Store, now_text, time_text};

impl Store {
    /// The stored answer to `question` if it was asked within `max_age`: `Some(Some(name))`, or
    /// `Some(None)` when the assistant named nobody; `None` when it must be asked.
    pub async fn cached_handler_answer(
        &self,
        question: &str,
        max_age: Duration,
    ) -> anyhow::Result<Option<Option<String>>> {
        let since =
            Utc::now() - ChronoDuration::from_std(max_age).unwrap_or(ChronoDuration::seconds(3600));
        let row: Option<(Option<String>,)> = sqlx::query_as(
            "SELECT answer FROM handler_answers WHERE question = $1 AND asked_at > $2",
        )
        .bind(question)
        .bind(time_text(since))
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(answer,)| answer))
    }

    /// Stores (or replaces) the answer to `question`, asked now.
    pub async fn cache_handler_answer(
        &self,
        question: &str,
        answer: Option<&str>,
    ) -> anyhow::Result<()> {
        sqlx::query(
            "INSERT INTO handler_answers (question, answer, asked_at) VALUES ($1, $2, $3)
             ON CONFLICT(question) DO UPDATE SET answer = excluded.answer, asked_at = excluded.asked_at",
        )
        .bind(question)
        .bind(answer)
        .bind(now_text())
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_are_kept_for_their_time_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let store = Store::connect(&url).await.unwrap();
        let q = "Who handles windows alerts? Respond with just their name.";
        let hour = Duration::from_secs(3600);
        assert_eq!(store.cached_handler_answer(q, hour).await.unwrap(), None);
        store
            .cache_handler_answer(q, Some("Alice Analyst"))
            .await
            .unwrap();
        assert_eq!(
            store.cached_handler_answer(q, hour).await.unwrap(),
            Some(Some("Alice Analyst".to_string()))
        );
        assert_eq!(
            store
                .cached_handler_answer("Who handles linux alerts?", hour)
                .await
                .unwrap(),
            None,
            "one answer per question"
        );
        assert_eq!(
            store
                .cached_handler_answer(q, Duration::ZERO)
                .await
                .unwrap(),
            None,
            "an answer older than the time allowed is asked again"
        );
        store.cache_handler_answer(q, None).await.unwrap();
        assert_eq!(
            store.cached_handler_answer(q, hour).await.unwrap(),
            Some(None)
        );
        // Persisted: a new connection (a restart) sees it.
        drop(store);
        let store = Store::connect(&url).await.unwrap();
        assert_eq!(
            store.cached_handler_answer(q, hour).await.unwrap(),
            Some(None)
        );
    }
}
