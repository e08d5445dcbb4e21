-- Every rated event, as committed in the Postgres ledger. Money columns are Int64 micro-units.
-- ReplacingMergeTree keyed by (account_id, event_id): a copy of an event written twice (two sinks
-- during a rebalance) is collapsed by merges, and never seen by a read with FINAL.
-- Before versioned migrations this file also created the summing daily/monthly tables and their
-- materialized views; 002 replaces them. They were taken out of here because a migrator that has
-- not yet seen 001 recorded re-runs it: it must never re-create what 002 dropped.
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
