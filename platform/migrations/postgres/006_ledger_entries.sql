-- Every money movement other than usage (which keeps usage_ledger, built for its volume): grants
-- today; expiries, adjustments, refunds, add-ons and top-ups as their commands arrive (extend the
-- kind CHECK list together with LedgerEntryKind, schemas/src/contracts/ledger-entry.ts).
-- seq is the account's ledger_seq, shared with usage_ledger.seq: the two tables together are the
-- account's history in one total order. Money columns are bigint micro-units of `currency`.
CREATE TABLE ledger_entries (
  account_id      text NOT NULL REFERENCES accounts (id),
  entry_id        text NOT NULL CHECK (char_length(entry_id) BETWEEN 1 AND 128),
  seq             bigint NOT NULL CHECK (seq > 0),
  kind            text NOT NULL CHECK (kind IN ('grant')),
  -- signed: positive adds credits
  amount          bigint NOT NULL,
  currency        text NOT NULL CHECK (currency IN ('USD', 'EUR')),
  grant_id        text REFERENCES grants (id),
  -- the part of the amount that paid a prepaid overdraft off
  overdraft_paid  bigint NOT NULL CHECK (overdraft_paid >= 0),
  balance_after   bigint NOT NULL,
  reason          text CHECK (char_length(reason) <= 500),
  -- A retried request with the same key gets this entry back instead of moving the money again;
  -- request_hash tells a retry (same request) from a key reused for a different one.
  idempotency_key text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 255),
  request_hash    text NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  -- set once the entry is on ledger.entries; a crash between commit and publish leaves it null,
  -- and the sweep (ledger/src/entries.ts) publishes it later
  published_at    timestamptz,
  PRIMARY KEY (account_id, entry_id),
  UNIQUE (account_id, idempotency_key),
  UNIQUE (account_id, seq)
);
-- What the sweep selects: only the few entries not published yet.
CREATE INDEX ledger_entries_unpublished ON ledger_entries (created_at) WHERE published_at IS NULL;
