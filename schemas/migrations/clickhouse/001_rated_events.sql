-- Every rated event, as committed in the Postgres ledger. Money columns are Int64 micro-units.
-- ReplacingMergeTree keyed by (account_id, event_id) is the backstop against a duplicate that
-- slipped past the sink's insert deduplication; the sink's dedup tokens keep the views exact.
CREATE TABLE IF NOT EXISTS {db}.rated_events (
  account_id    String,
  event_id      String,
  product       LowCardinality(String),
  currency      LowCardinality(String),
  unit          LowCardinality(String),
  quantity      Int64,
  unit_price    Int64,
  per           Int64,
  amount        Int64,
  from_grants   Int64,
  postpaid      Int64,
  overdraft     Int64,
  balance_after Int64,
  ledger_seq    UInt64,
  grants        String,
  properties    Map(String, String),
  event_time    DateTime64(3, 'UTC'),
  rated_at      DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(event_time)
ORDER BY (account_id, event_id)
SETTINGS non_replicated_deduplication_window = 100000
;
CREATE TABLE IF NOT EXISTS {db}.usage_daily (
  day         Date,
  account_id  String,
  product     LowCardinality(String),
  currency    LowCardinality(String),
  events      UInt64,
  quantity    Int64,
  amount      Int64,
  from_grants Int64,
  postpaid    Int64,
  overdraft   Int64
) ENGINE = SummingMergeTree
ORDER BY (account_id, day, product, currency)
SETTINGS non_replicated_deduplication_window = 100000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.usage_daily_mv TO {db}.usage_daily AS
SELECT toDate(event_time) AS day, account_id, product, currency,
       count() AS events, sum(quantity) AS quantity, sum(amount) AS amount,
       sum(from_grants) AS from_grants, sum(postpaid) AS postpaid, sum(overdraft) AS overdraft
FROM {db}.rated_events
GROUP BY day, account_id, product, currency
;
CREATE TABLE IF NOT EXISTS {db}.usage_monthly (
  month       Date,
  account_id  String,
  product     LowCardinality(String),
  currency    LowCardinality(String),
  events      UInt64,
  quantity    Int64,
  amount      Int64,
  from_grants Int64,
  postpaid    Int64,
  overdraft   Int64
) ENGINE = SummingMergeTree
ORDER BY (account_id, month, product, currency)
SETTINGS non_replicated_deduplication_window = 100000
;
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.usage_monthly_mv TO {db}.usage_monthly AS
SELECT toStartOfMonth(event_time) AS month, account_id, product, currency,
       count() AS events, sum(quantity) AS quantity, sum(amount) AS amount,
       sum(from_grants) AS from_grants, sum(postpaid) AS postpaid, sum(overdraft) AS overdraft
FROM {db}.rated_events
GROUP BY month, account_id, product, currency
