-- Keys get a public id (what the key routes name; the secret is never shown again) and can be
-- revoked. A revoked row is kept so the key's history stays listable.
ALTER TABLE api_keys
  ADD COLUMN id text NOT NULL UNIQUE DEFAULT ('key_' || substr(md5(random()::text || clock_timestamp()::text), 1, 24))
    CHECK (id ~ '^key_[0-9a-f]{24}$'),
  ADD COLUMN revoked_at timestamptz;
ALTER TABLE api_keys ALTER COLUMN id DROP DEFAULT;

-- Every ingest instance caches keys in memory and LISTENs here: the key's hash is sent when its
-- row changes, delivered on commit of the very transaction that changed it, so a revocation (or
-- a row deleted by hand) is evicted everywhere at once.
CREATE FUNCTION notify_api_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP <> 'INSERT' THEN PERFORM pg_notify('api_keys_changed', OLD.key_hash); END IF;
  IF TG_OP = 'INSERT' OR NEW.key_hash <> OLD.key_hash THEN PERFORM pg_notify('api_keys_changed', NEW.key_hash); END IF;
  RETURN NULL;
END $$;
CREATE TRIGGER api_keys_changed AFTER INSERT OR UPDATE OR DELETE ON api_keys
  FOR EACH ROW EXECUTE FUNCTION notify_api_keys_changed();
