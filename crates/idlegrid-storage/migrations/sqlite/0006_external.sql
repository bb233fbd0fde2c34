-- Where a job's input comes from and its output goes besides this grid's blob store (a URL or
-- a customer's bucket, with the credentials to reach it; JSON, NULL when neither).
ALTER TABLE jobs ADD COLUMN external TEXT;
