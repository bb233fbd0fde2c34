-- Verification against cheating devices.
-- An owner may belong to a customer's account: its devices are that customer's own fleet.
ALTER TABLE owners ADD COLUMN tenant_id INTEGER REFERENCES tenants(id);
-- Which devices may run a job: 'any' (the open grid) or 'own' (the customer's own fleet).
ALTER TABLE jobs ADD COLUMN placement TEXT NOT NULL DEFAULT 'any';
-- A result the app's validator passed but found worse than the settings give: it counts only
-- once another party returns the same bytes.
ALTER TABLE results ADD COLUMN suspect INTEGER NOT NULL DEFAULT 0;
-- Results the app's validator rejected, waiting for an independent party's result (rare).
CREATE INDEX results_disputed ON results (task_id) WHERE validate_state = 'disputed';
