-- The shape of the credit product's people, tenants and limits (issues 9 and 10), fixed before
-- the commands that use them are written.

-- Members of an account (seeds 000, 004): people by email with a role. The owner is the address
-- the account was opened with; removing a member keeps its row (and revokes its keys).
CREATE TABLE members (
  id          text PRIMARY KEY CHECK (id ~ '^mem_[0-9a-f]{24}$'),
  account_id  text NOT NULL REFERENCES accounts (id),
  email       text NOT NULL CHECK (char_length(email) BETWEEN 3 AND 320),
  role        text NOT NULL CHECK (role IN ('owner', 'admin', 'billing', 'member')),
  created_at  timestamptz NOT NULL DEFAULT now(),
  removed_at  timestamptz
);
CREATE UNIQUE INDEX members_live_email ON members (account_id, lower(email)) WHERE removed_at IS NULL;
INSERT INTO members (id, account_id, email, role, created_at)
SELECT 'mem_' || substr(md5(a.id || ':owner'), 1, 24), a.id, a.email, 'owner', a.created_at FROM accounts a;
-- Every account has its owner, however it is inserted (POST /v1/accounts, bulk seeding).
CREATE FUNCTION accounts_owner_member() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO members (id, account_id, email, role, created_at)
  VALUES ('mem_' || substr(md5(NEW.id || ':owner'), 1, 24), NEW.id, NEW.email, 'owner', NEW.created_at);
  RETURN NULL;
END $$;
CREATE TRIGGER accounts_owner_member AFTER INSERT ON accounts FOR EACH ROW EXECUTE FUNCTION accounts_owner_member();

-- Tenants: the operators that sell usage to their own customers. A tenant's service keys produce
-- usage for (and authorize) the tenant's accounts, and with the tenant's default plan's
-- provision_on_first_use, the first event for an unknown account id creates it (seed 002).
CREATE TABLE tenants (
  id               text PRIMARY KEY CHECK (char_length(id) BETWEEN 1 AND 128),
  name             text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  default_plan_id  text NOT NULL REFERENCES plans (id),
  created_at       timestamptz NOT NULL DEFAULT now()
);
ALTER TABLE plans ADD COLUMN provision_on_first_use boolean NOT NULL DEFAULT false;
ALTER TABLE accounts ADD COLUMN tenant_id text REFERENCES tenants (id);
CREATE INDEX accounts_by_tenant ON accounts (tenant_id) WHERE tenant_id IS NOT NULL;

-- Keys are service keys (produce usage, call the gate; of an account or of a tenant) or member
-- keys (act with their member's role). Keys issued before this migration were the account's
-- one key: they act as its owner.
ALTER TABLE api_keys
  ADD COLUMN kind text NOT NULL DEFAULT 'member' CHECK (kind IN ('service', 'member')),
  ADD COLUMN member_id text REFERENCES members (id),
  ADD COLUMN tenant_id text REFERENCES tenants (id),
  ALTER COLUMN account_id DROP NOT NULL;
UPDATE api_keys k SET member_id = m.id FROM members m WHERE m.account_id = k.account_id AND m.role = 'owner';
ALTER TABLE api_keys ALTER COLUMN kind DROP DEFAULT,
  ADD CONSTRAINT api_keys_scope CHECK (
    (kind = 'member' AND member_id IS NOT NULL AND account_id IS NOT NULL AND tenant_id IS NULL)
    OR (kind = 'service' AND member_id IS NULL AND (account_id IS NULL) <> (tenant_id IS NULL)));

-- Workspaces share their account's balance; events may name one for breakdowns. Deleting one
-- keeps its usage and the account's credits.
CREATE TABLE workspaces (
  id          text PRIMARY KEY CHECK (id ~ '^ws_[0-9a-f]{24}$'),
  account_id  text NOT NULL REFERENCES accounts (id),
  name        text NOT NULL CHECK (char_length(name) BETWEEN 1 AND 200),
  created_at  timestamptz NOT NULL DEFAULT now(),
  deleted_at  timestamptz
);
CREATE INDEX workspaces_by_account ON workspaces (account_id);

-- An account's limits and thresholds (seeds 000, 001, 004), null: the plan's default where it has
-- one, else none. Money in micro-units of the account's currency.
ALTER TABLE accounts
  -- seed 000: notify when the balance falls below (null: plans.low_balance_threshold)
  ADD COLUMN low_balance_threshold bigint CHECK (low_balance_threshold >= 0),
  -- seed 001: postpaid monthly limit (null: plans.default_monthly_limit)
  ADD COLUMN monthly_limit bigint CHECK (monthly_limit >= 0),
  -- seed 004: notify once a month when the month's spend reaches it; never above allowed_limit
  ADD COLUMN spend_alert_threshold bigint CHECK (spend_alert_threshold >= 0),
  -- seed 004: hard monthly cap on spend, any billing mode (null: none)
  ADD COLUMN allowed_limit bigint CHECK (allowed_limit >= 0),
  ADD CONSTRAINT accounts_alert_within_limit CHECK (spend_alert_threshold IS NULL OR allowed_limit IS NULL OR spend_alert_threshold <= allowed_limit),
  -- set by the invoicer when an invoice stays unpaid (seed 001); the gate refuses while set
  ADD COLUMN suspended_at timestamptz;
