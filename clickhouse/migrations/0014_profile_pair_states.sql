-- 0014: the per-day states of 0009 rolled up per identifier pair and event name, so a profile's
-- built-in traits and its all-time computed traits read a few rows per pair whatever the history:
-- per day, a profile seen on N days holds N rows per event name, and a tick touching 1,000 profiles
-- scattered over a table as large as the history read most of its granules.
--
-- Fed by a view on `profile_event_states` (each block the 0009 view writes, grouped per pair and
-- event), so it holds exactly the day states summed over days. Small granules: a tick looks up
-- thousands of scattered pairs, each costing a granule. States stored before this view are added
-- once by the stitch job (`activation.identity.states.ensure_backfilled`), from the events.
CREATE TABLE IF NOT EXISTS profile_pair_states
(
    user_id String,
    anonymous_id String,
    event String,
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
ORDER BY (user_id, anonymous_id, event)
SETTINGS index_granularity = 64;

CREATE MATERIALIZED VIEW IF NOT EXISTS profile_pair_states_mv TO profile_pair_states AS
SELECT user_id, anonymous_id, event, min(first_seen) AS first_seen, max(last_seen) AS last_seen,
       sum(events) AS events, sum(revenue) AS revenue, sum(ua_events) AS ua_events,
       sum(bot_ua_events) AS bot_ua_events, groupArrayArray(sessions) AS sessions,
       sumMap(prop_sum) AS prop_sum, minMap(prop_min) AS prop_min, maxMap(prop_max) AS prop_max,
       sumMap(prop_n) AS prop_n
FROM profile_event_states
GROUP BY user_id, anonymous_id, event;
