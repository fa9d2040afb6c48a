-- 0013: the newest consent signal of each (user_id, anonymous_id) pair, fed at insert time, so a
-- profile's consent (the Profile API document, privacy.consent.latest_sql) is found by identifier
-- instead of by reading every consent event of the profile's identifiers, whose cost grew with history.
--
-- One row per identifier of the pair (its user_id and its anonymous_id, whichever are set), ordered by
-- identifier: a profile's pairs are looked up by its member identifiers through the primary key.
-- argMax by (timestamp, message_id) and max are unchanged by an event counted twice, so the one-time
-- backfill of events stored before this view (privacy.consent_states.backfill) may overlap it.
CREATE TABLE IF NOT EXISTS consent_states
(
    identifier_type LowCardinality(String),
    identifier_value String,
    user_id String,
    anonymous_id String,
    prefs AggregateFunction(argMax, String, Tuple(DateTime64(3, 'UTC'), String)),
    at SimpleAggregateFunction(max, DateTime64(3, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (identifier_type, identifier_value, user_id, anonymous_id)
SETTINGS index_granularity = 1024;

CREATE MATERIALIZED VIEW IF NOT EXISTS consent_states_mv TO consent_states AS
SELECT id.1 AS identifier_type, id.2 AS identifier_value, user_id, anonymous_id,
       argMaxState(consent, (timestamp, message_id)) AS prefs, max(timestamp) AS at
FROM events
ARRAY JOIN arrayFilter(x -> x.2 != '', [('user_id', user_id), ('anonymous_id', anonymous_id)]) AS id
WHERE consent != ''
GROUP BY identifier_type, identifier_value, user_id, anonymous_id;
