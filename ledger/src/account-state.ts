import type { PoolClient, Pool } from '@meterstream/platform/postgres';
import { INT64_MAX, type BillingMode, type GrantKind } from '@meterstream/schemas';
import type { Currency } from '@meterstream/schemas';
import type { AlertSettings, Armed } from './core/thresholds.js';

export interface GrantState {
  id: string;
  kind: GrantKind;
  amount: bigint;
  remaining: bigint;
  expiresAt: number | null; // epoch ms
  priority: number;
  createdSeq: bigint;
}

/** An account's whole money state: what Redis caches and what the rater burns against. */
export interface AccountState {
  id: string;
  currency: Currency;
  billingMode: BillingMode;
  overdraft: bigint;
  ledgerSeq: bigint;
  grants: GrantState[]; // only grants with something left, in burn order
  postpaidMonth: string; // 'YYYY-MM' of postpaidAmount (the current UTC month when loaded)
  postpaidAmount: bigint;
  /**
   * The alert settings and armed state (core/thresholds.ts) and the month's spend, as loaded from
   * Postgres in the same query; commands read them from the state they locked. Not carried by
   * burn's next states nor by the Redis copy.
   */
  alerts?: AccountAlerts;
}

/** The part of a state Redis keeps (balance-cache.ts): everything but the alerts. */
export function cachedPart(state: AccountState): Omit<AccountState, 'alerts'> {
  const { alerts: _alerts, ...money } = state;
  return money;
}

export interface AccountAlerts {
  settings: AlertSettings;
  armed: Armed;
  /** Usage charged in postpaidMonth (the current month when loaded), by the events' own time. */
  spent: bigint;
  /** The spendable balance at or below which an automatic top-up starts; null: automatic top-ups off or no saved card. */
  autoTopUpAt: bigint | null;
}

export const monthOf = (ms: number): string => new Date(ms).toISOString().slice(0, 7);

/**
 * Burn order (seed 000): priority, then soonest expiry, grants without expiry (purchased) last,
 * purchased after others at equal expiry, then oldest first.
 */
export function compareBurnOrder(a: GrantState, b: GrantState): number {
  if (a.priority !== b.priority) return a.priority - b.priority;
  const ea = a.expiresAt ?? Number.POSITIVE_INFINITY;
  const eb = b.expiresAt ?? Number.POSITIVE_INFINITY;
  if (ea !== eb) return ea < eb ? -1 : 1;
  const pa = a.kind === 'purchased' ? 1 : 0;
  const pb = b.kind === 'purchased' ? 1 : 0;
  if (pa !== pb) return pa - pb;
  return a.createdSeq < b.createdSeq ? -1 : a.createdSeq > b.createdSeq ? 1 : 0;
}

/** Credits usable at atMs: grants not yet expired, minus what a prepaid account owes. */
export function balanceAt(state: AccountState, atMs: number): bigint {
  let sum = 0n;
  for (const g of state.grants) if (g.expiresAt === null || g.expiresAt > atMs) sum += g.remaining;
  return sum - state.overdraft;
}

interface AccountRow {
  id: string;
  currency: Currency;
  billing_mode: BillingMode;
  overdraft: bigint;
  ledger_seq: bigint;
  postpaid: bigint | null;
  low_balance_threshold: bigint;
  spend_alert_threshold: bigint | null;
  allowed_limit: bigint | null;
  low_balance_notified: boolean;
  zero_balance_notified: boolean;
  spend_alert_notified_month: string | null;
  limit_reached_notified_month: string | null;
  spent: bigint;
  auto_top_up_at: bigint | null;
  // [id, kind, amount, remaining, expires_at epoch ms | null, priority, created_seq] as text
  grants: [string, GrantKind, string, string, number | null, number, string][] | null;
}

/**
 * Loads the states of the given accounts in one query. With forUpdate the account rows are
 * locked first, in id order (so concurrent writers never deadlock); every change to an account's
 * grants or overdraft happens under that lock.
 */
export async function loadAccountStates(
  db: PoolClient | Pool,
  ids: readonly string[],
  /** excludeClosed: closed accounts (DELETE /v1/accounts/{id}) are left out, as if unknown (the rater). */
  opts: { forUpdate: boolean; nowMs: number; excludeClosed?: boolean },
): Promise<Map<string, AccountState>> {
  const month = monthOf(opts.nowMs);
  if (opts.forUpdate) {
    // Lock first, read after, in two statements: under READ COMMITTED a statement that waited for
    // a row lock re-reads the locked row only, while its subqueries (the grants) keep the snapshot
    // taken before the wait, so a grant committed meanwhile (a top-up, an allowance) would be
    // missing from a state cached under the newer ledger seq. Every account lock is NO KEY UPDATE:
    // writers still queue behind each other, while rows referencing the account (a gate's hold, a
    // ledger row) take only KEY SHARE and do not wait for a rater's batch to commit.
    await db.query('SELECT 1 FROM accounts WHERE id = ANY($1::text[]) ORDER BY id FOR NO KEY UPDATE', [ids]);
  }
  const r = await db.query<AccountRow>(
    `SELECT a.id, a.currency, a.billing_mode, a.overdraft, a.ledger_seq, p.amount AS postpaid,
            coalesce(a.low_balance_threshold, pl.low_balance_threshold) AS low_balance_threshold, a.spend_alert_threshold, a.allowed_limit,
            a.low_balance_notified, a.zero_balance_notified,
            to_char(a.spend_alert_notified_month, 'YYYY-MM') AS spend_alert_notified_month,
            to_char(a.limit_reached_notified_month, 'YYYY-MM') AS limit_reached_notified_month,
            least(coalesce(s.amount, 0), ${INT64_MAX})::bigint AS spent,
            CASE WHEN coalesce(ats.enabled, pl.auto_top_up_enabled) AND a.payment_method IS NOT NULL THEN coalesce(ats.threshold, 0) END AS auto_top_up_at,
            (SELECT json_agg(json_build_array(g.id, g.kind, g.amount::text, g.remaining::text,
                      floor(extract(epoch FROM g.expires_at) * 1000)::bigint, g.priority, g.created_seq::text))
               FROM grants g WHERE g.account_id = a.id AND g.remaining > 0) AS grants
       FROM accounts a
       JOIN plans pl ON pl.id = a.plan_id
       LEFT JOIN postpaid_usage p ON p.account_id = a.id AND p.month = ($2 || '-01')::date
       LEFT JOIN monthly_spend s ON s.account_id = a.id AND s.month = ($2 || '-01')::date
       LEFT JOIN auto_top_up_settings ats ON ats.account_id = a.id
      WHERE a.id = ANY($1::text[]) ${opts.excludeClosed ? 'AND a.closed_at IS NULL' : ''}
      ORDER BY a.id`,
    [ids, month],
  );
  const states = new Map<string, AccountState>();
  for (const row of r.rows) {
    const grants = (row.grants ?? []).map(([id, kind, amount, remaining, expiresAt, priority, createdSeq]): GrantState => ({
      id, kind, amount: BigInt(amount), remaining: BigInt(remaining), expiresAt, priority, createdSeq: BigInt(createdSeq),
    }));
    states.set(row.id, {
      id: row.id,
      currency: row.currency,
      billingMode: row.billing_mode,
      overdraft: row.overdraft,
      ledgerSeq: row.ledger_seq,
      grants: grants.sort(compareBurnOrder),
      postpaidMonth: month,
      postpaidAmount: row.postpaid ?? 0n,
      alerts: {
        settings: { billingMode: row.billing_mode, lowBalance: row.low_balance_threshold, spendAlert: row.spend_alert_threshold, allowedLimit: row.allowed_limit },
        armed: {
          lowNotified: row.low_balance_notified, zeroNotified: row.zero_balance_notified,
          spendAlertMonth: row.spend_alert_notified_month, limitMonth: row.limit_reached_notified_month,
        },
        spent: row.spent,
        autoTopUpAt: row.auto_top_up_at,
      },
    });
  }
  return states;
}

/** The account's ledger_seq (a primary-key lookup), or undefined when there is no such account. */
export async function loadLedgerSeq(db: PoolClient | Pool, accountId: string): Promise<bigint | undefined> {
  const r = await db.query<{ ledger_seq: bigint }>('SELECT ledger_seq FROM accounts WHERE id = $1', [accountId]);
  return r.rows[0]?.ledger_seq;
}

/**
 * What the account spent in the month of nowMs (usage charged, by the events' own time; the
 * monthly_spend row the rating statement's trigger keeps, migration 014): a primary-key lookup.
 */
export async function loadSpentThisMonth(db: PoolClient | Pool, accountId: string, nowMs: number): Promise<bigint> {
  const r = await db.query<{ spent: bigint }>(
    `SELECT least(amount, ${INT64_MAX})::bigint AS spent FROM monthly_spend WHERE account_id = $1 AND month = ($2 || '-01')::date`,
    [accountId, monthOf(nowMs)],
  );
  return r.rows[0]?.spent ?? 0n;
}
