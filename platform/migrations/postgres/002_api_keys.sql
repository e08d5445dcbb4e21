-- Account-scoped API keys. Only the sha256 of a key is stored: the key itself is shown once, in
-- the response that created it, so a leaked table does not leak working credentials.
CREATE TABLE api_keys (
  key_hash   text PRIMARY KEY CHECK (key_hash ~ '^[0-9a-f]{64}$'),
  account_id text NOT NULL REFERENCES accounts (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX api_keys_by_account ON api_keys (account_id);
