-- Speed/price tiers, quotes and the double-entry ledger.
--
-- A job's tier and optional price ceiling (micro-credits) are set when it is created; its quote
-- (the most it will be charged), the rates its results are charged and paid at (micro-credits
-- per reference core-hour), its work and its largest chunk's work (reference core-ms) when the
-- quote is held; `charged` counts what its results have been charged so far.
ALTER TABLE jobs ADD COLUMN tier TEXT NOT NULL DEFAULT 'standard';
ALTER TABLE jobs ADD COLUMN max_price INTEGER;
ALTER TABLE jobs ADD COLUMN quote INTEGER;
ALTER TABLE jobs ADD COLUMN price_per_core_hour INTEGER;
ALTER TABLE jobs ADD COLUMN owner_per_core_hour INTEGER;
ALTER TABLE jobs ADD COLUMN work_ms INTEGER;
ALTER TABLE jobs ADD COLUMN largest_chunk_ms INTEGER;
ALTER TABLE jobs ADD COLUMN charged INTEGER NOT NULL DEFAULT 0;
-- Each chunk's work in reference core-milliseconds, as the app's cost model counts it.
ALTER TABLE tasks ADD COLUMN work_ms INTEGER NOT NULL DEFAULT 0;

-- The journal. A transaction (`txn`, its idempotency key) is the set of its rows and sums to
-- zero; an account's balance is the sum of its rows. Accounts: `customer:<tenant>`,
-- `job:<id>` (a job's hold), `owner:<id>`, `platform:fee`, `platform:grants` (credit given),
-- `external:deposits` (money paid in). A transaction is posted at most once: the unique key
-- makes a repeated posting a no-op.
CREATE TABLE ledger_entries (
    id      INTEGER PRIMARY KEY,
    txn     TEXT NOT NULL,
    account TEXT NOT NULL,
    amount  INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    -- The worker a result's earning came from (NULL for other rows).
    worker_id INTEGER,
    UNIQUE (txn, account)
);
CREATE INDEX ledger_by_account ON ledger_entries (account, id);
CREATE INDEX ledger_by_worker ON ledger_entries (worker_id) WHERE worker_id IS NOT NULL;

-- A result accepted as a chunk's output (or, for a replicated chunk, agreeing with it) is paid
-- in the same transaction as its verdict: its work at the job's rates, the charge taken from
-- the job's hold (never past it: the quote is the ceiling, the platform pays the rest of the
-- owner's earning), the owner's earning, and the platform's fee. A second copy of an
-- unreplicated chunk (a backup that lost) is superseded and earns nothing; results rejected
-- or never judged earn nothing.
CREATE TRIGGER results_paid AFTER UPDATE OF validate_state ON results
WHEN NEW.validate_state IN ('valid', 'redundant')
 AND OLD.validate_state NOT IN ('valid', 'redundant')
BEGIN
    INSERT INTO ledger_entries (txn, account, amount, at, worker_id)
    SELECT 'result:' || NEW.id, p.account, p.amount, p.now, p.worker FROM (
        SELECT 'job:' || NEW.job_id AS account, -c.charge AS amount, c.now, NULL AS worker
        FROM (SELECT MIN((j.price_per_core_hour * t.work_ms + 3599999) / 3600000,
                         CASE WHEN j.state IN ('completed', 'failed', 'cancelled') THEN 0
                              ELSE MAX(j.quote - j.charged, 0) END) AS charge,
                     CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now
              FROM tasks t JOIN jobs j ON j.id = t.job_id
              WHERE t.id = NEW.task_id AND j.quote IS NOT NULL
                AND (NEW.validate_state = 'valid' OR t.replicas > 1)) AS c
        UNION ALL
        SELECT 'owner:' || w.owner_id, c.earning, c.now, NEW.worker_id
        FROM (SELECT (j.owner_per_core_hour * t.work_ms + 3599999) / 3600000 AS earning,
                     CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now
              FROM tasks t JOIN jobs j ON j.id = t.job_id
              WHERE t.id = NEW.task_id AND j.quote IS NOT NULL
                AND (NEW.validate_state = 'valid' OR t.replicas > 1)) AS c
        JOIN workers w ON w.id = NEW.worker_id
        UNION ALL
        SELECT 'platform:fee', c.charge - c.earning, c.now, NULL
        FROM (SELECT MIN((j.price_per_core_hour * t.work_ms + 3599999) / 3600000,
                         CASE WHEN j.state IN ('completed', 'failed', 'cancelled') THEN 0
                              ELSE MAX(j.quote - j.charged, 0) END) AS charge,
                     (j.owner_per_core_hour * t.work_ms + 3599999) / 3600000 AS earning,
                     CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now
              FROM tasks t JOIN jobs j ON j.id = t.job_id
              WHERE t.id = NEW.task_id AND j.quote IS NOT NULL
                AND (NEW.validate_state = 'valid' OR t.replicas > 1)) AS c
    ) AS p
    WHERE p.amount <> 0
    ON CONFLICT (txn, account) DO NOTHING;
    UPDATE jobs SET charged = charged + COALESCE((SELECT -amount FROM ledger_entries
        WHERE txn = 'result:' || NEW.id AND account = 'job:' || NEW.job_id), 0)
    WHERE id = NEW.job_id;
END;

-- When a job ends, what its hold has left goes back to the customer.
CREATE TRIGGER jobs_hold_released AFTER UPDATE OF state ON jobs
WHEN NEW.state IN ('completed', 'failed', 'cancelled')
 AND OLD.state NOT IN ('completed', 'failed', 'cancelled')
 AND NEW.quote IS NOT NULL AND NEW.quote > NEW.charged
BEGIN
    INSERT INTO ledger_entries (txn, account, amount, at)
    SELECT 'release:' || NEW.id, e.account, e.amount, e.now FROM (
        SELECT 'job:' || NEW.id AS account, NEW.charged - NEW.quote AS amount,
               CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER) AS now
        UNION ALL
        SELECT 'customer:' || NEW.tenant_id, NEW.quote - NEW.charged,
               CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)
    ) AS e
    WHERE true
    ON CONFLICT (txn, account) DO NOTHING;
END;
