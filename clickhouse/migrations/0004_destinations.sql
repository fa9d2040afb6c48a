-- 0004: destinations and syncs (SPEC §8). Versioned tables are ReplacingMergeTree(version): read
-- them with FINAL so the newest version wins.
--
-- Configured destinations. `credentials` is AES-GCM ciphertext (key derived from MAGPIE_SECRET_KEY,
-- bound to the destination id); only the names of the credential fields are kept in clear.
CREATE TABLE IF NOT EXISTS destinations
(
    id String,
    type LowCardinality(String),
    name String,
    config String,
    credentials String,
    credential_names Array(String),
    consent_category String,
    enabled UInt8,
    field_mapping String,
    identifier_priority Array(String),
    deleted UInt8,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- What each destination has confirmed per audience and profile: 'present' and 'absent' are
-- confirmed by the platform; 'dead_add' / 'dead_remove' are permanent failures (dead-lettered,
-- skipped until replayed). A sync sends computed members minus confirmed ones, so a crashed run
-- resumes without resending anything already confirmed.
CREATE TABLE IF NOT EXISTS sync_state
(
    destination_id String,
    audience_id String,
    profile_id String,
    status Enum8('present' = 1, 'absent' = 2, 'dead_add' = 3, 'dead_remove' = 4),
    run_id String,
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (destination_id, audience_id, profile_id);

-- One row per sync run (rewritten with a higher version when it finishes). Ids sort by start time.
CREATE TABLE IF NOT EXISTS sync_runs
(
    id String,
    destination_id String,
    audience_id String,
    trigger LowCardinality(String),
    started_at DateTime64(3, 'UTC'),
    finished_at Nullable(DateTime64(3, 'UTC')),
    status LowCardinality(String),
    added UInt64,
    removed UInt64,
    failed UInt64,
    duration_ms UInt64,
    errors Array(String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Records a run could not deliver, with the reason; `permanent` ones are skipped by later runs
-- until replayed (POST /admin/v1/syncs/{id}/replay), the others are retried by the next run anyway.
CREATE TABLE IF NOT EXISTS sync_dead_letters
(
    run_id String,
    destination_id String,
    audience_id String,
    profile_id String,
    change Enum8('entered' = 1, 'exited' = 2),
    reason String,
    permanent UInt8,
    status LowCardinality(String),
    created_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (run_id, profile_id, change);
