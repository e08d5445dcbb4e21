import { z } from 'zod';
import { DeliveryState, NotificationChannel, NotificationPayload, NotificationType } from '@meterstream/schemas';
import { queryRows, type Db } from './rows.js';

/**
 * The delivery side of the notifications outbox (migration 009). Notifications are written by the
 * ledger commands (ledger/src/outbox.ts) inside their transaction; here the worker (run by the
 * scheduler, ledger/src/notifications/worker.ts) claims what is
 * due, records each attempt, and the replay route sends one again. Every time is the worker's
 * clock (`nowMs`), so tests move through backoffs without waiting.
 */

/** Which delivery: a notification to one target on one channel. */
export interface DeliveryKey {
  notificationId: string;
  channel: NotificationChannel;
  target: string;
}

/** A delivery claimed for an attempt, with what sending it needs. */
export interface ClaimedDelivery extends DeliveryKey {
  accountId: string;
  payload: NotificationPayload;
  /** Attempts made before this one. */
  attempts: number;
  /** Webhooks only (null for email): the endpoint's URL and signing secret. */
  endpoint: { url: string; secret: string } | null;
}

export interface DeliveryRecord extends DeliveryKey {
  state: DeliveryState;
  attempts: number;
  nextAttemptAt: Date;
  lastError: string | null;
  deliveredAt: Date | null;
}

export interface NotificationRecord {
  id: string;
  accountId: string;
  type: NotificationType;
  payload: NotificationPayload;
  createdAt: Date;
  deliveries: DeliveryRecord[];
}

export class NotificationNotFoundError extends Error {
  override readonly name = 'NotificationNotFoundError';
}

const ClaimedRow = z.object({
  notification_id: z.string(), channel: NotificationChannel, target: z.string(), account_id: z.string(), payload: NotificationPayload,
  attempts: z.number(), url: z.string().nullable(), secret: z.string().nullable(),
}).transform((r): ClaimedDelivery => ({
  notificationId: r.notification_id, channel: r.channel, target: r.target, accountId: r.account_id, payload: r.payload, attempts: r.attempts,
  endpoint: r.url !== null && r.secret !== null ? { url: r.url, secret: r.secret } : null,
}));

const DeliveryRow = z.object({
  notification_id: z.string(), channel: NotificationChannel, target: z.string(), state: DeliveryState, attempts: z.number(),
  next_attempt_at: z.date(), last_error: z.string().nullable(), delivered_at: z.date().nullable(),
}).transform((r): DeliveryRecord => ({
  notificationId: r.notification_id, channel: r.channel, target: r.target, state: r.state, attempts: r.attempts,
  nextAttemptAt: r.next_attempt_at, lastError: r.last_error, deliveredAt: r.delivered_at,
}));

const NotificationRow = z.object({
  id: z.string(), account_id: z.string(), type: NotificationType, payload: NotificationPayload, created_at: z.date(),
});

const at = (ms: number) => new Date(ms).toISOString();

/**
 * Claims up to `limit` pending deliveries due at nowMs on the given channels, oldest due first:
 * locked with SKIP LOCKED (workers side by side never take the same one) and leased until
 * nowMs + leaseMs in the same statement, so the send happens outside any transaction and a worker
 * that dies mid-send leaves the delivery due again when the lease ends.
 */
export async function claimDueDeliveries(
  db: Db,
  /** accounts: only theirs (tests, which share one database). */
  o: { nowMs: number; leaseMs: number; limit: number; channels: readonly NotificationChannel[]; accounts?: readonly string[] },
): Promise<ClaimedDelivery[]> {
  return queryRows(db, 'notification_deliveries', ClaimedRow,
    `WITH due AS (
       SELECT notification_id, channel, target FROM notification_deliveries
        WHERE state = 'pending' AND next_attempt_at <= $1 AND channel = ANY($4::text[])
          AND ($5::text[] IS NULL OR notification_id IN (SELECT id FROM notifications_outbox WHERE account_id = ANY($5::text[])))
        ORDER BY next_attempt_at LIMIT $3
        FOR UPDATE SKIP LOCKED
     )
     UPDATE notification_deliveries d SET next_attempt_at = $2
       FROM due
       JOIN notifications_outbox o ON o.id = due.notification_id
       LEFT JOIN webhook_endpoints e ON due.channel = 'webhook' AND e.id = due.target
      WHERE (d.notification_id, d.channel, d.target) = (due.notification_id, due.channel, due.target)
     RETURNING d.notification_id, d.channel, d.target, o.account_id, o.payload, d.attempts, e.url, e.secret`,
    [at(o.nowMs), at(o.nowMs + o.leaseMs), o.limit, o.channels, o.accounts ?? null]);
}

const KEY = '(notification_id, channel, target) = ($1, $2, $3)';
const keyParams = (k: DeliveryKey) => [k.notificationId, k.channel, k.target];

/** The attempt succeeded: delivered, counted. */
export async function recordDelivered(db: Db, k: DeliveryKey, nowMs: number): Promise<void> {
  await db.query(
    `UPDATE notification_deliveries SET state = 'delivered', attempts = attempts + 1, delivered_at = $4, last_error = NULL WHERE ${KEY}`,
    [...keyParams(k), at(nowMs)]);
}

/** The attempt failed: counted, and tried again at retryAtMs, or dead when that is null. */
export async function recordFailed(db: Db, k: DeliveryKey, error: string, retryAtMs: number | null): Promise<void> {
  await db.query(
    `UPDATE notification_deliveries
        SET attempts = attempts + 1, last_error = left($4, 500),
            state = CASE WHEN $5::timestamptz IS NULL THEN 'dead' ELSE 'pending' END,
            next_attempt_at = coalesce($5::timestamptz, next_attempt_at)
      WHERE ${KEY}`,
    [...keyParams(k), error, retryAtMs === null ? null : at(retryAtMs)]);
}

/** The account's notifications with their deliveries, newest first; `id` picks one. */
async function findNotifications(db: Db, accountId: string, o: { id?: string; limit: number }): Promise<NotificationRecord[]> {
  const rows = await queryRows(db, 'notifications_outbox', NotificationRow,
    `SELECT id, account_id, type, payload, created_at FROM notifications_outbox
      WHERE account_id = $1 AND ($2::text IS NULL OR id = $2) ORDER BY created_at DESC, id LIMIT $3`,
    [accountId, o.id ?? null, o.limit]);
  const deliveries = await queryRows(db, 'notification_deliveries', DeliveryRow,
    `SELECT notification_id, channel, target, state, attempts, next_attempt_at, last_error, delivered_at
       FROM notification_deliveries WHERE notification_id = ANY($1::text[]) ORDER BY channel, target`, [rows.map((r) => r.id)]);
  return rows.map((n) => ({
    id: n.id, accountId: n.account_id, type: n.type, payload: n.payload, createdAt: n.created_at,
    deliveries: deliveries.filter((d) => d.notificationId === n.id),
  }));
}

/** The account's notification with its deliveries; undefined when it has none of that id. */
export async function getNotification(db: Db, accountId: string, id: string): Promise<NotificationRecord | undefined> {
  const [n] = await findNotifications(db, accountId, { id, limit: 1 });
  return n;
}

/** The account's latest `limit` notifications with their deliveries, newest first. */
export async function listNotifications(db: Db, accountId: string, limit: number): Promise<NotificationRecord[]> {
  return findNotifications(db, accountId, { limit });
}

/**
 * Sends a notification again on every channel, delivered or dead alike (a receiver that lost it
 * asks for it again): each delivery is pending and due at nowMs with a fresh count of attempts.
 */
export async function replayNotification(db: Db, accountId: string, id: string, nowMs: number): Promise<NotificationRecord> {
  // The scheduler's delivery job wakes on notifications_due (migration 014), as for a new notification.
  await db.query(
    `WITH replayed AS (
       UPDATE notification_deliveries d SET state = 'pending', attempts = 0, next_attempt_at = $3, last_error = NULL, delivered_at = NULL
         FROM notifications_outbox o WHERE o.id = d.notification_id AND o.account_id = $1 AND o.id = $2
       RETURNING 1
     )
     SELECT pg_notify('notifications_due', '') FROM (SELECT 1 FROM replayed LIMIT 1) r`,
    [accountId, id, at(nowMs)]);
  const n = await getNotification(db, accountId, id);
  if (!n) throw new NotificationNotFoundError(`account ${accountId} has no notification ${id}`);
  return n;
}
