-- Approval lifecycle and audit links.
ALTER TABLE incidents ADD COLUMN approval_requested_at TEXT;  -- when the approval message was posted
ALTER TABLE incidents ADD COLUMN escalated_at TEXT;           -- when the backup was mentioned
ALTER TABLE incidents ADD COLUMN approval_scope TEXT;         -- 'all' or 'investigation'
ALTER TABLE incidents ADD COLUMN first_approver TEXT;         -- two-person rule: the first of two
ALTER TABLE incidents ADD COLUMN first_approved_at TEXT;
ALTER TABLE incidents ADD COLUMN slack_permalink TEXT;
