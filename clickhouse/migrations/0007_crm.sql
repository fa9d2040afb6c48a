-- 0007_crm: CRM sources (HubSpot, Salesforce pulls) and trait sync to CRMs (issue 11).
-- Versioned tables are ReplacingMergeTree(version): read them with FINAL so the newest version wins.
--
-- The CRM side of a source (the `sources` row keeps name, write key, enabled): its type, config and
-- AES-GCM sealed credentials (bound to the source id; only their names kept in clear).
CREATE TABLE IF NOT EXISTS crm_sources
(
    source_id String,
    type LowCardinality(String),
    config String,
    credentials String,
    credential_names Array(String),
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY source_id;

-- Pull progress per source and CRM object: the watermark (newest modification time fully read) and
-- the in-flight position (search offset, query locator, bulk job and locator, deletion watermark),
-- rewritten after every page so a crashed pull resumes where it stopped.
CREATE TABLE IF NOT EXISTS crm_cursors
(
    source_id String,
    object String,
    cursor String,
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (source_id, object);

-- One row per pull run (rewritten with a higher version as it progresses and when it ends).
CREATE TABLE IF NOT EXISTS crm_pull_runs
(
    id String,
    source_id String,
    trigger LowCardinality(String),
    started_at DateTime64(3, 'UTC'),
    finished_at Nullable(DateTime64(3, 'UTC')),
    status LowCardinality(String),
    fetched UInt64,
    created UInt64,
    updated UInt64,
    merged UInt64,
    deleted UInt64,
    errors UInt64,
    messages Array(String),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Deals / opportunities as pulled, with the identifiers (`ext:<type>:<id>` labels) of the people and
-- companies they are associated with; their summaries become traits of those profiles.
CREATE TABLE IF NOT EXISTS crm_objects
(
    source_id String,
    object String,
    object_id String,
    properties String,
    targets Array(String),
    deleted UInt8,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (source_id, object, object_id);

-- Trait sync: the CRM field values each destination has confirmed per profile (JSON text), so a run
-- sends only values that changed since.
CREATE TABLE IF NOT EXISTS crm_trait_state
(
    destination_id String,
    profile_id String,
    field String,
    value String,
    run_id String,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (destination_id, profile_id, field);
