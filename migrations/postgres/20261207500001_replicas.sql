-- Several replicas (issue 13): the replica that claimed a running job, so that a survivor takes
-- over only the jobs of a replica that is gone (PostgreSQL); NULL for jobs claimed before.
ALTER TABLE outbox ADD COLUMN claimed_by TEXT;

-- With several replicas, the host a batch runs on is held here for the whole batch, so batches
-- of different incidents on one host run one after the other across replicas too. A row whose
-- holder is gone (its liveness lock free) is taken over.
CREATE TABLE host_leases (
    host   TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    since  TEXT NOT NULL
);
