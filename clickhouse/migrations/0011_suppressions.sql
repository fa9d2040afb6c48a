-- 0011: suppressed identifiers (keyed hashes only, never plain values) and a source's required
-- consent category at collection.
--
-- One row per suppression change, newest version wins (read with FINAL): `hash` is hex HMAC-SHA256
-- of "type:normalised value" under a key derived from MAGPIE_SECRET_KEY; `deleted` = 1 lifts it.
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

-- Events without this consent category granted (context.consent.categoryPreferences) are dropped
-- at collection and counted; '' requires nothing.
ALTER TABLE sources ADD COLUMN IF NOT EXISTS required_consent_category String DEFAULT '';
