-- Action policies (issue 10): one dispatch outcome per alert evaluated, the state of each
-- policy group, snoozes, digest windows, and the policy and route an incident was opened under.

-- Why each alert was (not) paged: `outcome` is dispatched | throttled | suppressed | unmatched.
CREATE TABLE dispatch_outcomes (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id      TEXT NOT NULL,
    source        TEXT NOT NULL,
    policy        TEXT,
    outcome       TEXT NOT NULL,
    reason        TEXT NOT NULL,
    rule          TEXT NOT NULL,
    host          TEXT NOT NULL,
    alert_status  TEXT NOT NULL,
    incident_id   TEXT,
    -- The digest window start (RFC 3339) the alert was counted into.
    digest_window TEXT,
    at            TEXT NOT NULL,
    -- When the outcome was copied to DISPATCH_OUTCOME_INDEX (NULL: not yet, or no index).
    indexed_at    TEXT
);
CREATE INDEX dispatch_outcomes_alert ON dispatch_outcomes (alert_id, id);
CREATE INDEX dispatch_outcomes_unindexed ON dispatch_outcomes (id) WHERE indexed_at IS NULL;
CREATE INDEX dispatch_outcomes_digest ON dispatch_outcomes (policy, digest_window)
    WHERE digest_window IS NOT NULL;

-- One row per policy group (episode policies: per alert): its incident, and when it last spoke.
CREATE TABLE policy_groups (
    policy           TEXT NOT NULL,
    group_key        TEXT NOT NULL,
    incident_id      TEXT NOT NULL,
    opened_at        TEXT NOT NULL,
    last_notified_at TEXT NOT NULL,
    status           TEXT NOT NULL,
    PRIMARY KEY (policy, group_key)
);

-- `triage-bot snooze host:NAME 2h` / `rule:NAME 30m`.
CREATE TABLE snoozes (
    kind       TEXT NOT NULL,
    value      TEXT NOT NULL,
    until      TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (kind, value)
);

-- One row per digest policy and window; `queued_at` once its message job is in the outbox.
CREATE TABLE digests (
    policy       TEXT NOT NULL,
    window_start TEXT NOT NULL,
    window_end   TEXT NOT NULL,
    channel      TEXT,
    queued_at    TEXT,
    PRIMARY KEY (policy, window_start)
);
CREATE INDEX digests_due ON digests (window_end) WHERE queued_at IS NULL;

-- The policy an incident was opened under and its route (JSON: channel, handler, offer).
ALTER TABLE incidents ADD COLUMN policy TEXT;
ALTER TABLE incidents ADD COLUMN route_json TEXT;

-- When a grouped alert went into its incident's case (by its own job, or with the batch the case
-- was created with), so neither attaches it twice.
ALTER TABLE incident_alerts ADD COLUMN attached_at TEXT;

-- The outbox claim walks pending jobs in id order; after a storm most rows are done.
CREATE INDEX outbox_pending_id ON outbox (id) WHERE status = 'pending';
