-- triage-bot schema. Times are RFC 3339 UTC text; JSON columns hold serde_json text.

-- One row per incident; alert_id UNIQUE is also the persisted "seen" set of the pollers.
CREATE TABLE incidents (
    id               TEXT PRIMARY KEY,
    alert_id         TEXT NOT NULL UNIQUE,
    source           TEXT NOT NULL,
    state            TEXT NOT NULL,
    host_name        TEXT NOT NULL,
    alert_json       TEXT NOT NULL,
    triage_json      TEXT,
    raw_answer       TEXT,
    handler_name     TEXT,
    handler_slack_id TEXT,
    conversation_id  TEXT,
    approval_hash    TEXT,
    slack_channel    TEXT,
    slack_ts         TEXT,
    case_id          TEXT,
    case_version     TEXT,
    decision         TEXT,
    decided_by       TEXT,
    decided_at       TEXT,
    error            TEXT,
    created_at       TEXT NOT NULL,
    updated_at       TEXT NOT NULL
);
CREATE INDEX incidents_state ON incidents(state);

-- Alert documents that could not be normalised: kept with the reason, never silently dropped.
CREATE TABLE ingest_rejections (
    source      TEXT NOT NULL,
    doc_id      TEXT NOT NULL,
    doc_index   TEXT NOT NULL,
    reason      TEXT NOT NULL,
    document    TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (source, doc_id)
);

-- Per-source poll position.
CREATE TABLE checkpoints (
    source     TEXT PRIMARY KEY,
    last_ts_ms INTEGER NOT NULL,
    updated_at TEXT NOT NULL
);

-- The exact commands proposed for an incident, and what happened when each ran.
CREATE TABLE commands (
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    seq         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    text        TEXT NOT NULL,
    status      TEXT NOT NULL DEFAULT 'proposed',
    exit_code   INTEGER,
    stdout      TEXT,
    stderr      TEXT,
    error       TEXT,
    started_at  TEXT,
    finished_at TEXT,
    PRIMARY KEY (incident_id, seq)
);

-- Side effects to perform, written in the same transaction as the state change that implies
-- them. Rows of one (incident, lane) run strictly in id order; lanes run independently.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    lane        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    payload     TEXT NOT NULL DEFAULT '{}',
    status      TEXT NOT NULL DEFAULT 'pending',
    attempts    INTEGER NOT NULL DEFAULT 0,
    not_before  TEXT NOT NULL,
    last_error  TEXT,
    created_at  TEXT NOT NULL,
    finished_at TEXT
);
CREATE INDEX outbox_pending ON outbox(status, not_before);
CREATE INDEX outbox_lane ON outbox(incident_id, lane, id);

-- Who did what, when: every decision attempt (allowed or refused) and every state change.
CREATE TABLE audit (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL,
    at          TEXT NOT NULL,
    actor       TEXT NOT NULL,
    event       TEXT NOT NULL,
    detail      TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_incident ON audit(incident_id, id);

-- Slack Events API deliveries already handled (retries carry the same event_id).
CREATE TABLE slack_events (
    event_id    TEXT PRIMARY KEY,
    received_at TEXT NOT NULL
);
