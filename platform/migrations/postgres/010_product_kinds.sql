-- The movements and notifications the credit product adds (issue 9). Each list repeats its zod
-- enum (LedgerEntryKind, NotificationType in schemas/src/contracts/); a later migration adding a
-- value repeats the whole list (platform/test/enums-match-sql.test.ts compares them).
--   addon       : an add-on's monthly price taken from the balance
--   adjustment  : a manual correction by an operator, with its reason
--   plan_change : a plan change scheduled for the next period (amount 0, in the history)
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('grant', 'expiry', 'addon', 'adjustment', 'plan_change'));

ALTER TABLE notifications_outbox DROP CONSTRAINT notifications_outbox_type_check;
ALTER TABLE notifications_outbox ADD CONSTRAINT notifications_outbox_type_check CHECK (type IN ('credits.granted', 'balance.low', 'balance.zero', 'spend.alert_threshold', 'spend.limit_reached', 'gift.expiring', 'addon.deducted', 'addon.suspended', 'plan.changed'));
