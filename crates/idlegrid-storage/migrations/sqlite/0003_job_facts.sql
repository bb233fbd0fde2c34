-- What the partitioner found out about a job's input (JSON), e.g. a video's codec and frame count.
ALTER TABLE jobs ADD COLUMN facts TEXT;
