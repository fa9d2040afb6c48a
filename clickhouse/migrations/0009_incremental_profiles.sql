-- 0009: incremental profiles. Aggregate states per identifier pair (user_id, anonymous_id), fed at
-- insert time by materialized views on `events`, so a profile is rebuilt by merging the states of
-- its pairs (an event belongs to the profile of its user_id when mapped, else of its anonymous_id):
-- merges and unmerges regroup pairs, and nothing rescans a profile's events. Counters are per UTC
-- day, so windowed computed traits drop whole days as the window slides. A block that the events
-- table deduplicates (a writer replay) is not passed to the views, so each stored event counts once.
--
-- Built-in counters, user-defined aggregates and sessions per pair, event name and day. `sessions`
-- holds the (first, last) spans of the sessions in each inserted block (events at most 30 min
-- apart); the union of the spans of every pair of a profile, joined where less than 30 min apart,
-- gives exactly the profile's sessions. `prop_*` hold each top-level property as JSONExtractFloat
-- reads it (missing or non-numeric counts as 0), so sum/avg/min/max of any property need no rescan.
CREATE TABLE IF NOT EXISTS profile_event_states
(
    user_id String,
    anonymous_id String,
    event String,
    day Date,
    first_seen SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    events SimpleAggregateFunction(sum, UInt64),
    revenue SimpleAggregateFunction(sum, Float64),
    ua_events SimpleAggregateFunction(sum, UInt64),
    bot_ua_events SimpleAggregateFunction(sum, UInt64),
    sessions SimpleAggregateFunction(groupArrayArray, Array(Tuple(DateTime64(3, 'UTC'), DateTime64(3, 'UTC')))),
    prop_sum SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(Float64))),
    prop_min SimpleAggregateFunction(minMap, Tuple(Array(String), Array(Float64))),
    prop_max SimpleAggregateFunction(maxMap, Tuple(Array(String), Array(Float64))),
    prop_n SimpleAggregateFunction(sumMap, Tuple(Array(String), Array(UInt64)))
)
ENGINE = AggregatingMergeTree
ORDER BY (user_id, anonymous_id, event, day);

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_event_states_mv TO profile_event_states AS
SELECT user_id, anonymous_id, event, day, min(s_first) AS first_seen, max(s_last) AS last_seen,
       sum(n) AS events, sum(rev) AS revenue, sum(ua) AS ua_events, sum(bot) AS bot_ua_events,
       groupArray((s_first, s_last)) AS sessions, sumMap(psum) AS prop_sum, minMap(pmin) AS prop_min,
       maxMap(pmax) AS prop_max, sumMap(pn) AS prop_n
FROM (
    SELECT user_id, anonymous_id, event, day, session_no, min(timestamp) AS s_first,
        max(timestamp) AS s_last, count() AS n, sum(revenue) AS rev, countIf(user_agent != '') AS ua,
        countIf(is_bot = 1 AND user_agent != '') AS bot, sumMap(props) AS psum, minMap(props) AS pmin,
        maxMap(props) AS pmax, sumMap((props.1, arrayMap(k -> toUInt64(1), props.1))) AS pn
    FROM (
        SELECT *, sum(starts) OVER (PARTITION BY user_id, anonymous_id, event, day
                                    ORDER BY timestamp, message_id
                                    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS session_no
        FROM (
            SELECT user_id, anonymous_id, event, toDate(timestamp) AS day, timestamp, message_id,
                user_agent, is_bot,
                if(type = 'track', if(JSONHas(properties, 'revenue'), JSONExtractFloat(properties, 'revenue'),
                                      JSONExtractFloat(properties, 'total')), 0) AS revenue,
                (kvs.1, kvs.2) AS props,
                JSONExtractKeysAndValues(properties, 'Float64') AS kvs,
                toUInt64(toUnixTimestamp64Milli(timestamp)
                    - lagInFrame(toUnixTimestamp64Milli(timestamp), 1, toInt64(0))
                      OVER (PARTITION BY user_id, anonymous_id, event, toDate(timestamp)
                            ORDER BY timestamp, message_id ROWS BETWEEN 1 PRECEDING AND CURRENT ROW)
                    > 1800000) AS starts
            FROM events WHERE user_id != '' OR anonymous_id != ''
        )
    )
    GROUP BY user_id, anonymous_id, event, day, session_no
)
GROUP BY user_id, anonymous_id, event, day;

-- Traits per pair: the newest value of each trait by (timestamp, message_id), where it came from.
CREATE TABLE IF NOT EXISTS profile_trait_states
(
    user_id String,
    anonymous_id String,
    trait String,
    value AggregateFunction(argMax, String, Tuple(DateTime64(3, 'UTC'), String)),
    source_id AggregateFunction(argMax, String, Tuple(DateTime64(3, 'UTC'), String)),
    ord SimpleAggregateFunction(max, Tuple(DateTime64(3, 'UTC'), String))
)
ENGINE = AggregatingMergeTree
ORDER BY (user_id, anonymous_id, trait);

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_trait_states_mv TO profile_trait_states AS
SELECT user_id, anonymous_id, kv.1 AS trait, argMaxState(kv.2, o) AS value,
       argMaxState(toString(src), o) AS source_id, max(o) AS ord
FROM (
    SELECT user_id, anonymous_id, source_id AS src, (timestamp, message_id) AS o,
        arrayJoin(JSONExtractKeysAndValuesRaw(if(type = 'identify', traits, JSONExtractRaw(context, 'traits'))))
            AS kv
    FROM events WHERE type != 'group' AND (user_id != '' OR anonymous_id != '')
)
GROUP BY user_id, anonymous_id, trait;

-- Pairs with both ids, by anonymous_id: finds the pairs an anonymous id owns while their user_id
-- is unmapped (a blocked value, or not stitched yet).
CREATE TABLE IF NOT EXISTS profile_pairs
(
    anonymous_id String,
    user_id String
)
ENGINE = ReplacingMergeTree
ORDER BY (anonymous_id, user_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_pairs_mv TO profile_pairs AS
SELECT DISTINCT anonymous_id, user_id FROM events WHERE anonymous_id != '' AND user_id != '';

-- Time-window sweeps (streaming audiences, windowed traits) find events by timestamp.
ALTER TABLE events ADD INDEX IF NOT EXISTS idx_timestamp timestamp TYPE minmax GRANULARITY 1;

-- Freshness of each audience: the newest event its membership reflects (inserted_at) and when the
-- membership was brought up to it, per streaming micro-batch or batch run. Read with FINAL.
CREATE TABLE IF NOT EXISTS audience_freshness
(
    audience_id String,
    mode LowCardinality(String),
    newest_event_at Nullable(DateTime64(6, 'UTC')),
    updated_at DateTime64(6, 'UTC'),
    lag_ms UInt64,
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY audience_id;
