import { expect } from 'vitest';
import { freePort } from '@meterstream/bench/http';
import { toMicros, type UsageEvent } from '@meterstream/schemas';
import { produceEvents, setPrices, waitRaterIdle } from '../../tests/support/fixtures.js';
import { startService, waitServing, type ServiceProcess } from '../../tests/support/processes.js';
import { test } from '../../tests/support/test.js';
import { ADMIN_KEY, admin, uid } from './support.js';

// SIGKILL of ingest and of the rater while holds are open, each as its own OS process: holds
// survive in Postgres and Redis, a capture committed by a rater killed before its cache write is
// freed in Redis by its successor, and the gate, the rater and the balance API agree after.

const PRODUCT = 'gate-crash-call'; // USD 1 per request

test('holds survive SIGKILL of ingest and of the rater, and everything agrees after', async ({ stack }) => {
  await setPrices(stack, { [PRODUCT]: { unit: 'request', unit_price: '1', per: 1, currency: 'USD' } });
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const ingestEnv = {
    ...stack.env, ADMIN_API_KEY: ADMIN_KEY, INGEST_HOST: '127.0.0.1', INGEST_PORT: String(port),
    CHDB_PATH: `.chdb/test-${process.env.MS_TEST_RUN ?? 'local'}/gate-crash-${process.pid}`,
  };
  const running: ServiceProcess[] = [];
  const start = (entry: string, env: Record<string, string>) => {
    const p = startService(entry, env);
    running.push(p);
    return p;
  };
  const call = async (method: string, path: string, body?: unknown, key = uid('k')) => {
    const res = await fetch(`${url}${path}`, {
      method, headers: { ...admin, 'idempotency-key': key, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    return { status: res.status, body: await res.json() as Record<string, unknown> };
  };
  const authorize = (accountId: string) => call('POST', '/v1/authorize', { account_id: accountId, product: PRODUCT, max_quantity: '1' });

  try {
    let ingest = start('ingest/src/main.ts', ingestEnv);
    await waitServing(ingest, url);
    // A plan without a signup gift, so that the account holds exactly what it is granted.
    const planId = 'test-no-gift-usd-prepaid';
    const plan = { name: 'Tests: no signup gift', currency: 'USD', billing_mode: 'prepaid', signup_gift: { amount: '0', validity_days: 7 } };
    expect((await call('PUT', `/v1/plans/${planId}`, plan)).status).toBeLessThan(300);
    const acct = await call('POST', '/v1/accounts', { email: `${uid('crash')}@example.com`, currency: 'USD', billing_mode: 'prepaid', plan_id: planId });
    const id = acct.body.id as string;
    expect((await call('POST', `/v1/accounts/${id}/grants`, { kind: 'purchased', amount: '10' })).status).toBe(201);
    const holds = await Promise.all(Array.from({ length: 8 }, () => authorize(id)));
    expect(holds.map((h) => h.status)).toEqual(Array(8).fill(200));

    await ingest.kill('SIGKILL');
    ingest = start('ingest/src/main.ts', ingestEnv);
    await waitServing(ingest, url);
    // 10 - 8 held: two more, then refused.
    expect((await Promise.all(Array.from({ length: 3 }, () => authorize(id)))).map((h) => h.status).sort()).toEqual([200, 200, 402]);
    const ids = holds.map((h) => h.body.hold_id as string);
    expect((await call('POST', `/v1/holds/${ids[7]}/release`)).body).toMatchObject({ status: 'released' });

    // Captures of 3 holds at twice their amount; the rater dies right after committing them,
    // before its cache write would free them in Redis.
    const events: UsageEvent[] = ids.slice(0, 3).map((holdId) => ({
      id: uid('e'), account_id: id, product: PRODUCT, quantity: toMicros('2'), timestamp: new Date().toISOString(), hold_id: holdId,
    }));
    await produceEvents(stack, events);
    const raterEnv = { ...stack.env, LOG_LEVEL: 'warn', RATER_SESSION_TIMEOUT_MS: '6000' };
    const doomed = start('rater/src/main.ts', { ...raterEnv, RATER_CRASH_AT: 'after-pg-commit', RATER_CRASH_ON_BATCH: '1' });
    expect(await doomed.exited).toBe('SIGKILL');
    start('rater/src/main.ts', raterEnv);
    await waitRaterIdle(stack);

    const charged = await stack.pool.query<{ amount: bigint }>('SELECT amount FROM usage_ledger WHERE account_id = $1', [id]);
    expect(charged.rows.map((r) => r.amount)).toEqual(Array(3).fill(toMicros('1')));
    // 10 - 3 charged; held: 10 holds - 3 captured - 1 released = 6.
    const balance = await call('GET', `/v1/accounts/${id}/balance`);
    expect(balance.body).toMatchObject({ balance: '7.000000', held: '6.000000', spendable: '1.000000' });
    expect(await stack.cache.gate.heldAt(id, Date.now())).toBe(toMicros('6'));
    expect((await Promise.all(Array.from({ length: 2 }, () => authorize(id)))).map((h) => h.status).sort()).toEqual([200, 402]);
  } finally {
    await Promise.all(running.map((p) => p.kill('SIGKILL')));
  }
});
