-- The invoicer (issue 12): one invoice per postpaid account and month, its lines, the daily
-- statements of month-to-date cost, and the notifications and history entries of dunning.
-- Money columns are bigint micro-units of the invoice's currency.

-- An invoice closes a month. Its lines are the rated events of the month rated at or before
-- cutoff_at, plus the late events of earlier months rated after the previous invoice's cutoff
-- (so every event lands on exactly one invoice and an issued invoice never changes).
-- state: draft (written, not yet in Stripe: a rerun resumes it), needs_review (ClickHouse and the
-- ledger disagree by `difference`: never billed until an operator re-runs it), open (finalized in
-- Stripe, awaiting payment), paid, payment_failed (the last charge failed; still owed), no_charge
-- (nothing due: not sent to Stripe).
CREATE TABLE invoices (
  id                 text PRIMARY KEY CHECK (id ~ '^inv_[0-9a-f]{24}$'),
  account_id         text NOT NULL REFERENCES accounts (id),
  month              text NOT NULL CHECK (month ~ '^\d{4}-(0[1-9]|1[0-2])$'),
  currency           text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  state              text NOT NULL CHECK (state IN ('draft', 'needs_review', 'open', 'paid', 'payment_failed', 'no_charge')),
  -- the usage and add-ons of the lines at list price, what free credits covered, what is due
  subtotal           bigint NOT NULL,
  covered            bigint NOT NULL,
  total              bigint NOT NULL,
  -- what is charged: total rounded per line to whole cents (Stripe charges minor units)
  amount_due         bigint NOT NULL CHECK (amount_due >= 0 AND amount_due % 10000 = 0),
  -- the ledger's postpaid for the same events, and ClickHouse minus ledger (0 unless needs_review)
  ledger_total       bigint NOT NULL,
  difference         bigint NOT NULL,
  cutoff_at          timestamptz NOT NULL,
  invoice_date       timestamptz NOT NULL,
  -- seed 001: unpaid 7 days after the invoice date, the account is suspended
  due_at             timestamptz NOT NULL,
  invoice_issuer     text REFERENCES invoice_sequences (issuer),
  invoice_number     bigint CHECK (invoice_number > 0),
  stripe_invoice_id  text UNIQUE,
  paid_at            timestamptz,
  failed_at          timestamptz,
  created_at         timestamptz NOT NULL,
  UNIQUE (account_id, month),
  UNIQUE (invoice_issuer, invoice_number),
  CHECK ((state = 'needs_review') = (difference <> 0))
);
-- What dunning selects: the invoices still owed.
CREATE INDEX invoices_owed ON invoices (due_at) WHERE state IN ('open', 'payment_failed');

-- kind: usage (a product at one unit price), late_usage (the same, for an earlier month, labelled
-- "late usage for <month>"), addon (an add-on's monthly price). amount = covered + due.
CREATE TABLE invoice_lines (
  invoice_id   text NOT NULL REFERENCES invoices (id) ON DELETE CASCADE,
  line_no      integer NOT NULL CHECK (line_no > 0),
  kind         text NOT NULL CHECK (kind IN ('usage', 'late_usage', 'addon')),
  description  text NOT NULL,
  product      text,
  -- the month of the events (late lines: an earlier one)
  usage_month  text NOT NULL,
  unit         text,
  quantity     bigint NOT NULL,
  unit_price   bigint NOT NULL,
  per          bigint NOT NULL CHECK (per > 0),
  events       bigint NOT NULL,
  amount       bigint NOT NULL,
  covered      bigint NOT NULL,
  due          bigint NOT NULL,
  PRIMARY KEY (invoice_id, line_no),
  CHECK (amount = covered + due)
);

-- seed 001: "your monthly cost is updated daily at 08:00 UTC": the month-to-date cost computed
-- from ClickHouse at the day's refresh, one row per (account, day), rewritten by a rerun that day.
CREATE TABLE daily_statements (
  account_id    text NOT NULL REFERENCES accounts (id),
  day           date NOT NULL,
  month         text NOT NULL,
  currency      text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  amount        bigint NOT NULL,
  covered       bigint NOT NULL,
  due           bigint NOT NULL,
  ledger_due    bigint NOT NULL,
  computed_at   timestamptz NOT NULL,
  PRIMARY KEY (account_id, day)
);

-- Suspension for an unpaid invoice and its lifting are history entries (amount 0). The lists
-- repeat LedgerEntryKind and NotificationType (schemas/src/contracts/) whole, 019's values included.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('grant', 'expiry', 'addon', 'adjustment', 'plan_change', 'payment', 'suspension', 'reinstatement', 'refund'));

ALTER TABLE notifications_outbox DROP CONSTRAINT notifications_outbox_type_check;
ALTER TABLE notifications_outbox ADD CONSTRAINT notifications_outbox_type_check CHECK (type IN ('credits.granted', 'balance.low', 'balance.zero', 'spend.alert_threshold', 'spend.limit_reached', 'gift.expiring', 'addon.deducted', 'addon.suspended', 'plan.changed', 'invoice.paid', 'invoice.payment_failed', 'account.suspended', 'account.reinstated', 'auto_top_up.failed', 'auto_top_up.action_required', 'payment.refunded'));
