-- 0016: a profile's own rows of the identifier mapping and of the audience membership changes found
-- by primary key, for the Profile API document (activation.profiles_api.reads) and every other
-- reader by profile (identity.store.MEMBERS_SQL, audiences.current.memberships_sql).
--
-- Both tables are ordered by something else (identifier; audience), and their bloom filters on
-- profile_id pruned few granules: a 20k-profile store read ~27-60k identity_map rows to find one
-- profile's 3 identifiers. A projection ordered by profile_id, with small granules, reads one
-- granule of 256 rows instead; ClickHouse picks it for `WHERE profile_id = / IN ...` by itself.
-- Projections live inside the table's parts: erasure (an ALTER ... DELETE mutation, clickhouse/erase.py)
-- rewrites them with the rows, so they need no forget path of their own. Parts written before this
-- migration get the projection when merged; until then they are read as before (same rows, slower).
--
-- identity_map is a ReplacingMergeTree: its merges drop older versions, so the projection is rebuilt
-- on merge (ClickHouse refuses projections on such tables otherwise).
ALTER TABLE identity_map MODIFY SETTING deduplicate_merge_projection_mode = 'rebuild';

ALTER TABLE identity_map ADD PROJECTION IF NOT EXISTS by_profile
(SELECT identifier_type, identifier_value, profile_id ORDER BY profile_id)
WITH SETTINGS (index_granularity = 256);

ALTER TABLE audience_membership_changes ADD PROJECTION IF NOT EXISTS by_profile
(SELECT audience_id, profile_id, change, at ORDER BY profile_id, audience_id, at)
WITH SETTINGS (index_granularity = 256);
