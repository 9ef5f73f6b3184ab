-- What was known around an alert when it was triaged (ENRICHMENT_ENABLED): other alerts on the
-- same host and for the same user in the window, and open cases naming the host. Kept so a
-- retried triage asks with the same context and the Slack message shows what the AI was told.
CREATE TABLE enrichments (
    incident_id TEXT PRIMARY KEY,
    data        TEXT NOT NULL,
    gathered_at TEXT NOT NULL
);
