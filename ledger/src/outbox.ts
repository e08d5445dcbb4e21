import { randomBytes } from 'node:crypto';
import type { PoolClient } from '@meterstream/platform/postgres';
import { formatMicros, type NotificationPayload } from '@meterstream/schemas';
import { balanceAt, type AccountState } from './account-state.js';
import { addMonths, monthStart } from './core/months.js';
import type { LedgerRow } from './core/rate.js';
import { crossings, sameArmed, type Armed } from './core/thresholds.js';

/** A notification a command records inside its transaction. */
export interface NewNotification {
  accountId: string;
  payload: NotificationPayload;
  /** What caused it, unique per account (e.g. grant:<entry id>): a second record of one cause is dropped. */
  cause: string;
}

/**
 * Writes notifications into the transactional outbox, inside the caller's transaction (the one of
 * the ledger change they tell about): they exist exactly when the change committed. Each is fanned
 * out, in the same statement, to a delivery per live webhook endpoint of the account and one email
 * to the account's address, all due at nowMs; the delivery worker sends them after the commit.
 * Returns the ids of the notifications written (a cause recorded before gives none).
 */
export async function recordNotifications(c: PoolClient, notifications: readonly NewNotification[], nowMs: number): Promise<string[]> {
  return writeOutbox(c, notifications, [], nowMs);
}

/** An account's alerts stored as they stand after a change. */
interface ArmedUpdate {
  accountId: string;
  armed: Armed;
}

/** The notifications and the new armed states in one statement (none when there is neither). */
async function writeOutbox(c: PoolClient, notifications: readonly NewNotification[], armed: readonly ArmedUpdate[], nowMs: number): Promise<string[]> {
  if (notifications.length + armed.length === 0) return [];
  const rows = notifications.map((n) => ({
    id: `msg_${randomBytes(16).toString('hex')}`, account_id: n.accountId, type: n.payload.type, payload: n.payload, cause: n.cause,
  }));
  const states = armed.map(({ accountId, armed: a }) => ({
    id: accountId, low: a.lowNotified, zero: a.zeroNotified, alert_month: a.spendAlertMonth, limit_month: a.limitMonth,
  }));
  const { rows: written } = await c.query<{ id: string }>(
    `WITH armed AS (
       UPDATE accounts a SET low_balance_notified = v.low, zero_balance_notified = v.zero,
              spend_alert_notified_month = (v.alert_month || '-01')::date, limit_reached_notified_month = (v.limit_month || '-01')::date
         FROM json_to_recordset($3::json) AS v(id text, low boolean, zero boolean, alert_month text, limit_month text)
        WHERE a.id = v.id
     ), written AS (
       INSERT INTO notifications_outbox (id, account_id, type, payload, cause)
       SELECT id, account_id, type, payload, cause
         FROM json_to_recordset($1::json) AS v(id text, account_id text, type text, payload jsonb, cause text)
       ON CONFLICT (account_id, cause) DO NOTHING
       RETURNING id, account_id
     ), targets AS (
       SELECT w.id, 'webhook' AS channel, e.id AS target FROM written w
         JOIN webhook_endpoints e ON e.account_id = w.account_id AND e.deleted_at IS NULL
       UNION ALL
       -- an account provisioned by a tenant's first use has no address: webhooks only
       SELECT w.id, 'email', a.email FROM written w JOIN accounts a ON a.id = w.account_id AND a.email IS NOT NULL
     ), deliveries AS (
       INSERT INTO notification_deliveries (notification_id, channel, target, state, next_attempt_at)
       SELECT id, channel, target, 'pending', to_timestamp($2::double precision / 1000) FROM targets
     )
     SELECT id FROM written`,
    [JSON.stringify(rows), nowMs, JSON.stringify(states)],
  );
  return written.map((r) => r.id);
}

/** An account a command changed: as it locked it (with its alerts, loadAccountStates) and as the change left it. */
export interface AccountChange {
  before: AccountState;
  /** Its ledgerSeq is the change's: it names the notifications' cause. */
  after: AccountState;
  /** Spent this month after the change; by default what it was before (only usage spends). */
  spent?: bigint;
}

/**
 * The alerts the changes fire (core/thresholds.ts) and the armed states that changed. The balance
 * is judged at nowMs, the month is the one the states were loaded for (their postpaidMonth).
 */
export function alertsOf(changes: Iterable<AccountChange>, nowMs: number, mayFire: boolean): { notifications: NewNotification[]; armed: ArmedUpdate[] } {
  const notifications: NewNotification[] = [];
  const armed: ArmedUpdate[] = [];
  const timestamp = new Date(nowMs).toISOString();
  for (const { before, after, spent } of changes) {
    const alerts = before.alerts;
    if (!alerts) continue;
    const balance = balanceAt(after, nowMs);
    const obs = { balance, month: before.postpaidMonth, spent: spent ?? alerts.spent };
    const r = crossings(alerts.settings, alerts.armed, obs, mayFire);
    if (!sameArmed(r.armed, alerts.armed)) armed.push({ accountId: before.id, armed: r.armed });
    for (const f of r.fired) {
      const base = { account_id: before.id, currency: before.currency, threshold: formatMicros(f.threshold) };
      const payload: NotificationPayload = f.type === 'balance.low' || f.type === 'balance.zero'
        ? { type: f.type, timestamp, data: { ...base, balance: formatMicros(balance) } }
        : { type: f.type, timestamp, data: { ...base, month: obs.month, spent: formatMicros(obs.spent) } };
      notifications.push({ accountId: before.id, payload, cause: `${f.type}:${after.ledgerSeq}` });
    }
  }
  return { notifications, armed };
}

/**
 * Records what the changes fire and re-arm, inside the command's transaction: nothing when no
 * alert crossed or re-armed (the usual case), otherwise one statement for all the accounts.
 * mayFire false: the change only raised balances (a grant), so it can only re-arm.
 */
export async function recordAlerts(c: PoolClient, changes: Iterable<AccountChange>, nowMs: number, mayFire: boolean): Promise<void> {
  const { notifications, armed } = alertsOf(changes, nowMs, mayFire);
  await writeOutbox(c, notifications, armed, nowMs);
}

/**
 * The changes a rated batch made, with each account's spend after it: what it had spent this
 * month plus the batch's charges of events in that month. One pass over the rows, no query.
 */
export function ratedChanges(states: ReadonlyMap<string, AccountState>, changed: ReadonlyMap<string, AccountState>, rows: readonly LedgerRow[]): AccountChange[] {
  const spent = new Map<string, bigint>();
  let month: string | undefined;
  let from = 0;
  let to = 0;
  for (const row of rows) {
    const before = states.get(row.accountId)!;
    if (before.postpaidMonth !== month) {
      month = before.postpaidMonth;
      from = monthStart(month);
      to = monthStart(addMonths(month, 1));
    }
    if (row.eventMs >= from && row.eventMs < to) spent.set(row.accountId, (spent.get(row.accountId) ?? before.alerts?.spent ?? 0n) + row.amount);
  }
  return [...changed.values()].map((after) => ({ before: states.get(after.id)!, after, spent: spent.get(after.id) }));
}
