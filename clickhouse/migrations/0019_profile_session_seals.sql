-- 0019: sessions counted incrementally. A profile row keeps, with its session count, the span of
-- its latest session (`sessions_start` .. `sessions_end`, its first and last event) and a key of
-- the identifiers whose rows it owns (`sessions_key`: a hash over its user ids, anonymous ids and
-- the pairs it owns through an anonymous id). Every earlier session ended more than 30 minutes
-- before `sessions_start`, so the next stitch tick counts the profile's sessions from this row and
-- the events of its window alone: an event at or after `sessions_start` can only extend the latest
-- session or open new ones. Anything else — an event timestamped before it, a changed key (a merge,
-- an unmerge, a pair that moved), a recompute outside a tick, no row yet — counts the profile's
-- sessions again from all its states (activation/identity/sessions.py). The table's owner stays
-- activation/identity/profiles.py: the columns are erased with the row (privacy), so they need no
-- forget path of their own, and a person's export leaves them out (bookkeeping, not data).
ALTER TABLE profiles ADD COLUMN IF NOT EXISTS sessions_start DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC');

ALTER TABLE profiles ADD COLUMN IF NOT EXISTS sessions_end DateTime64(3, 'UTC') DEFAULT toDateTime64(0, 3, 'UTC');

ALTER TABLE profiles ADD COLUMN IF NOT EXISTS sessions_key UInt64 DEFAULT 0;
