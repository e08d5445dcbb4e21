import { monthOf, type AccountState, type GrantState } from '../account-state.js';

export interface GrantTake {
  grantId: string;
  kind: string;
  amount: bigint;
}

export interface Burn {
  /** What each grant paid, in burn order. */
  takes: GrantTake[];
  /** What the grants did not cover on a postpaid account: accrued to the month of the charge. */
  postpaid: bigint;
  /** What the grants did not cover on a prepaid account: it goes below zero by that much. */
  overdraft: bigint;
  /** The account after the charge, which is one more ledger entry (ledgerSeq + 1). */
  next: AccountState;
}

/** A grant pays for a charge only while it has not expired at the charge's own time. */
export const usableAt = (g: GrantState, atMs: number): boolean => g.expiresAt === null || g.expiresAt > atMs;

/**
 * Charges `amount` to the account at `atMs`: the grants pay in the state's order (burn order,
 * account-state.ts compareBurnOrder) as far as they reach; the rest accrues as postpaid usage or,
 * on a prepaid account, as overdraft (the usage happened; the next grant pays it off).
 * Judging expiry at the charge's own timestamp makes re-rating after a crash give the same answer.
 *
 * `state` is not touched: `next` shares with it every grant the charge did not burn (the rater
 * charges tens of thousands of events a second, so only what changes is copied). Grants burned
 * to zero leave `next.grants`.
 */
export function burn(state: AccountState, amount: bigint, atMs: number): Burn {
  const takes: GrantTake[] = [];
  let left = amount;
  let grants = state.grants;
  let emptied = false;
  for (let i = 0; i < state.grants.length && left > 0n; i++) {
    const g = state.grants[i]!;
    if (g.remaining === 0n || !usableAt(g, atMs)) continue;
    const take = g.remaining < left ? g.remaining : left;
    left -= take;
    takes.push({ grantId: g.id, kind: g.kind, amount: take });
    if (grants === state.grants) grants = state.grants.slice();
    if (take === g.remaining) emptied = true;
    grants[i] = withRemaining(g, g.remaining - take);
  }
  if (emptied) grants = grants.filter((g) => g.remaining > 0n);
  const postpaid = left > 0n && state.billingMode === 'postpaid' ? left : 0n;
  const overdraft = left > 0n && state.billingMode !== 'postpaid' ? left : 0n;
  // Literals rather than spreads: one stable object shape, measurably faster on the hot path.
  const next: AccountState = {
    id: state.id,
    currency: state.currency,
    billingMode: state.billingMode,
    overdraft: overdraft > 0n ? state.overdraft + overdraft : state.overdraft,
    ledgerSeq: state.ledgerSeq + 1n,
    grants,
    postpaidMonth: state.postpaidMonth,
    // The state holds one month's postpaid sum; other months are the caller's to accrue.
    postpaidAmount: postpaid > 0n && monthOf(atMs) === state.postpaidMonth ? state.postpaidAmount + postpaid : state.postpaidAmount,
  };
  return { takes, postpaid, overdraft, next };
}

const withRemaining = (g: GrantState, remaining: bigint): GrantState => ({
  id: g.id, kind: g.kind, amount: g.amount, remaining, expiresAt: g.expiresAt, priority: g.priority, createdSeq: g.createdSeq,
});
