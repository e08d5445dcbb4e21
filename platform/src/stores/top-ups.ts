import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { Currency, TopUpState } from '@meterstream/schemas';
import { queryRows, type Db } from './rows.js';

/** A Checkout top-up (migration 018); amount in micro-units of currency, whole cents. */
export interface TopUpRecord {
  id: string;
  accountId: string;
  amount: bigint;
  currency: Currency;
  state: TopUpState;
  idempotencyKey: string;
  requestHash: string;
  checkoutSessionId: string | null;
  checkoutUrl: string | null;
  grantId: string | null;
  createdAt: Date;
  settledAt: Date | null;
}

const TopUpRow = z.object({
  id: z.string(), account_id: z.string(), amount: z.bigint(), currency: Currency, state: TopUpState,
  idempotency_key: z.string(), request_hash: z.string(), checkout_session_id: z.string().nullable(), checkout_url: z.string().nullable(),
  grant_id: z.string().nullable(), created_at: z.date(), settled_at: z.date().nullable(),
}).transform((r): TopUpRecord => ({
  id: r.id, accountId: r.account_id, amount: r.amount, currency: r.currency, state: r.state, idempotencyKey: r.idempotency_key,
  requestHash: r.request_hash, checkoutSessionId: r.checkout_session_id, checkoutUrl: r.checkout_url, grantId: r.grant_id,
  createdAt: r.created_at, settledAt: r.settled_at,
}));

const COLUMNS = `id, account_id, amount, currency, state, idempotency_key, request_hash, checkout_session_id, checkout_url,
  grant_id, created_at, settled_at`;

/**
 * The top-up of (account, idempotency key), created pending if there is none yet. Concurrent
 * calls with one key get the same row (the unique key); the caller compares requestHash.
 */
export async function claimTopUp(
  db: Db, input: { accountId: string; amount: bigint; currency: Currency; idempotencyKey: string; requestHash: string; nowMs: number },
): Promise<{ topUp: TopUpRecord; created: boolean }> {
  const id = `tu_${randomBytes(12).toString('hex')}`;
  const [inserted] = await queryRows(db, 'top_ups', TopUpRow,
    `INSERT INTO top_ups (id, account_id, amount, currency, state, idempotency_key, request_hash, created_at)
     VALUES ($1, $2, $3, $4, 'pending', $5, $6, to_timestamp($7::double precision / 1000))
     ON CONFLICT (account_id, idempotency_key) DO NOTHING RETURNING ${COLUMNS}`,
    [id, input.accountId, input.amount, input.currency, input.idempotencyKey, input.requestHash, input.nowMs]);
  if (inserted) return { topUp: inserted, created: true };
  const [existing] = await queryRows(db, 'top_ups', TopUpRow,
    `SELECT ${COLUMNS} FROM top_ups WHERE account_id = $1 AND idempotency_key = $2`, [input.accountId, input.idempotencyKey]);
  return { topUp: existing!, created: false };
}

/** Records the Checkout session Stripe created for the top-up (the same one on every retry). */
export async function attachCheckoutSession(db: Db, id: string, sessionId: string, url: string): Promise<TopUpRecord> {
  const [row] = await queryRows(db, 'top_ups', TopUpRow,
    `UPDATE top_ups SET checkout_session_id = $2, checkout_url = $3 WHERE id = $1 RETURNING ${COLUMNS}`, [id, sessionId, url]);
  return row!;
}

/** The top-up, locked until the caller's transaction ends (a settlement decides on its state). */
export async function lockTopUp(db: Db, id: string): Promise<TopUpRecord | undefined> {
  const [row] = await queryRows(db, 'top_ups', TopUpRow, `SELECT ${COLUMNS} FROM top_ups WHERE id = $1 FOR UPDATE`, [id]);
  return row;
}

/** Moves a pending top-up to its final state (paid with its grant, expired or failed). */
export async function settleTopUp(db: Db, id: string, state: Exclude<TopUpState, 'pending'>, grantId: string | null, nowMs: number): Promise<TopUpRecord> {
  const [row] = await queryRows(db, 'top_ups', TopUpRow,
    `UPDATE top_ups SET state = $2, grant_id = $3, settled_at = to_timestamp($4::double precision / 1000)
      WHERE id = $1 AND state = 'pending' RETURNING ${COLUMNS}`, [id, state, grantId, nowMs]);
  if (!row) throw new Error(`top-up ${id} is not pending`);
  return row;
}

/** The account's latest top-ups, newest first. */
export async function listTopUps(db: Db, accountId: string, limit: number): Promise<TopUpRecord[]> {
  return queryRows(db, 'top_ups', TopUpRow,
    `SELECT ${COLUMNS} FROM top_ups WHERE account_id = $1 ORDER BY created_at DESC, id LIMIT $2`, [accountId, limit]);
}

/** The account's pending top-ups, oldest first (the balance shows them); automatic ones (migration 019) from their trigger on. */
export async function pendingTopUps(db: Db, accountId: string): Promise<TopUpRecord[]> {
  return queryRows(db, 'top_ups', TopUpRow,
    `SELECT ${COLUMNS} FROM top_ups WHERE account_id = $1 AND state = 'pending' AND (checkout_url IS NOT NULL OR source = 'auto') ORDER BY created_at, id`, [accountId]);
}
