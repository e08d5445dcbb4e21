-- Notification triggers on the account's money (issue 9): what each account spent per month, and
-- whether each alert has fired since it was last armed, so that it fires once per crossing.

-- Month-to-date spend: the usage charged per account and UTC month of the event (what seed 004
-- calls "used"), kept by a statement-level trigger on usage_ledger: one aggregated upsert per
-- rating statement (not per row), whichever writer inserts the usage. numeric: a sum of int8
-- charges never overflows it, so no batch is refused for it.
CREATE TABLE monthly_spend (
  account_id text NOT NULL,
  month      date NOT NULL,
  amount     numeric NOT NULL,
  PRIMARY KEY (account_id, month)
);

CREATE FUNCTION usage_ledger_monthly_spend() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO monthly_spend (account_id, month, amount)
  SELECT account_id, date_trunc('month', event_time AT TIME ZONE 'UTC')::date, sum(amount)
    FROM new_rows GROUP BY 1, 2
  ON CONFLICT (account_id, month) DO UPDATE SET amount = monthly_spend.amount + excluded.amount;
  RETURN NULL;
END $$;
CREATE TRIGGER usage_ledger_monthly_spend AFTER INSERT ON usage_ledger
  REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION usage_ledger_monthly_spend();

INSERT INTO monthly_spend (account_id, month, amount)
SELECT account_id, date_trunc('month', event_time AT TIME ZONE 'UTC')::date, sum(amount) FROM usage_ledger GROUP BY 1, 2;

-- Armed state of the alerts (ledger/src/core/thresholds.ts): a balance alert fired while the
-- balance stays under its threshold (re-armed when a change leaves it at or above), a spend alert
-- the month it fired for (re-armed by a new month). Changing a setting re-arms its alert.
ALTER TABLE accounts
  ADD COLUMN low_balance_notified boolean NOT NULL DEFAULT false,
  ADD COLUMN zero_balance_notified boolean NOT NULL DEFAULT false,
  ADD COLUMN spend_alert_notified_month date,
  ADD COLUMN limit_reached_notified_month date;

-- The scheduler delivers notifications (ledger/src/scheduler.ts, job notifications) on its cron
-- and, so that a new one leaves at once, when told on this channel that deliveries were added.
CREATE FUNCTION notify_deliveries_due() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('notifications_due', '');
  RETURN NULL;
END $$;
CREATE TRIGGER notification_deliveries_due AFTER INSERT ON notification_deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION notify_deliveries_due();
