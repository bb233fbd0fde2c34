-- Per-chunk parameters set by the partitioner (JSON), e.g. a video chunk's kind and frame count.
ALTER TABLE tasks ADD COLUMN meta TEXT;
