-- Plans grow the settings of seed 003 (add-ons, auto top-up defaults) and of the gate (hold TTL);
-- accounts change plan at their next period and keep a billing anchor day; add-ons are activated
-- per account (issue 9). Money columns are bigint micro-units of the plan's or account's currency.

-- When an add-on's monthly price is more than the account's credits: 'overdraft' takes it anyway
-- (a prepaid balance goes below zero, a postpaid account accrues it), 'suspend' takes nothing and
-- suspends the add-on with a notification. The list repeats AddonShortfall (schemas/src/contracts/plan.ts).
ALTER TABLE plans
  ADD COLUMN addon_shortfall text NOT NULL DEFAULT 'suspend',
  -- seed 003: automatic top-up when credits run out, USD 10 by default; the payments issue acts on it
  ADD COLUMN auto_top_up_enabled boolean NOT NULL DEFAULT false,
  ADD COLUMN auto_top_up_amount bigint NOT NULL DEFAULT 10000000 CHECK (auto_top_up_amount > 0),
  -- how long the gate's hold on credits lives before it lapses
  ADD COLUMN hold_ttl_seconds integer NOT NULL DEFAULT 900 CHECK (hold_ttl_seconds BETWEEN 1 AND 86400);
ALTER TABLE plans ADD CONSTRAINT plans_addon_shortfall_check CHECK (addon_shortfall IN ('overdraft', 'suspend'));

-- The add-ons a plan offers and their monthly price (seed 003: concurrency, voice cloning, ...).
CREATE TABLE plan_addons (
  plan_id        text NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
  addon_id       text NOT NULL CHECK (addon_id ~ '^[a-z0-9][a-z0-9_-]{0,63}$'),
  name           text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  monthly_price  bigint NOT NULL CHECK (monthly_price >= 0),
  PRIMARY KEY (plan_id, addon_id)
);

-- The allowance period starts on this day of each month, 00:00 UTC (1: calendar months).
-- A plan change waits in pending_plan_id until pending_plan_at, the start of the account's next
-- period, when the allowance job switches it; plan_since is when the current plan took effect
-- (null: since the account was opened), so that no allowance is owed for a period on another plan.
-- A change keeps the currency and billing mode: the same composite key as plan_id.
ALTER TABLE accounts
  ADD COLUMN billing_anchor_day smallint NOT NULL DEFAULT 1 CHECK (billing_anchor_day BETWEEN 1 AND 28),
  ADD COLUMN pending_plan_id text,
  ADD COLUMN pending_plan_at timestamptz,
  ADD COLUMN plan_since timestamptz,
  ADD FOREIGN KEY (pending_plan_id, currency, billing_mode) REFERENCES plans (id, currency, billing_mode),
  ADD CONSTRAINT accounts_pending_plan_complete CHECK ((pending_plan_id IS NULL) = (pending_plan_at IS NULL));
CREATE INDEX accounts_pending_plan ON accounts (pending_plan_at) WHERE pending_plan_id IS NOT NULL;

-- An account's add-ons. 'active' is charged at activation and at each period start (ledger key
-- addon:<addon>:<period>); 'suspended' had a period its credits did not cover (plan setting
-- suspend) and is tried again at the next period start or when activated again; 'inactive' was
-- deactivated and costs nothing more. last_period is the last period settled (charged or
-- suspended), written in the transaction of that charge. The list repeats AddonState
-- (schemas/src/contracts/addon.ts).
CREATE TABLE account_addons (
  account_id    text NOT NULL REFERENCES accounts (id),
  addon_id      text NOT NULL,
  state         text NOT NULL CHECK (state IN ('active', 'suspended', 'inactive')),
  last_period   text NOT NULL CHECK (last_period ~ '^\d{4}-(0[1-9]|1[0-2])$'),
  activated_at  timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL,
  PRIMARY KEY (account_id, addon_id)
);
-- What the add-on job selects: the add-ons that cost something.
CREATE INDEX account_addons_live ON account_addons (account_id) WHERE state <> 'inactive';
