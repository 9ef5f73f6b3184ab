-- Analysts in control (issue 15): edits to a proposal before approving it, revisions that
-- supersede a proposal, and the response times the SOC is judged on.

-- One row per command of a proposal an analyst edited in the Edit… modal: what the AI proposed
-- (`before_text`, NULL for none), what the analyst kept (`after_text`, NULL when dropped), by
-- whom and when. `round` groups the rows of one submission. The approved list itself is the
-- incident's `commands` rows, bound by the new approval hash.
CREATE TABLE proposal_edits (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    round       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,   -- the command's number in the proposal as shown
    kind        TEXT NOT NULL,
    before_text TEXT NOT NULL,
    after_text  TEXT,               -- NULL: the analyst left it out
    change      TEXT NOT NULL,      -- 'unchanged' | 'edited' | 'dropped'
    edited_by   TEXT NOT NULL,
    edited_at   TEXT NOT NULL
);
CREATE INDEX proposal_edits_incident ON proposal_edits(incident_id, round, seq);

-- A proposal replaced by a revision the analyst asked for: the revision's incident id.
ALTER TABLE incidents ADD COLUMN superseded_by TEXT;
-- Response times: the first human decision on the incident, and when its response ended (the
-- last approved command finished, or the decline / expiry).
ALTER TABLE incidents ADD COLUMN acknowledged_at TEXT;
ALTER TABLE incidents ADD COLUMN acknowledged_by TEXT;
ALTER TABLE incidents ADD COLUMN responded_at TEXT;
