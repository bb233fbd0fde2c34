-- Webhooks: the URL a job's state changes are POSTed to, with its signing secret sealed (JSON
-- owned by the coordinator, NULL for a job without one).
ALTER TABLE jobs ADD COLUMN webhook TEXT;

-- One row per state change of every job, written by the triggers below in the same
-- transaction as the change, whichever statement made it. The row is also the webhook
-- delivery of that change (its id is the delivery id): has_webhook says whether the job had a
-- webhook, attempts / next_attempt_at / claimed_until / delivered_at / gave_up are the
-- delivery's bookkeeping (next_attempt_at starts at `at`; claimed_until is set while a
-- coordinator delivers it). `at` and the other times are Unix ms.
CREATE TABLE job_events (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id          INTEGER NOT NULL REFERENCES jobs(id),
    state           TEXT NOT NULL,
    error           TEXT,
    at              INTEGER NOT NULL,
    has_webhook     INTEGER NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    claimed_until   INTEGER,
    delivered_at    INTEGER,
    gave_up         INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX job_events_by_job ON job_events (job_id, id);
-- What the webhook stage looks through: deliveries still to make.
CREATE INDEX job_events_undelivered ON job_events (job_id, id)
    WHERE has_webhook AND delivered_at IS NULL AND NOT gave_up;

-- Every attempt at delivering an event: the receiver's HTTP status, or why there was none.
CREATE TABLE webhook_attempts (
    event_id    INTEGER NOT NULL REFERENCES job_events(id),
    attempt     INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    status      INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL,
    PRIMARY KEY (event_id, attempt)
) WITHOUT ROWID;

-- SQLite's clock in Unix ms (julianday works on every SQLite version, unlike unixepoch).
CREATE TRIGGER jobs_event_on_insert AFTER INSERT ON jobs
BEGIN
    INSERT INTO job_events (job_id, state, error, at, has_webhook, next_attempt_at)
    SELECT NEW.id, NEW.state, NEW.error, t.now, NEW.webhook IS NOT NULL,
           CASE WHEN NEW.webhook IS NOT NULL THEN t.now END
    FROM (SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now) AS t;
END;

CREATE TRIGGER jobs_event_on_state AFTER UPDATE OF state ON jobs
WHEN OLD.state IS NOT NEW.state
BEGIN
    INSERT INTO job_events (job_id, state, error, at, has_webhook, next_attempt_at)
    SELECT NEW.id, NEW.state, NEW.error, t.now, NEW.webhook IS NOT NULL,
           CASE WHEN NEW.webhook IS NOT NULL THEN t.now END
    FROM (SELECT CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now) AS t;
END;
