import type { Logger } from '@meterstream/platform/logger';
import type { Pool } from '@meterstream/platform/postgres';
import { expireHolds as expireStored } from '@meterstream/platform/stores/holds';
import type { GateCache } from '../gate-cache.js';

/**
 * Marks the holds whose TTL passed at `now` as expired in Postgres, `batchSize` at a time, and
 * takes them out of Redis. The gate stops counting a hold at its expiry on its own (its Lua
 * script drops expired holds before deciding); this keeps Postgres's open holds, from which Redis
 * is rebuilt, and the balance API's held, to the holds that still count. Moves no money: a
 * capture arriving later is still charged, capped at the hold, and recorded as late. Running it
 * twice, or on two schedulers at once, expires each hold once (SKIP LOCKED, status = 'open').
 */
export async function expireHolds(
  deps: { pool: Pool; gate: GateCache; log: Pick<Logger, 'info' | 'warn'> }, opts: { now: number; batchSize?: number; accounts?: readonly string[] },
): Promise<number> {
  const batchSize = opts.batchSize ?? 1000;
  let total = 0;
  for (;;) {
    const expired = await expireStored(deps.pool, new Date(opts.now), batchSize, opts.accounts);
    total += expired.length;
    const byAccount = new Map<string, string[]>();
    for (const h of expired) byAccount.set(h.accountId, [...(byAccount.get(h.accountId) ?? []), h.id]);
    await Promise.all([...byAccount].map(([account, ids]) => deps.gate.close(account, ids))).catch((e: unknown) => {
      deps.log.warn({ err: (e as Error).message }, 'Redis did not drop expired holds; the gate skips them by their expiry anyway');
    });
    if (expired.length < batchSize) return total;
  }
}
