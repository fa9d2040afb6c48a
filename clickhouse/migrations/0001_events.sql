-- 0001: the events store. One row per accepted event: every Segment field and every
-- enrichment as a typed column, plus the raw event as received.
-- Partitioned by the month the event arrived (imports of old data do not scatter parts),
-- ordered for per-source, per-day and per-person reads. `retention_days` is the TTL hook:
-- 0 keeps forever; the collector writes the source's retention into each row.
CREATE TABLE IF NOT EXISTS events
(
    source_id LowCardinality(String),
    message_id String,
    type LowCardinality(String),
    event String,
    name String,
    category String,
    user_id String,
    anonymous_id String,
    group_id String,
    previous_id String,
    timestamp DateTime64(3, 'UTC'),
    original_timestamp DateTime64(3, 'UTC'),
    sent_at Nullable(DateTime64(3, 'UTC')),
    received_at DateTime64(3, 'UTC'),
    timestamp_clamped UInt8,
    properties String,
    traits String,
    context String,
    integrations String,
    raw String,
    ip String,
    library_name LowCardinality(String),
    library_version LowCardinality(String),
    channel LowCardinality(String),
    locale LowCardinality(String),
    timezone LowCardinality(String),
    user_agent String,
    page_url String,
    page_path String,
    page_referrer String,
    page_title String,
    page_search String,
    app_name LowCardinality(String),
    app_version LowCardinality(String),
    app_build LowCardinality(String),
    app_namespace LowCardinality(String),
    device_id String,
    advertising_id String,
    ad_tracking_enabled Nullable(UInt8),
    device_manufacturer LowCardinality(String),
    device_model LowCardinality(String),
    device_name String,
    device_type LowCardinality(String),
    os_name LowCardinality(String),
    os_version LowCardinality(String),
    network_carrier LowCardinality(String),
    network_wifi Nullable(UInt8),
    network_cellular Nullable(UInt8),
    screen_width UInt32,
    screen_height UInt32,
    screen_density Float32,
    ua_browser LowCardinality(String),
    ua_browser_version LowCardinality(String),
    ua_os LowCardinality(String),
    ua_os_version LowCardinality(String),
    ua_device_type LowCardinality(String),
    ua_device_brand LowCardinality(String),
    ua_device_model LowCardinality(String),
    is_bot UInt8,
    geo_country LowCardinality(String),
    geo_region LowCardinality(String),
    geo_city String,
    geo_postal_code String,
    geo_timezone LowCardinality(String),
    geo_latitude Nullable(Float64),
    geo_longitude Nullable(Float64),
    geo_asn UInt32,
    geo_as_org String,
    utm_source String,
    utm_medium String,
    utm_campaign String,
    utm_term String,
    utm_content String,
    click_id_type LowCardinality(String),
    click_id String,
    referrer_domain String,
    referrer_medium LowCardinality(String),
    consent String,
    retention_days UInt16,
    ingest_id String,
    inserted_at DateTime64(6, 'UTC') DEFAULT now64(6),
    INDEX idx_message_id message_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_anonymous_id anonymous_id TYPE bloom_filter(0.01) GRANULARITY 4
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (source_id, toDate(received_at), anonymous_id, user_id, message_id)
TTL toDateTime(received_at) + toIntervalDay(retention_days) DELETE WHERE retention_days > 0
SETTINGS non_replicated_deduplication_window = 10000;

-- Events refused at the door, with the reason and a truncated copy of what was sent.
CREATE TABLE IF NOT EXISTS rejected_events
(
    source_id LowCardinality(String),
    received_at DateTime64(3, 'UTC'),
    reason LowCardinality(String),
    detail String,
    batch_index Int32,
    message_id String,
    payload String,
    ingest_id String
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(received_at)
ORDER BY (source_id, received_at)
TTL toDateTime(received_at) + toIntervalDay(90)
SETTINGS non_replicated_deduplication_window = 10000;

-- Sources: versioned rows, read with FINAL (or argMax) so the newest version wins.
CREATE TABLE IF NOT EXISTS sources
(
    id String,
    name String,
    write_key String,
    allowed_origins Array(String),
    ip_policy LowCardinality(String),
    rate_limit_per_s UInt32,
    retention_days UInt16,
    enabled UInt8,
    deleted UInt8,
    created_at DateTime64(3, 'UTC'),
    updated_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;

-- Admin API bearer tokens: only a SHA-256 hash of the secret is stored.
CREATE TABLE IF NOT EXISTS tokens
(
    id String,
    name String,
    token_hash String,
    scopes Array(String),
    revoked UInt8,
    created_at DateTime64(3, 'UTC'),
    version UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY id;
