-- 0002: identity graph and unified profiles (SPEC §6).
-- Versioned tables are ReplacingMergeTree(version) with a `deleted` flag: read them with FINAL
-- or argMax(..., version) and skip deleted rows, so nothing is double counted before merges.
--
-- Identifier sets seen together (one row per distinct set, earliest evidence wins on read:
-- GROUP BY link_key with argMin). ids are (type, value) pairs sorted; a set of one registers a
-- lone identifier. kind is the event type, or 'import' / 'proposal'. inserted_at tells the
-- incremental stitch job which sets are new.
CREATE TABLE IF NOT EXISTS identity_links
(
    ids Array(Tuple(String, String)),
    link_key UInt64 DEFAULT cityHash64(ids),
    timestamp DateTime64(3, 'UTC'),
    message_id String,
    source_id String,
    kind LowCardinality(String),
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6)
)
ENGINE = MergeTree
ORDER BY link_key;

-- The versioned identifier -> profile mapping that events are read through.
-- Types: anonymous_id, user_id, email, phone, device_id, advertising_id, group_id, record, ext:<type>.
CREATE TABLE IF NOT EXISTS identity_map
(
    identifier_type LowCardinality(String),
    identifier_value String,
    profile_id String,
    version UInt64,
    deleted UInt8,
    INDEX idx_profile_id profile_id TYPE bloom_filter(0.01) GRANULARITY 1
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (identifier_type, identifier_value);

-- Unmerge constraints: identifiers on different sides of a split never share a profile.
CREATE TABLE IF NOT EXISTS identity_splits
(
    split_id String,
    identifier_type LowCardinality(String),
    identifier_value String,
    side UInt8,
    profile_id String,
    reason String,
    created_at DateTime64(3, 'UTC'),
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (split_id, identifier_type, identifier_value);

-- Links refused by a rule (limit, profile size, split), with the evidence.
CREATE TABLE IF NOT EXISTS identity_conflicts
(
    profile_id String,
    conflict_id String,
    other_profile_id String,
    a_type LowCardinality(String),
    a_value String,
    b_type LowCardinality(String),
    b_value String,
    rule String,
    detail String,
    kind LowCardinality(String),
    message_id String,
    source_id String,
    timestamp DateTime64(3, 'UTC'),
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (profile_id, conflict_id);

-- Merge ledger: which profiles were joined, by which event, through which rule.
CREATE TABLE IF NOT EXISTS merge_ledger
(
    profile_id String,
    ledger_id String,
    merged_profile_ids Array(String),
    a_type LowCardinality(String),
    a_value String,
    b_type LowCardinality(String),
    b_value String,
    rule String,
    kind LowCardinality(String),
    message_id String,
    source_id String,
    timestamp DateTime64(3, 'UTC'),
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (profile_id, ledger_id);

-- Identity rules (one JSON document, id 'default') and job state such as the watermark.
CREATE TABLE IF NOT EXISTS identity_settings
(
    name String,
    value String,
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;

-- Offline / CRM records imported through the admin API: identifiers and traits.
CREATE TABLE IF NOT EXISTS identity_records
(
    record_id String,
    batch_id String,
    ids Array(Tuple(String, String)),
    traits String,
    imported_at DateTime64(3, 'UTC'),
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY record_id;

-- Fuzzy merge proposals for records without a shared hard identifier.
CREATE TABLE IF NOT EXISTS identity_proposals
(
    proposal_id String,
    record_id String,
    profile_id String,
    candidate_profile_id String,
    score Float64,
    detail String,
    status LowCardinality(String),
    created_at DateTime64(3, 'UTC'),
    decided_at Nullable(DateTime64(3, 'UTC')),
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY proposal_id;

-- Merged traits: the newest value per trait, with where and when it came from.
CREATE TABLE IF NOT EXISTS profile_traits
(
    profile_id String,
    trait String,
    value String,
    source_id String,
    updated_at DateTime64(3, 'UTC'),
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (profile_id, trait);

-- Built-in computed traits per profile.
CREATE TABLE IF NOT EXISTS profiles
(
    profile_id String,
    first_seen DateTime64(3, 'UTC'),
    last_seen DateTime64(3, 'UTC'),
    event_count UInt64,
    session_count UInt64,
    lifetime_revenue Float64,
    is_bot UInt8,
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY profile_id;

-- User-defined computed traits: definitions (JSON) and their values per profile.
CREATE TABLE IF NOT EXISTS computed_trait_definitions
(
    name String,
    definition String,
    updated_at DateTime64(3, 'UTC'),
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY name;

CREATE TABLE IF NOT EXISTS profile_computed_traits
(
    profile_id String,
    name String,
    value Float64,
    computed_at DateTime64(3, 'UTC'),
    version UInt64,
    deleted UInt8
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (profile_id, name);

-- The live mapping: newest version per identifier, deleted ones left out.
CREATE VIEW IF NOT EXISTS identity_current AS
SELECT identifier_type, identifier_value, argMax(profile_id, version) AS profile_id
FROM identity_map
GROUP BY identifier_type, identifier_value
HAVING argMax(deleted, version) = 0;

-- Events read through the mapping: the user_id mapping wins over the anonymous_id one; events
-- with neither mapped are left out. History belongs to the profile once linked.
CREATE VIEW IF NOT EXISTS profile_events AS
SELECT if(u.profile_id != '', u.profile_id, a.profile_id) AS profile_id, e.*
FROM events AS e
LEFT JOIN (SELECT identifier_value, profile_id FROM identity_current WHERE identifier_type = 'user_id') AS u
    ON u.identifier_value = e.user_id
LEFT JOIN (SELECT identifier_value, profile_id FROM identity_current WHERE identifier_type = 'anonymous_id') AS a
    ON a.identifier_value = e.anonymous_id
WHERE if(u.profile_id != '', u.profile_id, a.profile_id) != '';
