-- A device on probation (not yet trusted) may hold only so many results that await a check:
-- counted per device on every lease it asks for.
CREATE INDEX results_in_doubt_by_worker ON results (worker_id)
    WHERE validate_state IN ('pending', 'passed', 'disputed');
