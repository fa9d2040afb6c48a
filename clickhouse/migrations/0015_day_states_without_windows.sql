-- 0015: the day states of 0009 computed without window functions, for the same rows at a lower
-- insert cost. 0009 numbered each event's session with a running sum over a lag (two windows, a
-- sort of the whole block by pair, event and day), then grouped twice. Here each (pair, event, day)
-- group of the block collects its timestamps, sorted: a session starts at the first and wherever
-- the gap to the previous one exceeds 30 minutes, and ends before the next start or at the last, so
-- `sessions` holds the same (first, last) spans (in time order) and every other column the same
-- sums, minima and maxima as before. Views read through `system.tables` (the one-time backfills)
-- take this query too.
ALTER TABLE profile_event_states_mv MODIFY QUERY
SELECT user_id, anonymous_id, event, day, first_seen, last_seen, events, revenue, ua_events, bot_ua_events,
       arrayZip(arrayFilter((t, s) -> s, times, starts),
                arrayFilter((t, e) -> e, times, arrayPushBack(arrayPopFront(starts), 1))) AS sessions,
       prop_sum, prop_min, prop_max, prop_n
FROM (
    SELECT user_id, anonymous_id, event, day, min(timestamp) AS first_seen, max(timestamp) AS last_seen,
        count() AS events, sum(revenue) AS revenue, countIf(user_agent != '') AS ua_events,
        countIf(is_bot = 1 AND user_agent != '') AS bot_ua_events, sumMap(props) AS prop_sum,
        minMap(props) AS prop_min, maxMap(props) AS prop_max,
        sumMap((props.1, arrayMap(k -> toUInt64(1), props.1))) AS prop_n,
        arraySort(groupArray(timestamp)) AS times,
        arrayMap((gap, i) -> i = 1 OR gap > 1800000,
                 arrayDifference(arrayMap(t -> toUnixTimestamp64Milli(t), times)), arrayEnumerate(times)) AS starts
    FROM (
        SELECT user_id, anonymous_id, event, toDate(timestamp) AS day, timestamp, user_agent, is_bot,
            if(type = 'track', if(JSONHas(properties, 'revenue'), JSONExtractFloat(properties, 'revenue'),
                                  JSONExtractFloat(properties, 'total')), 0) AS revenue,
            (kvs.1, kvs.2) AS props,
            JSONExtractKeysAndValues(properties, 'Float64') AS kvs
        FROM events WHERE user_id != '' OR anonymous_id != ''
    )
    GROUP BY user_id, anonymous_id, event, day
);
