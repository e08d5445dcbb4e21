import { systemClock } from '@meterstream/platform/clock';
import { expect } from 'vitest';
import { priceMicros, toMicros, type UsageEvent } from '@meterstream/schemas';
import { cachedPart, loadAccountStates } from '@meterstream/ledger/account-state';
import { usageTotalsByAccount } from '@meterstream/platform/stores/usage-ledger';
import { PRODUCTS } from './fixtures.js';
import type { TestStack } from './stack.js';

/** What the events should cost, computed from the price list alone, each distinct event once. */
export function expectedCharges(events: UsageEvent[]): Map<string, bigint> {
  const seen = new Set<string>();
  const perAccount = new Map<string, bigint>();
  for (const e of events) {
    const key = `${e.account_id}/${e.id}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const p = PRODUCTS[e.product]!;
    perAccount.set(e.account_id, (perAccount.get(e.account_id) ?? 0n) + priceMicros(e.quantity, toMicros(p.unit_price), BigInt(p.per)));
  }
  return perAccount;
}

/**
 * The invariants a finance user checks: each event charged once at its price; grants burned +
 * postpaid accrued + prepaid overdraft = priced usage, to the micro-unit; Redis equals Postgres.
 */
export async function expectBooksBalance(stack: TestStack, events: UsageEvent[], accounts: string[]): Promise<void> {
  const expected = expectedCharges(events);
  const q = async (sql: string) =>
    new Map((await stack.pool.query<{ id: string; v: bigint }>(sql, [accounts])).rows.map((r) => [r.id, r.v]));
  const usage = new Map((await usageTotalsByAccount(stack.pool, accounts)).map((t) => [t.accountId, t]));
  // What expired left the grants too (remaining 0, an expiry entry of minus what was left): not burned by usage.
  const burned = await q(`SELECT g.account_id AS id, (sum(g.amount - g.remaining)
      + coalesce((SELECT sum(e.amount) FROM ledger_entries e WHERE e.account_id = g.account_id AND e.kind = 'expiry'), 0))::bigint AS v
    FROM grants g WHERE g.account_id = ANY($1) GROUP BY 1`);
  const postpaid = await q('SELECT account_id AS id, sum(amount)::bigint AS v FROM postpaid_usage WHERE account_id = ANY($1) GROUP BY 1');
  const overdraft = await q('SELECT id, overdraft AS v FROM accounts WHERE id = ANY($1)');
  const distinct = new Map<string, Set<string>>();
  for (const e of events) distinct.set(e.account_id, (distinct.get(e.account_id) ?? new Set()).add(e.id));
  const pg = await loadAccountStates(stack.pool, accounts, { forUpdate: false, nowMs: systemClock.now() });
  for (const a of accounts) {
    const want = expected.get(a) ?? 0n;
    expect({ account: a, events: usage.get(a)?.events ?? 0n }).toEqual({ account: a, events: BigInt(distinct.get(a)?.size ?? 0) });
    expect({ account: a, charged: usage.get(a)?.amount ?? 0n }).toEqual({ account: a, charged: want });
    const covered = (burned.get(a) ?? 0n) + (postpaid.get(a) ?? 0n) + (overdraft.get(a) ?? 0n);
    expect({ account: a, covered }).toEqual({ account: a, covered: want });
    // Redis's own copy (readThrough would answer from Postgres when Redis is behind); a missing
    // entry is rebuilt as a reader would.
    const cached = (await stack.cache.read(a)) ?? (await stack.cache.readThrough(stack.pool, a, systemClock.now()))!.state;
    expect(cached).toEqual(cachedPart(pg.get(a)!));
  }
}
