-- Limit increase requests (seed 001, issue 10): a member of the account asks for a higher monthly
-- limit (postpaid, accounts.monthly_limit) or allowed limit (seed 004, accounts.allowed_limit); the
-- operator approves or rejects. The request and the change are in the account's history as ledger
-- entries of kind 'adjustment' with amount 0 and a reason naming the request (no money moves).
-- Money in micro-units of the account's currency.
CREATE TABLE limit_requests (
  id               text PRIMARY KEY CHECK (id ~ '^lr_[0-9a-f]{24}$'),
  account_id       text NOT NULL REFERENCES accounts (id),
  limit_kind       text NOT NULL CHECK (limit_kind IN ('monthly_limit', 'allowed_limit')),
  requested_limit  bigint NOT NULL CHECK (requested_limit >= 0),
  -- the effective limit when asked (the account's, else its plan's default)
  current_limit    bigint NOT NULL CHECK (current_limit >= 0),
  reason           text NOT NULL CHECK (char_length(reason) BETWEEN 1 AND 300),
  status           text NOT NULL CHECK (status IN ('pending', 'approved', 'rejected')),
  -- who asked: the id of the API key, or 'admin'
  requested_by     text NOT NULL,
  decided_by       text,
  decision_note    text CHECK (char_length(decision_note) <= 300),
  created_at       timestamptz NOT NULL DEFAULT now(),
  decided_at       timestamptz,
  CHECK ((status = 'pending') = (decided_at IS NULL))
);
-- One open request per account and limit (asking again while one waits is a 409).
CREATE UNIQUE INDEX limit_requests_one_pending ON limit_requests (account_id, limit_kind) WHERE status = 'pending';
CREATE INDEX limit_requests_by_account ON limit_requests (account_id, created_at DESC);
