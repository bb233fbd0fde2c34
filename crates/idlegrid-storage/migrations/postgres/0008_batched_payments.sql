-- Accepted results are paid by the verdict that accepts them, as on SQLite (0010 there), by
-- the same Rust rules (`records/payments.rs`): one rule in one language, one ledger key scheme
-- (`pay:<first result id>` per job, device and kind of earning), and unverified results'
-- earnings held back, which a trigger could not tell apart.
DROP TRIGGER results_paid ON results;
DROP FUNCTION pay_result();
