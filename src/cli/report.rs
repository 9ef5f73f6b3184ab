//! `triage-bot report --since 7d [--format markdown|json]`: the SOC's response figures over a
//! period, from the local database (`pipeline::record::report`). Needs only DATABASE_URL.

use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Markdown,
    Json,
}

/// `7d`, `24h`, `90m`, `2w` back from now, or an RFC 3339 time.
pub fn parse_since(text: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let t = text.trim();
    let split = t.len().saturating_sub(1);
    let (n, unit) = (t.get(..split).unwrap_or(""), t.get(split..).unwrap_or(""));
    let n: i64 = n.parse().map_err(|_| {
        anyhow::anyhow!(
            "--since: expected a period like 7d, 24h, 90m or 2w, or an RFC 3339 time, got {text:?}"
        )
    })?;
    let span = match unit {
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => None,
    }
    .filter(|_| n >= 0)
    .ok_or_else(|| {
        anyhow::anyhow!(
            "--since: expected a period like 7d, 24h, 90m or 2w, or an RFC 3339 time, got {text:?}"
        )
    })?;
    Ok(now - span)
}

pub async fn run(since: &str, format: Format) -> anyhow::Result<()> {
    let since = parse_since(since, Utc::now())?;
    let url = crate::config::database_url_from_env();
    let store = crate::store::Store::connect(&url).await?;
    let report = crate::pipeline::record::report::build(&store, since).await?;
    match format {
        Format::Markdown => print!("{}", crate::pipeline::record::report::markdown(&report)),
        Format::Json => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_and_times_are_read_and_nonsense_is_named() {
        let now = DateTime::parse_from_rfc3339("2026-12-07T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_since("7d", now).unwrap(), now - Duration::days(7));
        assert_eq!(
            parse_since("90m", now).unwrap(),
            now - Duration::minutes(90)
        );
        assert_eq!(
            parse_since("2026-12-01T00:00:00Z", now)
                .unwrap()
                .to_rfc3339(),
            "2026-12-01T00:00:00+00:00"
        );
        for bad in ["", "d", "7y", "-3d", "soon"] {
            assert!(
                parse_since(bad, now)
                    .unwrap_err()
                    .to_string()
                    .contains("--since")
            );
        }
    }
}
