-- Automatic top-ups (seed 003) and refunds of top-ups (issue 11).

-- An account's automatic top-up settings; no row: the plan's defaults (plans.auto_top_up_enabled,
-- auto_top_up_amount) and a trigger at a spendable balance of zero. consecutive_failures counts
-- the charges declined (or waiting for the cardholder) since the last success; at the limit the
-- automation turns itself off (enabled false, disabled_reason) until the account turns it on again.
CREATE TABLE auto_top_up_settings (
  account_id            text PRIMARY KEY REFERENCES accounts (id),
  enabled               boolean,
  -- micro-units of the account's currency, whole cents (Stripe charges cents); null: the plan's
  amount                bigint CHECK (amount > 0 AND amount % 10000 = 0),
  -- a top-up is started when the spendable balance falls to or below this
  threshold             bigint NOT NULL DEFAULT 0 CHECK (threshold >= 0),
  -- at most this many automatic top-ups, and this much, per UTC day (null: count x amount)
  daily_max_count       integer NOT NULL DEFAULT 3 CHECK (daily_max_count BETWEEN 1 AND 100),
  daily_max_amount      bigint CHECK (daily_max_amount > 0),
  consecutive_failures  integer NOT NULL DEFAULT 0 CHECK (consecutive_failures >= 0),
  disabled_reason       text,
  updated_at            timestamptz NOT NULL DEFAULT now()
);

-- An automatic top-up is a top-up (its payment, invoice and refund are a Checkout top-up's) that
-- a trigger started: 'rater:<ledger seq>' (a rated batch took the balance to the threshold) or
-- 'gate:<ledger seq>' (the gate refused for want of credits). Its idempotency_key is
-- 'auto:<trigger>', so one trigger starts at most one. It stays pending from the trigger until
-- Stripe's payment_intent webhook (paid, failed); a card that needs its holder keeps it pending
-- with the link to authenticate in checkout_url and failure_code authentication_required.
ALTER TABLE top_ups
  ADD COLUMN source text NOT NULL DEFAULT 'checkout' CHECK (source IN ('checkout', 'auto')),
  ADD COLUMN trigger text,
  ADD COLUMN payment_intent_id text UNIQUE,
  ADD COLUMN failure_code text,
  ADD CONSTRAINT top_ups_auto_trigger CHECK ((source = 'auto') = (trigger IS NOT NULL));
-- At most one automatic top-up in flight per account: the constraint, not a lock in memory.
CREATE UNIQUE INDEX top_ups_auto_in_flight ON top_ups (account_id) WHERE source = 'auto' AND state = 'pending';
-- The day's automatic top-ups (the daily caps).
CREATE INDEX top_ups_auto_by_day ON top_ups (account_id, created_at) WHERE source = 'auto';
-- What the charger picks up: triggered, no PaymentIntent yet.
CREATE INDEX top_ups_auto_due ON top_ups (created_at) WHERE source = 'auto' AND state = 'pending' AND payment_intent_id IS NULL;

-- The charger is woken when a trigger commits (it also runs every minute).
CREATE FUNCTION auto_top_up_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('auto_top_ups_due', NEW.id);
  RETURN NULL;
END $$;
CREATE TRIGGER auto_top_up_due AFTER INSERT ON top_ups FOR EACH ROW WHEN (NEW.source = 'auto') EXECUTE FUNCTION auto_top_up_due();

-- A refund of a payment (admin): the unspent part of its credits reversed (never below zero),
-- the spent part recorded as kept, and that much refunded on Stripe (Stripe idempotency key
-- meterstream:refund:<payment id>). One per payment; pending until Stripe accepted it.
CREATE TABLE refunds (
  id                text PRIMARY KEY CHECK (id ~ '^rf_[0-9a-f]{24}$'),
  payment_id        text NOT NULL UNIQUE REFERENCES payments (id),
  account_id        text NOT NULL REFERENCES accounts (id),
  currency          text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  credits_reversed  bigint NOT NULL CHECK (credits_reversed >= 0),
  credits_kept      bigint NOT NULL CHECK (credits_kept >= 0),
  -- what goes back to the card: the reversed credits, whole cents
  amount            bigint NOT NULL CHECK (amount >= 0 AND amount % 10000 = 0),
  state             text NOT NULL CHECK (state IN ('pending', 'succeeded')),
  stripe_refund_id  text UNIQUE,
  reason            text,
  created_at        timestamptz NOT NULL,
  CHECK ((state = 'succeeded') = (stripe_refund_id IS NOT NULL OR amount = 0))
);

-- A refund's history entry is of kind refund. Both lists repeat the zod enums whole
-- (LedgerEntryKind, NotificationType), 020's values included.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('grant', 'expiry', 'addon', 'adjustment', 'plan_change', 'payment', 'suspension', 'reinstatement', 'refund'));
ALTER TABLE notifications_outbox DROP CONSTRAINT notifications_outbox_type_check;
ALTER TABLE notifications_outbox ADD CONSTRAINT notifications_outbox_type_check CHECK (type IN ('credits.granted', 'balance.low', 'balance.zero', 'spend.alert_threshold', 'spend.limit_reached', 'gift.expiring', 'addon.deducted', 'addon.suspended', 'plan.changed', 'invoice.paid', 'invoice.payment_failed', 'account.suspended', 'account.reinstated', 'auto_top_up.failed', 'auto_top_up.action_required', 'payment.refunded'));
