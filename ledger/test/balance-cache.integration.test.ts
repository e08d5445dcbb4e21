import { systemClock } from '@meterstream/platform/clock';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { toMicros } from '@meterstream/schemas';
import { createRedis, type Redis } from '@meterstream/platform/redis';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { createLogger } from '@meterstream/platform/logger';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { addGrant } from '@meterstream/ledger/commands/add-grant';
import { balanceAt, cachedPart, loadAccountStates } from '@meterstream/ledger/account-state';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { createAccount } from '../../tests/support/fixtures.js';
import { startPrivateRedis, type PrivateRedis } from '../../tests/support/redis-server.js';

const grant = (amount: string) => ({ kind: 'purchased' as const, amount, priority: 100 });
const log = createLogger('balance-cache-test', 'silent');

describe('BalanceCache.readThrough', () => {
  let stack: TestStack;
  let redisServer: PrivateRedis;
  const clients: Redis[] = [];
  const cacheOn = (url: string, commandTimeoutMs = 1_000) => {
    const redis = createRedis(url, { timeouts: { REDIS_COMMAND_TIMEOUT_MS: commandTimeoutMs } });
    clients.push(redis);
    return new BalanceCache(redis, stack.config.REDIS_PREFIX);
  };

  beforeAll(async () => {
    stack = await openStack('balance-cache');
    redisServer = await startPrivateRedis();
  });
  afterAll(async () => {
    for (const c of clients) c.disconnect();
    await redisServer?.kill();
    await stack?.close();
  });

  it('shows a grant whose cache write and invalidation were both refused, and repairs the cache', async () => {
    const account = await createAccount(stack);
    const writer = cacheOn(redisServer.url);
    // Grants cached on this Redis; the write order's own repair held off, so that the reader's is what is tested.
    const cacheWriter = new CacheWriter(writer, stack.pool, log, { retryInitialMs: 600_000 });
    const order = new WriteOrder({ pool: stack.pool, send: async () => undefined, cache: cacheWriter, topics: stack.topics, log });
    let n = 0;
    const addCredits = (amount: string) => addGrant(order, { accountId: account, input: grant(amount), idempotencyKey: `k${++n}` });
    onTestFinished(() => cacheWriter.stop());
    await addCredits('5');
    expect(balanceAt((await writer.read(account))!, Date.now())).toBe(toMicros('5'));

    // This Redis now refuses every write (the Lua update and the DEL alike): NOREPLICAS.
    await redisServer.admin.config('SET', 'min-replicas-to-write', '1');
    try {
      await addCredits('7');
      // The precondition of the defect: Redis still holds the state from before the grant.
      expect(balanceAt((await writer.read(account))!, Date.now())).toBe(toMicros('5'));
    } finally {
      await redisServer.admin.config('SET', 'min-replicas-to-write', '0');
    }

    const reader = cacheOn(redisServer.url);
    const truth = (await loadAccountStates(stack.pool, [account], { forUpdate: false, nowMs: systemClock.now() })).get(account)!;
    const found = await reader.readThrough(stack.pool, account, systemClock.now());
    expect(found).toEqual({ state: truth, source: 'postgres' });
    expect(balanceAt(found!.state, Date.now())).toBe(toMicros('12'));
    // Repaired: Redis holds the current state again and answers the next read itself.
    expect(await reader.read(account)).toEqual(cachedPart(truth));
    expect(await reader.readThrough(stack.pool, account, systemClock.now())).toEqual({ state: cachedPart(truth), source: 'redis' });
  });

  it('answers from Postgres when Redis accepts connections but never answers', async () => {
    const account = await createAccount(stack, {}, [grant('3')]);
    const hung = await startPrivateRedis();
    try {
      const cache = cacheOn(hung.url, 300);
      hung.pause();
      const found = await cache.readThrough(stack.pool, account, systemClock.now());
      expect(found?.source).toBe('postgres');
      expect(balanceAt(found!.state, Date.now())).toBe(toMicros('3'));
    } finally {
      hung.resume();
      await hung.kill();
    }
  });

  it('returns null for an account that does not exist, whatever Redis holds', async () => {
    expect(await stack.cache.readThrough(stack.pool, 'acct-does-not-exist', systemClock.now())).toBeNull();
  });
});
