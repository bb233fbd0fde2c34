-- Device reputation: counts come from the results table; a device with too many invalid
-- results is quarantined (it gets no work, its unjudged results are discarded).
ALTER TABLE workers ADD COLUMN quarantined_at INTEGER;
-- Partial indexes: only the rare bad results are indexed, so recording the common good ones
-- (the hot path) pays nothing. Counting a device's valid results scans its results; only
-- GET /v1/workers/me does that.
CREATE INDEX results_invalid_by_worker ON results (worker_id) WHERE validate_state = 'invalid';
CREATE INDEX results_silent_by_worker ON results (worker_id) WHERE outcome = 'no_reply';
