-- 0003: audiences. Definitions as versioned rows; each computation writes a snapshot of the
-- members (kept 7 days, for diffs and debugging) and the membership changes it causes, which are
-- the lasting history: a profile is a member at time T when its latest change at or before T is
-- 'entered'. A run is complete once its row is in audience_runs.

-- Definitions: read with FINAL (or argMax) so the newest version wins; `definition` is the
-- canonical JSON tree.
CREATE TABLE IF NOT EXISTS audiences
(
    id String,
    key String,
    name String,
    definition String,
    destinations Array(String),
    schedule_every_s UInt32,
    emit_events UInt8,
    enabled UInt8,
    deleted UInt8,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Members as computed by one run (computed_at identifies the run).
CREATE TABLE IF NOT EXISTS audience_snapshots
(
    audience_id String,
    computed_at DateTime64(3, 'UTC'),
    profile_id String
)
ENGINE = MergeTree
PARTITION BY toYYYYMMDD(computed_at)
ORDER BY (audience_id, computed_at, profile_id)
TTL toDateTime(computed_at) + toIntervalDay(7)
SETTINGS ttl_only_drop_parts = 1;

-- Entered/exited per profile and run: the membership history and the input of destination syncs.
CREATE TABLE IF NOT EXISTS audience_membership_changes
(
    audience_id String,
    profile_id String,
    change Enum8('entered' = 1, 'exited' = 2),
    at DateTime64(3, 'UTC'),
    INDEX idx_profile_id profile_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = MergeTree
ORDER BY (audience_id, profile_id, at);

-- One row per completed run, with its counts.
CREATE TABLE IF NOT EXISTS audience_runs
(
    audience_id String,
    computed_at DateTime64(3, 'UTC'),
    members UInt64,
    entered UInt64,
    exited UInt64,
    duration_ms UInt32
)
ENGINE = MergeTree
ORDER BY (audience_id, computed_at);
