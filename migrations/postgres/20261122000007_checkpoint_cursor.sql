-- The search_after cursor (sort values of the last hit handed on) beside the checkpoint time, so
-- a poll continues exactly where the last one stopped however many alerts share the overlap.
ALTER TABLE checkpoints ADD COLUMN cursor TEXT;
