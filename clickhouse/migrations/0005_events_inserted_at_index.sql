-- 0005: a minmax index on events.inserted_at, so incremental stitching (which reads events
-- inserted after its watermark) skips old parts instead of scanning the whole column.
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_inserted_at inserted_at TYPE minmax GRANULARITY 1;
