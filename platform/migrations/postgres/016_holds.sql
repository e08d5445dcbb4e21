-- The spend gate (issue 10): holds on credits made by POST /v1/authorize before a billable call
-- runs, and the refusals it answered. Postgres is their truth; Redis serves the gate's fast path
-- and is rebuilt from the open holds here.

-- One row per (account, Idempotency-Key): the hold the gate made, or its refusal (status refused,
-- terminal: a retry answers the same). amount is the price of max_quantity at authorization.
CREATE TABLE holds (
  id                text PRIMARY KEY CHECK (id ~ '^hold_[0-9a-f]{24}$'),
  account_id        text NOT NULL REFERENCES accounts (id),
  idempotency_key   text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
  product           text NOT NULL,
  max_quantity      bigint NOT NULL CHECK (max_quantity >= 0),
  amount            bigint NOT NULL CHECK (amount >= 0),
  currency          text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  status            text NOT NULL CHECK (status IN ('open', 'captured', 'released', 'expired', 'refused')),
  refusal           text CHECK (refusal IN ('PAYMENT_REQUIRED', 'MONTHLY_LIMIT_REACHED', 'ALLOWED_LIMIT_REACHED', 'CARD_REQUIRED', 'ACCOUNT_SUSPENDED')),
  created_at        timestamptz NOT NULL,
  expires_at        timestamptz NOT NULL,
  closed_at         timestamptz,
  -- the usage event that captured it and what it was charged (at most amount)
  captured_event_id text,
  captured_amount   bigint CHECK (captured_amount >= 0 AND captured_amount <= amount),
  -- captured after it had expired or been released: charged (capped) though the gate had freed it
  late_capture      boolean NOT NULL DEFAULT false,
  UNIQUE (account_id, idempotency_key),
  CHECK ((status = 'refused') = (refusal IS NOT NULL))
);
CREATE INDEX holds_open_by_account ON holds (account_id) WHERE status = 'open';
CREATE INDEX holds_open_by_expiry ON holds (expires_at) WHERE status = 'open';

-- The event that captured a hold, on its ledger row (republished with it after a crash).
ALTER TABLE usage_ledger ADD COLUMN hold_id text;

-- seed 001: a postpaid account without a payment method may spend its free credits only. Set by
-- the payments work (later); any non-null text is a payment method on file.
ALTER TABLE accounts ADD COLUMN payment_method text;
