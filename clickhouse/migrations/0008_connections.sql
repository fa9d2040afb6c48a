-- 0008: event forwarding (SPEC §8, issue 12): connections (source → event destination), event dead
-- letters and replays. Versioned tables are ReplacingMergeTree(version): read them with FINAL.
--
-- A connection forwards a source's events to one event destination. `filter` and `mapping` are
-- JSON ({"types": [...], "events": [...]} and {"events": {...}, "properties": {...}}).
CREATE TABLE IF NOT EXISTS connections
(
    id String,
    source_id String,
    destination_id String,
    filter String,
    mapping String,
    enabled UInt8,
    deleted UInt8,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Events a destination refused for good (or could not be sent: bad credentials), with the reason and
-- the outbound event as it was queued, so a replay re-sends exactly it. Ids sort by creation time.
CREATE TABLE IF NOT EXISTS event_dead_letters
(
    destination_id String,
    id String,
    connection_id String,
    message_id String,
    person String,
    item String,
    reason String,
    status LowCardinality(String),
    created_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (destination_id, id);

-- Replays of stored events to an event destination: the window, filter, progress and status.
CREATE TABLE IF NOT EXISTS event_replays
(
    id String,
    destination_id String,
    from_ts DateTime64(3, 'UTC'),
    to_ts DateTime64(3, 'UTC'),
    filter String,
    status LowCardinality(String),
    total UInt64,
    sent UInt64,
    failed UInt64,
    skipped UInt64,
    error String,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
