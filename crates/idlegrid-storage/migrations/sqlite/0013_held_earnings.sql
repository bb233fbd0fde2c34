-- Held earnings (`held:<owner>`, see records/payments.rs) mature in journal order: the last
-- journal row a maturing covered.
CREATE TABLE ledger_marks (
    name    TEXT PRIMARY KEY,
    last_id INTEGER NOT NULL
);
INSERT INTO ledger_marks (name, last_id) VALUES ('held', 0);
