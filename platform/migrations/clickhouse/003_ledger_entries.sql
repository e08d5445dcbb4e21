-- Every money movement other than usage (grants today; expiries, refunds, top-ups later), as
-- committed in Postgres ledger_entries and published on ledger.entries. Money columns are Int64
-- micro-units; seq is the account's ledger seq, shared with rated_events.ledger_seq.
-- Exactly once as rated_events is: ReplacingMergeTree keyed by (account_id, entry_id), so a copy
-- written twice (a republished entry, two sinks during a rebalance) is collapsed by merges and never
-- seen by a read with FINAL. kind is text: a new kind needs no migration here.
-- Every copy of an entry carries the same created_at, so all copies lie in the same partition.
CREATE TABLE IF NOT EXISTS {db}.ledger_entries (
  account_id      String,
  entry_id        String,
  seq             UInt64,
  kind            LowCardinality(String),
  amount          Int64,
  currency        LowCardinality(String),
  grant_id        Nullable(String),
  overdraft_paid  Int64,
  balance_after   Int64,
  reason          Nullable(String),
  idempotency_key String,
  created_at      DateTime64(3, 'UTC')
) ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(created_at)
ORDER BY (account_id, entry_id)
SETTINGS non_replicated_deduplication_window = 100000
