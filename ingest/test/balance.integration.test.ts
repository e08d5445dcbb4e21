import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toMicros } from '@meterstream/schemas';
import { createRedis, type Redis } from '@meterstream/platform/redis';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { startPrivateRedis, type PrivateRedis } from '../../tests/support/redis-server.js';
import { admin, bearer, createAccount, openIngest, uid, type TestIngest } from './support.js';

describe('GET /v1/accounts/{id}/balance while Redis is down', () => {
  let t: TestIngest;
  let redisServer: PrivateRedis;
  let redis: Redis;

  beforeAll(async () => {
    // The app's cache is on a Redis of this file's own, which the test hangs and then kills.
    redisServer = await startPrivateRedis();
    redis = createRedis(redisServer.url, { timeouts: { REDIS_COMMAND_TIMEOUT_MS: 300 } });
    t = await openIngest('balance', {}, { cache: new BalanceCache(redis, 'balance-test:') });
  });
  afterAll(async () => {
    await t?.close();
    redis?.disconnect();
    await redisServer?.kill();
  });

  const grant = async (id: string, amount: string) => {
    const res = await t.app.inject({ method: 'POST', url: `/v1/accounts/${id}/grants`, headers: { ...admin, 'idempotency-key': uid('grant') }, payload: { kind: 'purchased', amount } });
    expect(res.statusCode).toBe(201);
  };
  const balance = async (id: string, key: string) => {
    const res = await t.app.inject({ method: 'GET', url: `/v1/accounts/${id}/balance`, headers: bearer(key) });
    expect({ status: res.statusCode, body: res.json() as unknown }).toMatchObject({ status: 200 });
    const body = res.json<{ balance: string; source: string }>();
    return { balance: toMicros(body.balance), source: body.source };
  };

  it('answers 200 from Postgres when Redis hangs or is gone, grants included', async () => {
    const acct = await createAccount(t.app);
    await grant(acct.id, '4');
    expect(await balance(acct.id, acct.api_key)).toEqual({ balance: toMicros('4'), source: 'redis' });

    redisServer.pause(); // accepts connections, answers nothing
    try {
      expect(await balance(acct.id, acct.api_key)).toEqual({ balance: toMicros('4'), source: 'postgres' });
    } finally {
      redisServer.resume();
    }

    await redisServer.kill();
    expect(await balance(acct.id, acct.api_key)).toEqual({ balance: toMicros('4'), source: 'postgres' });
    await grant(acct.id, '6');
    expect(await balance(acct.id, acct.api_key)).toEqual({ balance: toMicros('10'), source: 'postgres' });
  });
});
