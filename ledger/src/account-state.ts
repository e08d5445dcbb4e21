import type { PoolClient, Pool } from '@meterstream/platform/postgres';
import type { BillingMode, GrantKind } from '@meterstream/schemas';
import type { Currency } from '@meterstream/schemas';

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
  opts: { forUpdate: boolean; nowMs?: number; excludeClosed?: boolean },
): Promise<Map<string, AccountState>> {
  const month = monthOf(opts.nowMs ?? Date.now());
  if (opts.forUpdate) {
    // Lock first, read after, in two statements: under READ COMMITTED a statement that waited for
    // a row lock re-reads the locked row only, while its subqueries (the grants) keep the snapshot
    // taken before the wait, so a grant committed meanwhile (a top-up, an allowance) would be
    // missing from a state cached under the newer ledger seq.
    await db.query('SELECT 1 FROM accounts WHERE id = ANY($1::text[]) ORDER BY id FOR UPDATE', [ids]);
  }
  const r = await db.query<AccountRow>(
    `SELECT a.id, a.currency, a.billing_mode, a.overdraft, a.ledger_seq, p.amount AS postpaid,
            (SELECT json_agg(json_build_array(g.id, g.kind, g.amount::text, g.remaining::text,
                      floor(extract(epoch FROM g.expires_at) * 1000)::bigint, g.priority, g.created_seq::text))
               FROM grants g WHERE g.account_id = a.id AND g.remaining > 0) AS grants
       FROM accounts a
       LEFT JOIN postpaid_usage p ON p.account_id = a.id AND p.month = ($2 || '-01')::date
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
    });
  }
  return states;
}

/** The account's ledger_seq (a primary-key lookup), or undefined when there is no such account. */
export async function loadLedgerSeq(db: PoolClient | Pool, accountId: string): Promise<bigint | undefined> {
  const r = await db.query<{ ledger_seq: bigint }>('SELECT ledger_seq FROM accounts WHERE id = $1', [accountId]);
  return r.rows[0]?.ledger_seq;
}
