-- The safety gate's verdict on each proposed command.
ALTER TABLE commands ADD COLUMN risk TEXT NOT NULL DEFAULT 'changes_state';
ALTER TABLE commands ADD COLUMN risk_reasons TEXT NOT NULL DEFAULT '[]';
