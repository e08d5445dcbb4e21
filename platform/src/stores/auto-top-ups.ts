import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { Currency } from '@meterstream/schemas';
import { queryRows, type Db } from './rows.js';
import { lockTopUp, type TopUpRecord } from './top-ups.js';

// Automatic top-ups (migration 019): the account's settings, the top_ups rows a trigger starts
// (source 'auto'), and the refunds of payments.

const DAY_MS = 86_400_000;
/** The UTC day of nowMs, as the daily caps count it. */
export const dayStartMs = (nowMs: number) => Math.floor(nowMs / DAY_MS) * DAY_MS;

/** The settings in effect: the account's own, else its plan's defaults. */
export interface AutoTopUpSettingsRecord {
  accountId: string;
  enabled: boolean;
  amount: bigint;
  currency: Currency;
  threshold: bigint;
  dailyMaxCount: number;
  /** In effect: the one set, or dailyMaxCount x amount. */
  dailyMaxAmount: bigint;
  dailyMaxAmountSet: boolean;
  consecutiveFailures: number;
  disabledReason: string | null;
  hasPaymentMethod: boolean;
  todayCount: number;
  todayAmount: bigint;
  inFlight: string | null;
}

const SettingsRow = z.object({
  id: z.string(), enabled: z.boolean(), amount: z.bigint(), currency: Currency, threshold: z.bigint(), daily_max_count: z.number(),
  daily_max_amount: z.bigint().nullable(), consecutive_failures: z.number(), disabled_reason: z.string().nullable(), has_pm: z.boolean(),
  today_count: z.number(), today_amount: z.bigint(), in_flight: z.string().nullable(),
}).transform((r): AutoTopUpSettingsRecord => ({
  accountId: r.id, enabled: r.enabled, amount: r.amount, currency: r.currency, threshold: r.threshold, dailyMaxCount: r.daily_max_count,
  dailyMaxAmount: r.daily_max_amount ?? r.amount * BigInt(r.daily_max_count), dailyMaxAmountSet: r.daily_max_amount !== null,
  consecutiveFailures: r.consecutive_failures, disabledReason: r.disabled_reason, hasPaymentMethod: r.has_pm,
  todayCount: r.today_count, todayAmount: r.today_amount, inFlight: r.in_flight,
}));

export async function getAutoTopUpSettings(db: Db, accountId: string, nowMs: number): Promise<AutoTopUpSettingsRecord | undefined> {
  const [row] = await queryRows(db, 'auto_top_up_settings', SettingsRow,
    `SELECT a.id, coalesce(s.enabled, pl.auto_top_up_enabled) AS enabled, coalesce(s.amount, pl.auto_top_up_amount) AS amount, a.currency,
            coalesce(s.threshold, 0) AS threshold, coalesce(s.daily_max_count, 3) AS daily_max_count, s.daily_max_amount,
            coalesce(s.consecutive_failures, 0) AS consecutive_failures, s.disabled_reason, a.payment_method IS NOT NULL AS has_pm,
            d.n::int AS today_count, d.amount::bigint AS today_amount,
            (SELECT t.id FROM top_ups t WHERE t.account_id = a.id AND t.source = 'auto' AND t.state = 'pending') AS in_flight
       FROM accounts a JOIN plans pl ON pl.id = a.plan_id
       LEFT JOIN auto_top_up_settings s ON s.account_id = a.id
       CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(t.amount), 0) AS amount FROM top_ups t
                            WHERE t.account_id = a.id AND t.source = 'auto' AND t.created_at >= to_timestamp($2::double precision / 1000)) d
      WHERE a.id = $1 AND a.closed_at IS NULL`,
    [accountId, dayStartMs(nowMs)]);
  return row;
}

export interface AutoTopUpChange {
  enabled?: boolean;
  amount?: bigint;
  threshold?: bigint;
  dailyMaxCount?: number;
  /** null: back to count x amount. */
  dailyMaxAmount?: bigint | null;
}

/** Changes the settings sent (the others keep their value or default); turning on clears an automatic disable. */
export async function putAutoTopUpSettings(db: Db, accountId: string, c: AutoTopUpChange, nowMs: number): Promise<void> {
  await db.query(
    `INSERT INTO auto_top_up_settings AS s (account_id, enabled, amount, threshold, daily_max_count, daily_max_amount, updated_at)
     VALUES ($1, $2, $3, coalesce($4, 0), coalesce($5, 3), $6, to_timestamp($8::double precision / 1000))
     ON CONFLICT (account_id) DO UPDATE SET
       enabled = coalesce($2, s.enabled), amount = coalesce($3, s.amount), threshold = coalesce($4, s.threshold),
       daily_max_count = coalesce($5, s.daily_max_count), daily_max_amount = CASE WHEN $7 THEN $6 ELSE s.daily_max_amount END,
       consecutive_failures = CASE WHEN $2 THEN 0 ELSE s.consecutive_failures END,
       disabled_reason = CASE WHEN $2 THEN NULL ELSE s.disabled_reason END,
       updated_at = excluded.updated_at`,
    [accountId, c.enabled ?? null, c.amount ?? null, c.threshold ?? null, c.dailyMaxCount ?? null, c.dailyMaxAmount ?? null,
      c.dailyMaxAmount !== undefined, nowMs]);
}

/**
 * Locks the account row (before a pending automatic top-up is changed or inserted outside the
 * rater): the rater holds it while it inserts, so taking it first keeps one lock order.
 */
export async function lockAccountRow(db: Db, accountId: string): Promise<void> {
  await db.query('SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE', [accountId]);
}

/** The top-up locked, its account's row locked first (lockAccountRow's order). */
export async function lockAutoTopUp(db: Db, id: string): Promise<TopUpRecord | undefined> {
  const r = await db.query<{ account_id: string }>('SELECT account_id FROM top_ups WHERE id = $1', [id]);
  const accountId = r.rows[0]?.account_id;
  if (accountId === undefined) return undefined;
  await lockAccountRow(db, accountId);
  return lockTopUp(db, id);
}

/** A trigger: trigger null names it after the account's ledger seq as it stands ('gate:<seq>'). */
export interface AutoTopUpTrigger {
  accountId: string;
  trigger: string | null;
}

/**
 * Starts the automatic top-ups the triggers call for, in one statement: for each account with
 * automatic top-ups on and a saved card, under its daily caps, a pending top_ups row keyed
 * auto:<trigger>. A trigger seen before, or an account with a top-up in flight, starts nothing
 * (the unique key and the in-flight index: concurrent triggers wait on each other there, so
 * the caps count every top-up started before). Answers the top-ups started.
 */
export async function startAutoTopUps(db: Db, triggers: readonly AutoTopUpTrigger[], nowMs: number): Promise<{ id: string; accountId: string }[]> {
  if (triggers.length === 0) return [];
  const r = await db.query<{ id: string; account_id: string }>(
    `INSERT INTO top_ups (id, account_id, amount, currency, state, idempotency_key, request_hash, source, trigger, created_at)
     SELECT c.id, a.id, x.amount, a.currency, 'pending', 'auto:' || x.trigger, 'auto', 'auto', x.trigger, to_timestamp($4::double precision / 1000)
       FROM unnest($1::text[], $2::text[], $3::text[]) AS c(id, account_id, trigger)
       JOIN accounts a ON a.id = c.account_id AND a.closed_at IS NULL AND a.payment_method IS NOT NULL
       JOIN plans pl ON pl.id = a.plan_id
       LEFT JOIN auto_top_up_settings s ON s.account_id = a.id
       CROSS JOIN LATERAL (SELECT coalesce(s.amount, pl.auto_top_up_amount) AS amount, coalesce(c.trigger, 'gate:' || a.ledger_seq) AS trigger,
                                  coalesce(s.daily_max_count, 3) AS max_count) x
       CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(sum(t.amount), 0) AS amount FROM top_ups t
                            WHERE t.account_id = a.id AND t.source = 'auto' AND t.created_at >= to_timestamp($5::double precision / 1000)) d
      WHERE coalesce(s.enabled, pl.auto_top_up_enabled)
        AND d.n < x.max_count
        AND d.amount + x.amount <= coalesce(s.daily_max_amount, x.amount * x.max_count)
     ON CONFLICT DO NOTHING
     RETURNING id, account_id`,
    [triggers.map(() => `tu_${randomBytes(12).toString('hex')}`), triggers.map((t) => t.accountId), triggers.map((t) => t.trigger), nowMs, dayStartMs(nowMs)]);
  return r.rows.map((row) => ({ id: row.id, accountId: row.account_id }));
}

/** A triggered top-up with what charging it needs. */
export interface DueAutoTopUp {
  id: string;
  accountId: string;
  amount: bigint;
  currency: Currency;
  email: string | null;
  stripeCustomerId: string | null;
  paymentMethod: string | null;
}

const DueRow = z.object({
  id: z.string(), account_id: z.string(), amount: z.bigint(), currency: Currency, email: z.string().nullable(),
  stripe_customer_id: z.string().nullable(), payment_method: z.string().nullable(),
}).transform((r): DueAutoTopUp => ({
  id: r.id, accountId: r.account_id, amount: r.amount, currency: r.currency, email: r.email, stripeCustomerId: r.stripe_customer_id,
  paymentMethod: r.payment_method,
}));

/** Triggered top-ups without a PaymentIntent yet, oldest first (only these accounts', when given). */
export async function dueAutoTopUps(db: Db, accountIds: readonly string[] | undefined, limit: number): Promise<DueAutoTopUp[]> {
  return queryRows(db, 'top_ups', DueRow,
    `SELECT t.id, t.account_id, t.amount, t.currency, a.email, a.stripe_customer_id, a.payment_method
       FROM top_ups t JOIN accounts a ON a.id = t.account_id
      WHERE t.source = 'auto' AND t.state = 'pending' AND t.payment_intent_id IS NULL AND ($1::text[] IS NULL OR t.account_id = ANY($1))
      ORDER BY t.created_at, t.id LIMIT $2`,
    [accountIds ?? null, limit]);
}

/** Automatic top-ups waiting for their cardholder since before `beforeMs` (only these accounts', when given). */
export async function awaitingAction(db: Db, accountIds: readonly string[] | undefined, beforeMs: number, limit: number): Promise<{ id: string; paymentIntentId: string }[]> {
  const r = await db.query<{ id: string; payment_intent_id: string }>(
    `SELECT id, payment_intent_id FROM top_ups
      WHERE source = 'auto' AND state = 'pending' AND failure_code = 'authentication_required'
        AND created_at < to_timestamp($2::double precision / 1000) AND ($1::text[] IS NULL OR account_id = ANY($1))
      ORDER BY created_at, id LIMIT $3`,
    [accountIds ?? null, beforeMs, limit]);
  return r.rows.map((row) => ({ id: row.id, paymentIntentId: row.payment_intent_id }));
}

/** Records the PaymentIntent of a triggered top-up; false when it had one (another charger's, the same by Stripe's key). */
export async function attachPaymentIntent(db: Db, id: string, paymentIntentId: string, failure?: { code: string; actionUrl: string }): Promise<boolean> {
  const r = await db.query(
    `UPDATE top_ups SET payment_intent_id = $2, failure_code = coalesce($3, failure_code), checkout_url = coalesce($4, checkout_url)
      WHERE id = $1 AND state = 'pending' AND (payment_intent_id IS NULL OR (payment_intent_id = $2 AND failure_code IS DISTINCT FROM $3))`,
    [id, paymentIntentId, failure?.code ?? null, failure?.actionUrl ?? null]);
  return r.rowCount === 1;
}

/** Records the failure code of a top-up (in the transaction that settles it). */
export async function setFailureCode(db: Db, id: string, code: string, paymentIntentId: string | null): Promise<void> {
  await db.query('UPDATE top_ups SET failure_code = $2, payment_intent_id = coalesce(payment_intent_id, $3) WHERE id = $1', [id, code, paymentIntentId]);
}

/** One more failure in a row; at `max` the automation turns itself off. Answers the count and whether this one disabled it. */
export async function countFailure(db: Db, accountId: string, max: number, reason: string, nowMs: number): Promise<{ failures: number; disabled: boolean }> {
  const r = await db.query<{ failures: number; disabled: boolean }>(
    `INSERT INTO auto_top_up_settings AS s (account_id, consecutive_failures, updated_at) VALUES ($1, 1, to_timestamp($3::double precision / 1000))
     ON CONFLICT (account_id) DO UPDATE SET consecutive_failures = s.consecutive_failures + 1, updated_at = excluded.updated_at
     RETURNING consecutive_failures AS failures, consecutive_failures >= $2 AND disabled_reason IS NULL AS disabled`,
    [accountId, max, nowMs]);
  const row = r.rows[0]!;
  if (row.disabled) {
    await db.query(`UPDATE auto_top_up_settings SET enabled = false, disabled_reason = $2 WHERE account_id = $1`, [accountId, reason]);
  }
  return row;
}

/** The failures in a row so far. */
export async function failuresInARow(db: Db, accountId: string): Promise<number> {
  const r = await db.query<{ n: number }>('SELECT consecutive_failures AS n FROM auto_top_up_settings WHERE account_id = $1', [accountId]);
  return r.rows[0]?.n ?? 0;
}

/** A success ends the run of failures. */
export async function resetFailures(db: Db, accountId: string): Promise<void> {
  await db.query('UPDATE auto_top_up_settings SET consecutive_failures = 0 WHERE account_id = $1 AND consecutive_failures > 0', [accountId]);
}

// Refunds

export interface RefundRecord {
  id: string;
  paymentId: string;
  accountId: string;
  currency: Currency;
  creditsReversed: bigint;
  creditsKept: bigint;
  amount: bigint;
  state: 'pending' | 'succeeded';
  stripeRefundId: string | null;
  createdAt: Date;
}

const RefundRow = z.object({
  id: z.string(), payment_id: z.string(), account_id: z.string(), currency: Currency, credits_reversed: z.bigint(), credits_kept: z.bigint(),
  amount: z.bigint(), state: z.enum(['pending', 'succeeded']), stripe_refund_id: z.string().nullable(), created_at: z.date(),
}).transform((r): RefundRecord => ({
  id: r.id, paymentId: r.payment_id, accountId: r.account_id, currency: r.currency, creditsReversed: r.credits_reversed,
  creditsKept: r.credits_kept, amount: r.amount, state: r.state, stripeRefundId: r.stripe_refund_id, createdAt: r.created_at,
}));

const REFUND_COLUMNS = 'id, payment_id, account_id, currency, credits_reversed, credits_kept, amount, state, stripe_refund_id, created_at';

export async function refundOfPayment(db: Db, paymentId: string): Promise<RefundRecord | undefined> {
  const [row] = await queryRows(db, 'refunds', RefundRow, `SELECT ${REFUND_COLUMNS} FROM refunds WHERE payment_id = $1`, [paymentId]);
  return row;
}

export async function insertRefund(
  db: Db, r: { paymentId: string; accountId: string; currency: Currency; creditsReversed: bigint; creditsKept: bigint; amount: bigint; reason: string | null; nowMs: number },
): Promise<RefundRecord> {
  const [row] = await queryRows(db, 'refunds', RefundRow,
    `INSERT INTO refunds (id, payment_id, account_id, currency, credits_reversed, credits_kept, amount, state, reason, created_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7::bigint, CASE WHEN $7::bigint = 0 THEN 'succeeded' ELSE 'pending' END, $8, to_timestamp($9::double precision / 1000))
     RETURNING ${REFUND_COLUMNS}`,
    [`rf_${randomBytes(12).toString('hex')}`, r.paymentId, r.accountId, r.currency, r.creditsReversed, r.creditsKept, r.amount, r.reason, r.nowMs]);
  return row!;
}

export async function markRefunded(db: Db, id: string, stripeRefundId: string): Promise<RefundRecord> {
  const [row] = await queryRows(db, 'refunds', RefundRow,
    `UPDATE refunds SET state = 'succeeded', stripe_refund_id = $2 WHERE id = $1 RETURNING ${REFUND_COLUMNS}`, [id, stripeRefundId]);
  return row!;
}

/** What refunding a payment needs (beyond what the payments list shows). */
export interface RefundablePayment {
  id: string;
  accountId: string;
  amount: bigint;
  currency: Currency;
  creditsGranted: bigint;
  grantId: string;
  paymentIntentId: string | null;
}

const RefundableRow = z.object({
  id: z.string(), account_id: z.string(), amount: z.bigint(), currency: Currency, credits_granted: z.bigint(), grant_id: z.string(),
  payment_intent_id: z.string().nullable(),
}).transform((r): RefundablePayment => ({
  id: r.id, accountId: r.account_id, amount: r.amount, currency: r.currency, creditsGranted: r.credits_granted, grantId: r.grant_id,
  paymentIntentId: r.payment_intent_id,
}));

export async function refundablePayment(db: Db, accountId: string, paymentId: string): Promise<RefundablePayment | undefined> {
  const [row] = await queryRows(db, 'payments', RefundableRow,
    'SELECT id, account_id, amount, currency, credits_granted, grant_id, payment_intent_id FROM payments WHERE account_id = $1 AND id = $2',
    [accountId, paymentId]);
  return row;
}
