-- Replication: a job's policy (JSON, NULL = none); per task, how many results it was sent out
-- for; per device, its run of consecutive valid results (adaptive replication's trust).
ALTER TABLE jobs ADD COLUMN replication TEXT;
-- Successful reports recorded for the job's chunks, and results rejected (by the app's
-- validator or for disagreeing with the quorum): replication's cost and catch.
ALTER TABLE jobs ADD COLUMN results_received INTEGER NOT NULL DEFAULT 0;
ALTER TABLE jobs ADD COLUMN results_rejected INTEGER NOT NULL DEFAULT 0;
ALTER TABLE tasks ADD COLUMN replicas INTEGER NOT NULL DEFAULT 1;
ALTER TABLE workers ADD COLUMN valid_streak INTEGER NOT NULL DEFAULT 0;
-- Results that passed the app's validator and wait for their replicas to agree (rare, small).
CREATE INDEX results_awaiting_quorum ON results (task_id) WHERE validate_state = 'passed';
-- A job not finished this many seconds after `run` fails as expired (NULL: no deadline).
ALTER TABLE jobs ADD COLUMN deadline_secs INTEGER;
