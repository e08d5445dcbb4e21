-- Plans (issue 9): what an account gets by default. Money columns are bigint micro-units of the
-- plan's currency; an account's plan has the account's currency and billing mode (the composite
-- foreign key below), so no amount is ever read in the wrong currency.
CREATE TABLE plans (
  id                         text PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 128),
  name                       text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  currency                   text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  billing_mode               text NOT NULL CHECK (billing_mode IN ('prepaid', 'postpaid')),
  -- seed 000: a new account's gift, once per email (email_tombstones)
  signup_gift_amount         bigint NOT NULL CHECK (signup_gift_amount >= 0),
  signup_gift_validity_days  integer NOT NULL CHECK (signup_gift_validity_days BETWEEN 1 AND 3660),
  -- seed 003: granted each month, usable for rollover months after its own
  monthly_allowance_amount   bigint NOT NULL CHECK (monthly_allowance_amount >= 0),
  allowance_rollover_months  integer NOT NULL CHECK (allowance_rollover_months BETWEEN 0 AND 120),
  -- seed 001: postpaid only; null on prepaid plans
  default_monthly_limit      bigint CHECK (default_monthly_limit >= 0),
  low_balance_threshold      bigint NOT NULL CHECK (low_balance_threshold >= 0),
  created_at                 timestamptz NOT NULL DEFAULT now(),
  updated_at                 timestamptz NOT NULL DEFAULT now(),
  UNIQUE (id, currency, billing_mode),
  CHECK (billing_mode = 'postpaid' OR default_monthly_limit IS NULL)
);

-- The plan POST /v1/accounts gives when none is named: one per (currency, billing mode).
-- $10 gift for 7 days (seed 000), no allowance, 2 rollover months, $100 postpaid limit (seed 001),
-- low-balance alert under 1.00.
INSERT INTO plans (id, name, currency, billing_mode, signup_gift_amount, signup_gift_validity_days,
                   monthly_allowance_amount, allowance_rollover_months, default_monthly_limit, low_balance_threshold)
SELECT 'default-' || lower(c) || '-' || m, 'Default ' || c || ' ' || m, c, m, 10000000, 7, 0, 2,
       CASE WHEN m = 'postpaid' THEN 100000000 END, 1000000
  FROM unnest(ARRAY['USD', 'EUR']) AS c, unnest(ARRAY['prepaid', 'postpaid']) AS m;

ALTER TABLE accounts ADD COLUMN plan_id text;
UPDATE accounts SET plan_id = 'default-' || lower(currency) || '-' || billing_mode;
ALTER TABLE accounts
  ALTER COLUMN plan_id SET NOT NULL,
  ADD FOREIGN KEY (plan_id, currency, billing_mode) REFERENCES plans (id, currency, billing_mode),
  -- set by DELETE /v1/accounts/{id}: the account's keys are revoked, the rater dead-letters its
  -- events, its billing records stay readable by the admin
  ADD COLUMN closed_at timestamptz;

-- An account inserted without a plan (bulk seeding, older tools) is on its currency's and
-- billing mode's default plan, as POST /v1/accounts does when none is named.
CREATE FUNCTION accounts_default_plan() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.plan_id := 'default-' || lower(NEW.currency) || '-' || NEW.billing_mode;
  RETURN NEW;
END $$;
CREATE TRIGGER accounts_default_plan BEFORE INSERT ON accounts
  FOR EACH ROW WHEN (NEW.plan_id IS NULL) EXECUTE FUNCTION accounts_default_plan();

-- One row per normalized email that ever received a signup gift, kept after the account is
-- closed: HMAC-SHA256 (EMAIL_TOMBSTONE_KEY) of the normalized email, never the email itself.
-- The primary key is the once-per-email guarantee: concurrent sign-ups queue on it.
CREATE TABLE email_tombstones (
  email_hmac  bytea PRIMARY KEY CHECK (octet_length(email_hmac) = 32),
  account_id  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
