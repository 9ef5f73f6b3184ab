-- Alerts grouped into an existing incident (same rule on the same host within the policy
-- window): part of the seen set, attached to the incident's case, no new triage or message.
CREATE TABLE incident_alerts (
    alert_id    TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents(id),
    alert_json  TEXT NOT NULL,
    received_at TEXT NOT NULL
);
CREATE INDEX incident_alerts_incident ON incident_alerts(incident_id);
