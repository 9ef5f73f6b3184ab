-- Several replicas (issue 13): the replica that claimed a running job, so that a survivor takes
-- over only the jobs of a replica that is gone (PostgreSQL); NULL for jobs claimed before.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;
