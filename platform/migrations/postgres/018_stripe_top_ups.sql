-- Paying for credits through Stripe (issue 11): Checkout top-ups, the saved card, the payments
-- with their invoice numbers, and the Stripe events already applied.

-- The account's Stripe customer, created once when first needed (Stripe idempotency key
-- meterstream:customer:<account id>). Its default payment method, saved through Checkout in setup
-- mode, is accounts.payment_method (migration 016; a pm_... id).
ALTER TABLE accounts ADD COLUMN stripe_customer_id text UNIQUE CHECK (stripe_customer_id ~ '^cus_[A-Za-z0-9]+$');

-- A top-up bought through Stripe Checkout (seed 004): pending until Stripe's webhook says the
-- session was paid (the purchased grant, keyed topup:<id>), expired or failed (a history entry of
-- kind payment, amount 0, under the same key). A terminal state never changes again.
CREATE TABLE top_ups (
  id                   text PRIMARY KEY CHECK (id ~ '^tu_[0-9a-f]{24}$'),
  account_id           text NOT NULL REFERENCES accounts (id),
  -- micro-units of currency, whole cents (Stripe charges in the currency's minor unit)
  amount               bigint NOT NULL CHECK (amount > 0 AND amount % 10000 = 0),
  currency             text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  state                text NOT NULL CHECK (state IN ('pending', 'paid', 'expired', 'failed')),
  -- the caller's Idempotency-Key: a retry gets the same top-up and Checkout URL back
  idempotency_key      text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
  request_hash         text NOT NULL,
  -- null only between the insert and Stripe's answer (a crash there: the retry creates it, same Stripe key)
  checkout_session_id  text UNIQUE,
  checkout_url         text,
  grant_id             text REFERENCES grants (id),
  created_at           timestamptz NOT NULL DEFAULT now(),
  settled_at           timestamptz,
  UNIQUE (account_id, idempotency_key),
  CHECK ((state = 'paid') = (grant_id IS NOT NULL)),
  CHECK ((state = 'pending') = (settled_at IS NULL))
);
CREATE INDEX top_ups_pending ON top_ups (account_id, created_at) WHERE state = 'pending';

-- Invoice numbers run without gaps per issuer: the row is locked and bumped in the transaction
-- that records the payment.
CREATE TABLE invoice_sequences (
  issuer       text PRIMARY KEY CHECK (char_length(issuer) BETWEEN 1 AND 32),
  last_number  bigint NOT NULL CHECK (last_number >= 0)
);

-- A payment received (GET /v1/accounts/{id}/payments): one per paid top-up, with its invoice.
CREATE TABLE payments (
  id                 text PRIMARY KEY CHECK (id ~ '^pay_[0-9a-f]{24}$'),
  account_id         text NOT NULL REFERENCES accounts (id),
  top_up_id          text NOT NULL UNIQUE REFERENCES top_ups (id),
  amount             bigint NOT NULL CHECK (amount > 0),
  currency           text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  status             text NOT NULL CHECK (status IN ('succeeded')),
  -- what paid: 'card', with the brand and last four digits when Stripe tells them
  method             text NOT NULL CHECK (char_length(method) BETWEEN 1 AND 100),
  payment_intent_id  text,
  credits_granted    bigint NOT NULL CHECK (credits_granted >= 0),
  grant_id           text NOT NULL REFERENCES grants (id),
  invoice_issuer     text NOT NULL REFERENCES invoice_sequences (issuer),
  invoice_number     bigint NOT NULL CHECK (invoice_number > 0),
  -- VAT included in amount (0 until tax is computed); shown on every invoice
  vat_rate_percent   numeric(5, 2) NOT NULL DEFAULT 0 CHECK (vat_rate_percent >= 0),
  vat_amount         bigint NOT NULL DEFAULT 0 CHECK (vat_amount >= 0),
  paid_at            timestamptz NOT NULL,
  UNIQUE (invoice_issuer, invoice_number)
);
CREATE INDEX payments_by_account ON payments (account_id, paid_at);

-- Every Stripe event applied, by Stripe's event id: a redelivery finds it and changes nothing.
-- Recorded in the transaction of the change it made.
CREATE TABLE stripe_events (
  id           text PRIMARY KEY CHECK (id ~ '^evt_[A-Za-z0-9]+$'),
  type         text NOT NULL,
  received_at  timestamptz NOT NULL DEFAULT now()
);

-- A top-up that expired or failed leaves a history entry (kind payment, amount 0). The kind list
-- repeats LedgerEntryKind (schemas/src/contracts/ledger-entry.ts) whole.
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN ('grant', 'expiry', 'addon', 'adjustment', 'plan_change', 'payment'));
