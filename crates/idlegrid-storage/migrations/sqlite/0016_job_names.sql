-- A job's name for people (the input's file name by default, or what the customer gave).
ALTER TABLE jobs ADD COLUMN name TEXT;
