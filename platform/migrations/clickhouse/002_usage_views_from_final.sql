-- usage_daily and usage_monthly become plain views over rated_events FINAL, exact by construction:
-- FINAL shows each (account_id, event_id) once, however many times and in whatever batches it was
-- inserted. The summing materialized views they replace added up every inserted block, so a copy
-- written by a second sink (a rebalance: both check, both insert, under different deduplication
-- tokens) was counted twice for good.
-- Read cost: the views are computed when read, and ClickHouse pushes a reader's WHERE on
-- account_id, day or month down into the scan: one account's 30 days read only that account's
-- granules of those days' parts (the primary key starts with account_id), the month of every
-- account that an invoice run reads is that month's partition only. The latter needs
-- do_not_merge_across_partitions_select_final, which is exact here because every copy of an event
-- carries the ledger row's own event_time, so all copies lie in the same partition.
-- Every statement is safe to run twice or concurrently: CREATE OR REPLACE swaps the old summing
-- table (or an earlier view) for the view in one step, so readers never find the name missing.
DROP VIEW IF EXISTS {db}.usage_daily_mv
;
DROP VIEW IF EXISTS {db}.usage_monthly_mv
;
CREATE OR REPLACE VIEW {db}.usage_daily AS
SELECT toDate(event_time) AS day, account_id, product, currency,
       count() AS events, sum(quantity) AS quantity, sum(amount) AS amount,
       sum(from_grants) AS from_grants, sum(postpaid) AS postpaid, sum(overdraft) AS overdraft
FROM {db}.rated_events FINAL
GROUP BY day, account_id, product, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
;
CREATE OR REPLACE VIEW {db}.usage_monthly AS
SELECT toStartOfMonth(event_time) AS month, account_id, product, currency,
       count() AS events, sum(quantity) AS quantity, sum(amount) AS amount,
       sum(from_grants) AS from_grants, sum(postpaid) AS postpaid, sum(overdraft) AS overdraft
FROM {db}.rated_events FINAL
GROUP BY month, account_id, product, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
