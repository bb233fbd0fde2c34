-- A job's name for people (see the SQLite migration 0016_job_names.sql).
ALTER TABLE jobs ADD COLUMN name TEXT;
