-- Held earnings mature in journal order (see the SQLite migration 0013_held_earnings.sql).
CREATE TABLE ledger_marks (
    name    TEXT PRIMARY KEY,
    last_id BIGINT NOT NULL
);
INSERT INTO ledger_marks (name, last_id) VALUES ('held', 0);
