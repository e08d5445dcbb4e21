-- The workspace a rated event named ('' when none), for the per-workspace usage breakdown.
-- Rows written before this column existed read as ''. Idempotent like every statement here.
ALTER TABLE {db}.rated_events ADD COLUMN IF NOT EXISTS workspace_id String DEFAULT '' AFTER rated_at
;
-- Usage per UTC day, account and workspace, exact as usage_daily is (rated_events FINAL: each
-- event once, however often the sinks wrote it); a reader's filter on account_id and day narrows the scan.
CREATE OR REPLACE VIEW {db}.usage_daily_by_workspace AS
SELECT toDate(event_time) AS day, account_id, workspace_id, currency,
       count() AS events, sum(quantity) AS quantity, sum(amount) AS amount
FROM {db}.rated_events FINAL
GROUP BY day, account_id, workspace_id, currency
SETTINGS do_not_merge_across_partitions_select_final = 1
