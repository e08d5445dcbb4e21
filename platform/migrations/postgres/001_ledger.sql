-- All money columns are bigint micro-units of the account's currency.

CREATE TABLE accounts (
  id          text PRIMARY KEY,
  email       text NOT NULL,
  currency    text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  billing_mode text NOT NULL CHECK (billing_mode IN ('prepaid', 'postpaid')),
  -- prepaid usage that no grant covered; new grants pay it off first
  overdraft   bigint NOT NULL DEFAULT 0 CHECK (overdraft >= 0),
  -- bumped by every change to the account's money state; Redis keeps only the newest seq
  ledger_seq  bigint NOT NULL DEFAULT 0,
  created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE grants (
  id          text PRIMARY KEY,
  account_id  text NOT NULL REFERENCES accounts (id),
  kind        text NOT NULL CHECK (kind IN ('gift', 'promotional', 'allowance', 'purchased')),
  amount      bigint NOT NULL CHECK (amount >= 0),
  remaining   bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
  expires_at  timestamptz,
  priority    integer NOT NULL DEFAULT 100,
  created_at  timestamptz NOT NULL DEFAULT now(),
  created_seq bigserial NOT NULL  -- "oldest first" tie-break, immune to equal timestamps
);
CREATE INDEX grants_by_account ON grants (account_id);

CREATE TABLE prices (
  product     text NOT NULL,
  currency    text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  unit        text NOT NULL CHECK (unit IN ('second', 'minute', 'word', 'image', 'token', 'request')),
  unit_price  bigint NOT NULL CHECK (unit_price >= 0),
  per         bigint NOT NULL CHECK (per > 0),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (product, currency)
);

-- One row per rated event: the exactly-once record (a re-sent event id hits the primary key)
-- and the account's transaction history.
CREATE TABLE usage_ledger (
  account_id    text NOT NULL,
  event_id      text NOT NULL,
  seq           bigint NOT NULL,
  product       text NOT NULL,
  quantity      bigint NOT NULL,
  unit          text NOT NULL,
  unit_price    bigint NOT NULL,
  per           bigint NOT NULL,
  amount        bigint NOT NULL,
  from_grants   bigint NOT NULL,
  postpaid      bigint NOT NULL,
  overdraft     bigint NOT NULL,
  grant_split   jsonb NOT NULL,
  balance_after bigint NOT NULL,
  event_time    timestamptz NOT NULL,
  rated_at      timestamptz NOT NULL,
  properties    jsonb,
  src_topic     text NOT NULL,
  src_partition integer NOT NULL,
  src_offset    bigint NOT NULL,
  PRIMARY KEY (account_id, event_id),
  CHECK (amount = from_grants + postpaid + overdraft)
);
CREATE INDEX usage_ledger_history ON usage_ledger (account_id, seq);

CREATE TABLE postpaid_usage (
  account_id text NOT NULL,
  month      date NOT NULL,
  amount     bigint NOT NULL,
  PRIMARY KEY (account_id, month)
);

-- Where each consumer group is in each partition, committed in the same transaction as the
-- effects; published_offset trails next_offset until the rated events reached usage.rated.
CREATE TABLE consumer_offsets (
  group_id         text NOT NULL,
  topic            text NOT NULL,
  partition        integer NOT NULL,
  next_offset      bigint NOT NULL,
  published_offset bigint NOT NULL,
  PRIMARY KEY (group_id, topic, partition)
);

-- Raters cache the price book and reload when told.
CREATE FUNCTION notify_prices_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('prices_changed', '');
  RETURN NULL;
END $$;
CREATE TRIGGER prices_changed AFTER INSERT OR UPDATE OR DELETE ON prices
  FOR EACH STATEMENT EXECUTE FUNCTION notify_prices_changed();
