-- 0006: privacy (SPEC §9). Deletion and export requests with their receipts, the audit trail of
-- every privacy request, suppressed identifiers (keyed hashes only), and rejected events no longer
-- expiring at a fixed 90 days: the daily `expire_rejected_events` job deletes them after
-- MAGPIE_REJECTED_RETENTION_DAYS; the TTL stays only as an outer bound of a year.
--
-- Privacy requests (kind 'deletion' or 'export'): versioned rows, read with FINAL. `identifiers`
-- holds the request's identifiers in the clear only while the work is pending or running; the
-- finishing version blanks it and older versions are deleted, so a completed deletion leaves no
-- plain identifier here (the receipt names them as keyed hashes).
CREATE TABLE IF NOT EXISTS privacy_requests
(
    id String,
    kind LowCardinality(String),
    mode LowCardinality(String),
    status LowCardinality(String),
    identifiers String,
    identifier_hashes Array(String),
    token_id String,
    requested_at DateTime64(3, 'UTC'),
    started_at Nullable(DateTime64(3, 'UTC')),
    finished_at Nullable(DateTime64(3, 'UTC')),
    receipt String,
    error String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Who asked what, when, and how it ended: append-only, identifiers only as keyed hashes.
CREATE TABLE IF NOT EXISTS privacy_audit
(
    at DateTime64(3, 'UTC'),
    request_id String,
    action LowCardinality(String),
    token_id String,
    identifier_hashes Array(String),
    mode LowCardinality(String),
    outcome LowCardinality(String),
    detail String
)
ENGINE = MergeTree
ORDER BY (at, request_id);

-- Suppressed identifiers (activation/privacy/suppressions.py): HMAC-SHA256 of `type:value`.
CREATE TABLE IF NOT EXISTS suppressions
(
    hash String,
    identifier_type LowCardinality(String),
    request_id String,
    deleted UInt8,
    created_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY hash;

ALTER TABLE rejected_events MODIFY TTL toDateTime(received_at) + toIntervalDay(366);
