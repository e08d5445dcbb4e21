-- Notifications: a transactional outbox (a row written in the same transaction as the ledger
-- change it tells about, so a committed change is always told and a rolled-back one never), its
-- deliveries (one per channel and target, fanned out in that same transaction), and the webhook
-- endpoints they go to. The delivery worker (ingest/src/notifications/) claims due deliveries
-- with FOR UPDATE SKIP LOCKED, sends outside any transaction and records the attempt.

CREATE TABLE webhook_endpoints (
  id          text PRIMARY KEY,
  account_id  text NOT NULL REFERENCES accounts (id),
  url         text NOT NULL CHECK (char_length(url) BETWEEN 1 AND 2048),
  -- Standard Webhooks signing secret: whsec_ and the base64 key; stored because signing needs it
  secret      text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  -- deleted endpoints get no new deliveries; the rows stay for the deliveries that name them
  deleted_at  timestamptz
);
CREATE INDEX webhook_endpoints_account ON webhook_endpoints (account_id) WHERE deleted_at IS NULL;

CREATE TABLE notifications_outbox (
  -- the webhook-id: the same on every attempt and replay, so a receiver can drop duplicates
  id          text PRIMARY KEY,
  account_id  text NOT NULL REFERENCES accounts (id),
  type        text NOT NULL CHECK (type IN ('credits.granted')),
  -- the Standard Webhooks payload {type, timestamp, data}, as sent
  payload     jsonb NOT NULL,
  -- what caused it (e.g. grant:<ledger entry id>): one notification per cause
  cause       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (account_id, cause)
);

CREATE TABLE notification_deliveries (
  notification_id text NOT NULL REFERENCES notifications_outbox (id),
  channel         text NOT NULL CHECK (channel IN ('webhook', 'email')),
  -- the webhook endpoint id, or the email address
  target          text NOT NULL,
  state           text NOT NULL CHECK (state IN ('pending', 'delivered', 'dead')),
  attempts        integer NOT NULL DEFAULT 0,
  -- by the worker's clock (injectable), not the database's: due when <= the worker's now
  next_attempt_at timestamptz NOT NULL,
  last_error      text,
  delivered_at    timestamptz,
  PRIMARY KEY (notification_id, channel, target)
);
CREATE INDEX notification_deliveries_due ON notification_deliveries (next_attempt_at) WHERE state = 'pending';
