import { z } from 'zod';
import { Currency, GateRefusalCode, HoldStatus, type GateRefusal } from '@meterstream/schemas';
import { queryRows, type Db } from './rows.js';

/** A row of table holds (migration 016): a hold the gate made, or a refusal it answered. */
export interface HoldRecord {
  id: string;
  accountId: string;
  idempotencyKey: string;
  product: string;
  maxQuantity: bigint;
  amount: bigint;
  currency: Currency;
  status: HoldStatus | 'refused';
  refusal: GateRefusal | null;
  createdAt: Date;
  expiresAt: Date;
  capturedAmount: bigint | null;
  lateCapture: boolean;
}

export type NewHold = Omit<HoldRecord, 'capturedAmount' | 'lateCapture'>;

const HoldRow = z
  .object({
    id: z.string(), account_id: z.string(), idempotency_key: z.string(), product: z.string(), max_quantity: z.bigint(),
    amount: z.bigint(), currency: Currency, status: z.union([HoldStatus, z.literal('refused')]), refusal: GateRefusalCode.nullable(),
    created_at: z.date(), expires_at: z.date(), captured_amount: z.bigint().nullable(), late_capture: z.boolean(),
  })
  .transform((r): HoldRecord => ({
    id: r.id, accountId: r.account_id, idempotencyKey: r.idempotency_key, product: r.product, maxQuantity: r.max_quantity,
    amount: r.amount, currency: r.currency, status: r.status, refusal: r.refusal, createdAt: r.created_at, expiresAt: r.expires_at,
    capturedAmount: r.captured_amount, lateCapture: r.late_capture,
  }));

const COLUMNS = 'id, account_id, idempotency_key, product, max_quantity, amount, currency, status, refusal, created_at, expires_at, captured_amount, late_capture';

/**
 * Inserts holds and refusals in one statement (one round trip for a whole group of
 * authorizations). A row whose (account, Idempotency-Key) is taken is not inserted: the ids of
 * the rows that were come back.
 */
export async function insertHolds(db: Db, holds: readonly NewHold[]): Promise<Set<string>> {
  if (holds.length === 0) return new Set();
  const rows = holds.map((h) => ({
    id: h.id, account_id: h.accountId, idempotency_key: h.idempotencyKey, product: h.product, max_quantity: h.maxQuantity.toString(),
    amount: h.amount.toString(), currency: h.currency, status: h.status, refusal: h.refusal,
    created_at: h.createdAt.toISOString(), expires_at: h.expiresAt.toISOString(),
  }));
  const r = await db.query<{ id: string }>(
    `INSERT INTO holds (id, account_id, idempotency_key, product, max_quantity, amount, currency, status, refusal, created_at, expires_at)
     SELECT id, account_id, idempotency_key, product, max_quantity, amount, currency, status, refusal, created_at, expires_at
       FROM json_to_recordset($1::json) AS v(id text, account_id text, idempotency_key text, product text, max_quantity bigint,
            amount bigint, currency text, status text, refusal text, created_at timestamptz, expires_at timestamptz)
     ON CONFLICT (account_id, idempotency_key) DO NOTHING
     RETURNING id`,
    [JSON.stringify(rows)],
  );
  return new Set(r.rows.map((x) => x.id));
}

export async function findHoldByKey(db: Db, accountId: string, idempotencyKey: string): Promise<HoldRecord | undefined> {
  const [row] = await queryRows(db, 'holds', HoldRow, `SELECT ${COLUMNS} FROM holds WHERE account_id = $1 AND idempotency_key = $2`, [accountId, idempotencyKey]);
  return row;
}

export async function findHold(db: Db, id: string): Promise<HoldRecord | undefined> {
  const [row] = await queryRows(db, 'holds', HoldRow, `SELECT ${COLUMNS} FROM holds WHERE id = $1 AND status <> 'refused'`, [id]);
  return row;
}

/**
 * Releases an open hold (its call failed: it costs nothing); the hold as it stands after, if it
 * exists. With onlyAccount, a hold of another account is answered as it stands, not released (the
 * caller refuses it): the key's access is checked without a round trip of its own.
 */
export async function releaseHold(db: Db, id: string, at: Date, onlyAccount?: string): Promise<{ hold: HoldRecord; released: boolean } | undefined> {
  // One round trip: the released row as the UPDATE left it, else the row as it stands.
  const [row] = await queryRows(db, 'holds', HoldRow.and(z.object({ released: z.boolean() })),
    `WITH released AS (UPDATE holds SET status = 'released', closed_at = $2
                        WHERE id = $1 AND status = 'open' AND ($3::text IS NULL OR account_id = $3) RETURNING ${COLUMNS})
     SELECT ${COLUMNS}, true AS released FROM released
     UNION ALL
     SELECT ${COLUMNS}, false AS released FROM holds WHERE id = $1 AND status <> 'refused' AND NOT EXISTS (SELECT 1 FROM released)`,
    [id, at, onlyAccount ?? null]);
  if (!row) return undefined;
  const { released, ...hold } = row;
  return { hold, released };
}

/** The account's holds that still count at `at`: open and not yet expired. */
export async function openHolds(db: Db, accountId: string, at: Date): Promise<HoldRecord[]> {
  return queryRows(db, 'holds', HoldRow,
    `SELECT ${COLUMNS} FROM holds WHERE account_id = $1 AND status = 'open' AND expires_at > $2 ORDER BY id`, [accountId, at]);
}

/** Sum of the account's open holds at `at` (the balance API's held). */
export async function heldAmount(db: Db, accountId: string, at: Date): Promise<bigint> {
  const r = await db.query<{ held: bigint }>(
    `SELECT COALESCE(sum(amount), 0)::bigint AS held FROM holds WHERE account_id = $1 AND status = 'open' AND expires_at > $2`, [accountId, at]);
  return r.rows[0]!.held;
}

/** Marks up to `limit` open holds that expired at `at` as expired; returns them. */
export async function expireHolds(db: Db, at: Date, limit: number, accounts?: readonly string[]): Promise<{ id: string; accountId: string }[]> {
  const r = await db.query<{ id: string; account_id: string }>(
    `UPDATE holds SET status = 'expired', closed_at = $1
      WHERE id IN (SELECT id FROM holds WHERE status = 'open' AND expires_at <= $1
                      AND ($3::text[] IS NULL OR account_id = ANY($3::text[]))
                    ORDER BY expires_at LIMIT $2 FOR UPDATE SKIP LOCKED)
      RETURNING id, account_id`,
    [at, limit, accounts ?? null],
  );
  return r.rows.map((x) => ({ id: x.id, accountId: x.account_id }));
}

/** What the gate needs to know of an account besides its money state (core/holds.ts GateLimits). */
export interface GateAccount {
  currency: Currency;
  suspended: boolean;
  hasPaymentMethod: boolean;
  monthlyLimit: bigint | null;
  allowedLimit: bigint | null;
  monthSpend: bigint;
  ledgerSeq: bigint;
  holdTtlSeconds: number;
  closed: boolean;
}

/** One query: the account's limits (its own, else its plan's), this month's spend and ledger seq read together. */
export async function loadGateAccount(db: Db, accountId: string, month: string): Promise<GateAccount | undefined> {
  const r = await db.query<{
    currency: Currency; suspended: boolean; has_payment_method: boolean; monthly_limit: bigint | null; allowed_limit: bigint | null;
    month_spend: string; ledger_seq: bigint; hold_ttl_seconds: number; closed: boolean;
  }>(
    `SELECT a.currency, a.suspended_at IS NOT NULL AS suspended, a.payment_method IS NOT NULL AS has_payment_method,
            COALESCE(a.monthly_limit, p.default_monthly_limit) AS monthly_limit, a.allowed_limit,
            COALESCE((SELECT s.amount FROM monthly_spend s WHERE s.account_id = a.id AND s.month = ($2 || '-01')::date), 0)::text AS month_spend,
            a.ledger_seq, p.hold_ttl_seconds, a.closed_at IS NOT NULL AS closed
       FROM accounts a JOIN plans p ON p.id = a.plan_id
      WHERE a.id = $1`,
    [accountId, month],
  );
  const row = r.rows[0];
  return row && {
    currency: row.currency, suspended: row.suspended, hasPaymentMethod: row.has_payment_method, monthlyLimit: row.monthly_limit,
    allowedLimit: row.allowed_limit, monthSpend: BigInt(row.month_spend), ledgerSeq: row.ledger_seq, holdTtlSeconds: row.hold_ttl_seconds,
    closed: row.closed,
  };
}

/** A hold an event captures, locked for the rater's batch. */
export interface CapturableHold {
  id: string;
  accountId: string;
  amount: bigint;
  status: HoldStatus;
  expiresMs: number;
  captured: boolean;
}

/** The holds a rater batch's events name, locked in id order (one query per batch). */
export async function lockHoldsForCapture(db: Db, ids: readonly string[]): Promise<Map<string, CapturableHold>> {
  if (ids.length === 0) return new Map();
  const r = await db.query<{ id: string; account_id: string; amount: bigint; status: HoldStatus; expires_at: Date; captured_event_id: string | null }>(
    `SELECT id, account_id, amount, status, expires_at, captured_event_id FROM holds
      WHERE id = ANY($1::text[]) AND status <> 'refused' ORDER BY id FOR UPDATE`,
    [ids],
  );
  return new Map(r.rows.map((x) => [x.id, {
    id: x.id, accountId: x.account_id, amount: x.amount, status: x.status, expiresMs: x.expires_at.getTime(), captured: x.captured_event_id !== null,
  }]));
}

export interface Capture {
  holdId: string;
  eventId: string;
  amount: bigint;
  late: boolean;
}

/** Closes captured holds, in the rater's transaction (one statement per batch). */
export async function markCaptured(db: Db, captures: readonly Capture[], at: Date): Promise<void> {
  if (captures.length === 0) return;
  await db.query(
    `UPDATE holds h SET status = 'captured', closed_at = $2, captured_event_id = v.event_id, captured_amount = v.amount, late_capture = v.late
       FROM json_to_recordset($1::json) AS v(id text, event_id text, amount bigint, late boolean)
      WHERE h.id = v.id AND h.captured_event_id IS NULL`,
    [JSON.stringify(captures.map((c) => ({ id: c.holdId, event_id: c.eventId, amount: c.amount.toString(), late: c.late }))), at],
  );
}
