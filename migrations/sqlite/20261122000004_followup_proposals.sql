-- Commands proposed in a thread answer become a follow-up incident: same alert and case, its own
-- approval block in the parent's thread.
ALTER TABLE incidents ADD COLUMN parent_incident TEXT REFERENCES incidents(id);
ALTER TABLE incidents ADD COLUMN thread_root_ts TEXT;
