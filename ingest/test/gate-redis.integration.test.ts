import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '@meterstream/platform/clock';
import { createRedis, type Redis } from '@meterstream/platform/redis';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { newHoldId } from '@meterstream/ledger/commands/authorize';
import { insertHolds } from '@meterstream/platform/stores/holds';
import { setPrices } from '../../tests/support/fixtures.js';
import { startPrivateRedis, type PrivateRedis } from '../../tests/support/redis-server.js';
import { admin, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// The gate's Redis is a copy: open holds survive a flush (rebuilt from Postgres, the holds table),
// and with Redis gone the gate answers 503, never a pass. The app runs on a Redis of this file's own.

const PRODUCT = 'gate-redis-call'; // USD 1 per request

describe('the spend gate and its Redis', () => {
  let t: TestIngest;
  let server: PrivateRedis;
  let redis: Redis;
  let cache: BalanceCache;

  beforeAll(async () => {
    server = await startPrivateRedis();
    redis = createRedis(server.url, { timeouts: { REDIS_COMMAND_TIMEOUT_MS: 300 } });
    cache = new BalanceCache(redis, 'gate-redis-test:');
    t = await openIngest('gate-redis', {}, { cache });
    await setPrices(t.stack, { [PRODUCT]: { unit: 'request', unit_price: '1', per: 1, currency: 'USD' } });
  }, 120_000);
  afterAll(async () => {
    await t?.close();
    redis?.disconnect();
    await server?.kill();
  });

  const inject = () => injector(t.app);
  const authorize = (accountId: string, maxQuantity: string, key = uid('k')) =>
    inject()('POST', '/v1/authorize', { ...admin, 'idempotency-key': key }, { account_id: accountId, product: PRODUCT, max_quantity: maxQuantity });

  it('keeps counting open holds after a flush, and a refusal stays terminal', async () => {
    const acct = await createAccount(t.app);
    expect((await inject()('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('g') }, { kind: 'purchased', amount: '10' })).statusCode).toBe(201);
    const keys = Array.from({ length: 7 }, () => uid('k'));
    const held = await Promise.all(keys.map((key) => authorize(acct.id, '1', key)));
    expect(held.map((r) => r.statusCode)).toEqual(Array(7).fill(200));
    const refusedKey = uid('k');
    expect((await authorize(acct.id, '4', refusedKey)).statusCode).toBe(402);
    const released = held[0]!.json<{ hold_id: string }>().hold_id;
    expect((await inject()('POST', `/v1/holds/${released}/release`, admin)).statusCode).toBe(200);

    await server.admin.flushall();

    // 10 - 6 open holds: 4 left, exactly.
    const after = await Promise.all(Array.from({ length: 6 }, () => authorize(acct.id, '1')));
    expect(after.map((r) => r.statusCode).sort()).toEqual([200, 200, 200, 200, 402, 402]);
    expect((await authorize(acct.id, '4', refusedKey)).statusCode).toBe(402);
    // A hold's retry answers the hold it made, not a second one (nor a refusal).
    const retry = await authorize(acct.id, '1', keys[1]);
    expect(retry.json()).toEqual(held[1]!.json());
    const balance = await inject()('GET', `/v1/accounts/${acct.id}/balance`, admin);
    expect(balance.json()).toMatchObject({ balance: '10.000000', held: '10.000000', spendable: '0.000000' });
  });

  it('a hold reserved before a flush and committed after the rebuild read Postgres is put back, and counts', async () => {
    const acct = await createAccount(t.app);
    expect((await inject()('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('g') }, { kind: 'purchased', amount: '10' })).statusCode).toBe(201);
    expect((await authorize(acct.id, '2')).statusCode).toBe(200);
    const gate = cache.gate;
    // The race, step by step: the reservation, then a flush and a rebuild from Postgres (which
    // does not hold the new hold yet), then the hold's commit.
    const nowMs = systemClock.now();
    const holdId = newHoldId();
    const reserved = await gate.reserve(acct.id, holdId, 3_000_000n, nowMs, new Date(nowMs).toISOString().slice(0, 7));
    if (reserved.kind !== 'held') throw new Error(`expected a reservation, got ${JSON.stringify(reserved)}`);
    await server.admin.flushall();
    expect((await authorize(acct.id, '1')).statusCode).toBe(200); // rebuilds the gate: 2 + 1 held
    const expiresAt = new Date(reserved.expiresMs);
    await insertHolds(t.stack.pool, [{
      id: holdId, accountId: acct.id, idempotencyKey: uid('k'), product: PRODUCT, maxQuantity: 3_000_000n, amount: 3_000_000n,
      currency: 'USD', status: 'open', refusal: null, createdAt: new Date(nowMs), expiresAt,
    }]);
    const hold = { id: holdId, amount: 3_000_000n, expiresMs: reserved.expiresMs };
    expect(await gate.keepHeld(acct.id, hold, reserved.epoch)).toBe(true);
    expect(await gate.keepHeld(acct.id, hold, reserved.epoch)).toBe(false); // once
    // 10 - (2 + 1 + 3) = 4 spendable, in the gate as in Postgres.
    expect((await gate.heldAt(acct.id, systemClock.now())).toString()).toBe('6000000');
    const balance = await inject()('GET', `/v1/accounts/${acct.id}/balance`, admin);
    expect(balance.json()).toMatchObject({ balance: '10.000000', held: '6.000000', spendable: '4.000000' });
    expect((await authorize(acct.id, '5')).statusCode).toBe(402);
    expect((await authorize(acct.id, '4')).statusCode).toBe(200);
  });

  it('answers 503 when Redis is gone: fail closed', async () => {
    const acct = await createAccount(t.app);
    expect((await inject()('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('g') }, { kind: 'purchased', amount: '10' })).statusCode).toBe(201);
    expect((await authorize(acct.id, '1')).statusCode).toBe(200);
    server.pause();
    try {
      const hung = await authorize(acct.id, '1');
      expect({ status: hung.statusCode, code: hung.json<{ error: { code: string } }>().error.code }).toEqual({ status: 503, code: 'DEPENDENCY_UNAVAILABLE' });
    } finally {
      server.resume();
    }
    await server.kill();
    const gone = await authorize(acct.id, '1');
    expect({ status: gone.statusCode, code: gone.json<{ error: { code: string } }>().error.code }).toEqual({ status: 503, code: 'DEPENDENCY_UNAVAILABLE' });
    const count = await t.stack.pool.query<{ n: string }>("SELECT count(*)::text AS n FROM holds WHERE account_id = $1 AND status = 'open'", [acct.id]);
    expect(count.rows[0]!.n).toBe('1');
  });
});
