-- 0018: the Profile API's documents, written when a profile changes (a stitch tick, an audience's
-- entries and exits), so a document missing from the Redis cache is one primary-key read by the
-- identifier asked for, not the ~8 reads of traits, identities, audiences and consent it is made of.
--
-- One row per identifier of the profile, each with the whole document (compressed: the copies of one
-- profile sit side by side). `version` is the time the document's reads started: of two writers, the one
-- that read later wins. `generation` is the profile cache's generation (activation/identity/cache.py)
-- when it was built: a full restitch moves to a new generation and every older row stops being served.
-- The document lists its identities: a row whose document no longer lists its identifier (moved to
-- another profile, deleted) is not served either. Owner: activation/profiles_api/documents.py.
CREATE TABLE IF NOT EXISTS profile_documents
(
    identifier_type LowCardinality(String),
    identifier_value String,
    version UInt64,
    generation UInt64,
    profile_id String,
    document String CODEC(ZSTD(3))
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (identifier_type, identifier_value)
SETTINGS index_granularity = 256;
