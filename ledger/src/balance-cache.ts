import type { Redis } from 'ioredis';
import type { Pool } from '@meterstream/platform/postgres';
import { loadAccountStates, loadLedgerSeq, type AccountState, type GrantState } from './account-state.js';
import { CLOSE_HOLDS_LUA, GateCache, gateFields, gateKeys } from './gate-cache.js';

// Sets the state only when its ledger seq is newer than the cached one: writes after each
// Postgres commit can arrive in any order (retries, a rater that lost its partition) and the
// newest always wins, so a replayed write is a no-op. Beside the JSON state it keeps the figures
// the gate's Lua script decides on (gate-cache.ts), and it takes the holds the write's commit
// captured out of the gate in the same step, whether or not the state is newer: a newer state
// holds their charges already. So a capture never shows as freed before it shows as charged.
const SET_IF_NEWER = `
${CLOSE_HOLDS_LUA}
for i = 8, #ARGV do close_hold(KEYS[2], KEYS[3], ARGV[i]) end
local cur = redis.call('HGET', KEYS[1], 'seq')
-- A state cached before the gate's figures existed is replaced once, whatever its seq.
if cur and tonumber(cur) >= tonumber(ARGV[1]) and redis.call('HEXISTS', KEYS[1], 'gg') == 1 then return 0 end
redis.call('HSET', KEYS[1], 'seq', ARGV[1], 'state', ARGV[2], 'gg', ARGV[3], 'od', ARGV[4], 'mode', ARGV[5], 'pm', ARGV[6], 'pa', ARGV[7])
return 1`;

/** An account state to cache, with the holds its commit captured (the rater's batches). */
export type CachedState = AccountState & { closedHolds?: readonly string[] };

interface Wire {
  id: string; c: string; m: string; o: string; s: string; pm: string; pa: string;
  g: [string, string, string, string, number | null, number, string][];
}

function encode(s: AccountState): string {
  const w: Wire = {
    id: s.id, c: s.currency, m: s.billingMode, o: s.overdraft.toString(), s: s.ledgerSeq.toString(),
    pm: s.postpaidMonth, pa: s.postpaidAmount.toString(),
    g: s.grants.map((g) => [g.id, g.kind, g.amount.toString(), g.remaining.toString(), g.expiresAt, g.priority, g.createdSeq.toString()]),
  };
  return JSON.stringify(w);
}

function decode(text: string): AccountState {
  const w = JSON.parse(text) as Wire;
  return {
    id: w.id, currency: w.c as AccountState['currency'], billingMode: w.m as AccountState['billingMode'],
    overdraft: BigInt(w.o), ledgerSeq: BigInt(w.s), postpaidMonth: w.pm, postpaidAmount: BigInt(w.pa),
    grants: w.g.map(([id, kind, amount, remaining, expiresAt, priority, createdSeq]): GrantState => ({
      id, kind: kind as GrantState['kind'], amount: BigInt(amount), remaining: BigInt(remaining), expiresAt, priority, createdSeq: BigInt(createdSeq),
    })),
  };
}

/** Redis copy of each account's money state; Postgres stays the truth and rebuilds it on a miss or when stale. */
export class BalanceCache {
  /** The spend gate's holds, in the same Redis and key space. */
  readonly gate: GateCache;

  constructor(private readonly redis: Redis, private readonly prefix: string) {
    redis.defineCommand('msSetIfNewer', { numberOfKeys: 3, lua: SET_IF_NEWER });
    this.gate = new GateCache(redis, prefix);
  }

  key(accountId: string): string {
    return `${this.prefix}acct:${accountId}`;
  }

  /** One pipelined round trip for any number of accounts. */
  async write(states: Iterable<CachedState>): Promise<void> {
    const pipe = this.redis.pipeline();
    let n = 0;
    for (const s of states) {
      const g = gateKeys(this.prefix, s.id);
      (pipe as unknown as { msSetIfNewer(...args: string[]): void }).msSetIfNewer(
        this.key(s.id), g.holds, g.expiries, s.ledgerSeq.toString(), encode(s), ...gateFields(s), ...(s.closedHolds ?? []),
      );
      n++;
    }
    if (n === 0) return;
    const results = await pipe.exec();
    const failed = results?.find(([err]) => err);
    if (failed) throw failed[0];
  }

  async read(accountId: string): Promise<AccountState | null> {
    const text = await this.redis.hget(this.key(accountId), 'state');
    return text ? decode(text) : null;
  }

  async readMany(ids: readonly string[]): Promise<Map<string, AccountState>> {
    const out = new Map<string, AccountState>();
    if (ids.length === 0) return out;
    const pipe = this.redis.pipeline();
    for (const id of ids) pipe.hget(this.key(id), 'state');
    const results = (await pipe.exec()) ?? [];
    results.forEach(([err, text], i) => {
      if (!err && typeof text === 'string') out.set(ids[i]!, decode(text));
    });
    return out;
  }

  /** Drops a possibly stale entry so that the next read rebuilds it from Postgres. */
  async forget(accountId: string): Promise<void> {
    await this.redis.del(this.key(accountId));
  }

  /**
   * The account's state, never older than Postgres: Redis's copy when its ledger seq is as new as
   * accounts.ledger_seq (read in parallel, one primary-key query); otherwise (missing, stale after
   * a cache write that failed, Redis down) the state from Postgres, and the cache repaired when
   * Redis answered. With Postgres down, Redis's copy is served as the best available answer.
   */
  async readThrough(pool: Pool, accountId: string, nowMs: number): Promise<{ state: AccountState; source: 'redis' | 'postgres' } | null> {
    const [cached, seq] = await Promise.allSettled([this.read(accountId), loadLedgerSeq(pool, accountId)]);
    if (seq.status === 'rejected') {
      if (cached.status === 'fulfilled' && cached.value) return { state: cached.value, source: 'redis' };
      throw seq.reason;
    }
    if (seq.value === undefined) return null;
    if (cached.status === 'fulfilled' && cached.value && cached.value.ledgerSeq >= seq.value) return { state: cached.value, source: 'redis' };
    const state = (await loadAccountStates(pool, [accountId], { forUpdate: false, nowMs })).get(accountId);
    if (!state) return null;
    if (cached.status === 'fulfilled') await this.write([state]).catch(() => undefined);
    return { state, source: 'postgres' };
  }
}
