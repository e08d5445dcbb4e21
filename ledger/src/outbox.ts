import { randomBytes } from 'node:crypto';
import type { PoolClient } from '@meterstream/platform/postgres';
import type { NotificationPayload } from '@meterstream/schemas';

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
  if (notifications.length === 0) return [];
  const rows = notifications.map((n) => ({
    id: `msg_${randomBytes(16).toString('hex')}`, account_id: n.accountId, type: n.payload.type, payload: n.payload, cause: n.cause,
  }));
  const { rows: written } = await c.query<{ id: string }>(
    `WITH written AS (
       INSERT INTO notifications_outbox (id, account_id, type, payload, cause)
       SELECT id, account_id, type, payload, cause
         FROM json_to_recordset($1::json) AS v(id text, account_id text, type text, payload jsonb, cause text)
       ON CONFLICT (account_id, cause) DO NOTHING
       RETURNING id, account_id
     ), targets AS (
       SELECT w.id, 'webhook' AS channel, e.id AS target FROM written w
         JOIN webhook_endpoints e ON e.account_id = w.account_id AND e.deleted_at IS NULL
       UNION ALL
       SELECT w.id, 'email', a.email FROM written w JOIN accounts a ON a.id = w.account_id
     ), deliveries AS (
       INSERT INTO notification_deliveries (notification_id, channel, target, state, next_attempt_at)
       SELECT id, channel, target, 'pending', to_timestamp($2::double precision / 1000) FROM targets
     )
     SELECT id FROM written`,
    [JSON.stringify(rows), nowMs],
  );
  return written.map((r) => r.id);
}
