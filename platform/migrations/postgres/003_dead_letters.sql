-- Every event the rater could not charge, kept in the same transaction that moves the partition's
-- fence past it: sent to usage.dlq only after the commit (a crash in between re-sends it from
-- here), and replayable once its cause is fixed (a price created later, for instance).
CREATE TABLE dead_letters (
  src_topic     text NOT NULL,
  src_partition integer NOT NULL,
  src_offset    bigint NOT NULL,
  -- known when the message decoded to an event; null for unreadable payloads
  account_id    text,
  event_id      text,
  code          text NOT NULL,
  reason        text NOT NULL,
  -- the message exactly as it was on the source topic
  msg_key       bytea,
  payload       bytea,
  created_at    timestamptz NOT NULL DEFAULT now(),
  -- set when `npm run replay` re-produced the payload to usage.events
  replayed_at   timestamptz,
  PRIMARY KEY (src_topic, src_partition, src_offset)
);
-- What a replay selects: the letters not replayed yet, by cause, account or age.
CREATE INDEX dead_letters_pending ON dead_letters (code, created_at) WHERE replayed_at IS NULL;
CREATE INDEX dead_letters_by_account ON dead_letters (account_id, created_at) WHERE replayed_at IS NULL;
