-- 0012: identity lookups a stitch tick can afford whatever the history: identifier sets found by
-- identifier, new sets found by insertion time, both by primary key instead of scanning
-- identity_links (ordered by link_key) with hasAny or max(inserted_at).
--
-- One row per identifier of each stored set, ordered by identifier: walking a component looks its
-- frontier up here, then reads the sets by link_key. Small granules: a tick looks up thousands of
-- scattered identifiers, each costing a granule. Sets stored before this migration are indexed
-- once by the stitch job (`activation.identity.links.ensure_indexed`).
CREATE TABLE IF NOT EXISTS identity_link_ids
(
    identifier_type String,
    identifier_value String,
    link_key UInt64
)
ENGINE = ReplacingMergeTree
ORDER BY (identifier_type, identifier_value, link_key)
SETTINGS index_granularity = 256;

CREATE MATERIALIZED VIEW IF NOT EXISTS identity_link_ids_mv TO identity_link_ids AS
SELECT pair.1 AS identifier_type, pair.2 AS identifier_value, link_key
FROM identity_links ARRAY JOIN ids AS pair;

-- The sets in the order they were stored: which are new since the links watermark.
CREATE TABLE IF NOT EXISTS identity_link_log
(
    inserted_at DateTime64(6, 'UTC'),
    link_key UInt64
)
ENGINE = MergeTree
ORDER BY (inserted_at, link_key);

CREATE MATERIALIZED VIEW IF NOT EXISTS identity_link_log_mv TO identity_link_log AS
SELECT inserted_at, link_key FROM identity_links;
