-- Where a started command runs on its host (JSON: endpoint, shell id, command id), written
-- before the command is sent, so that after a crash the next process can collect its outcome
-- from the host instead of calling it unknown — or running it again.
ALTER TABLE commands ADD COLUMN remote TEXT;
