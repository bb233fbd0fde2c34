-- Device reputation: counts come from the results table; a device with too many invalid
-- results is quarantined (it gets no work, its unjudged results are discarded).
ALTER TABLE workers ADD COLUMN quarantined_at INTEGER;
CREATE INDEX results_by_worker ON results (worker_id, validate_state);
