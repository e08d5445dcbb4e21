import { connect } from 'node:net';
import { once } from 'node:events';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { createRedis, type Redis } from '@meterstream/platform/redis';
import { issueKey } from '@meterstream/platform/stores/api-keys';
import { createTenant } from '@meterstream/platform/stores/tenants';
import { waitFor } from '../../tests/support/processes.js';
import { buildApp } from '../src/app.js';
import { IngestConfig } from '../src/config.js';
import { UsageEventProducer } from '../src/producer-client.js';
import { ADMIN_KEY, admin, bearer, createAccount, openIngest, type TestIngest } from './support.js';

const LIMITS = {
  RATE_LIMIT_MAX: '3',
  RATE_LIMIT_TENANT_MAX: '4',
  RATE_LIMIT_WINDOW_MS: '60000',
  // Long enough that nothing expires during the test: what is counted is the caches' doing.
  API_KEY_NEGATIVE_CACHE_TTL_MS: '600000',
  INGEST_CONNECTION_TIMEOUT_MS: '300',
};

let t: TestIngest;
let producer: UsageEventProducer;
const apps: FastifyInstance[] = [];
const redisClients: Redis[] = [];

/** Another ingest instance on the same database and Redis prefix, rate-limit counts in `redis`. */
async function instance(redis: Redis): Promise<FastifyInstance> {
  const config = loadConfig(IngestConfig, { ...t.stack.env, ADMIN_API_KEY: ADMIN_KEY, ...LIMITS });
  const app = await buildApp({
    config, pool: t.stack.pool, cache: t.stack.cache, producer, ch: t.ch.ch, chDatabase: t.ch.database, redis,
    log: createLogger('ingest-rate-limit', config.LOG_LEVEL),
  });
  apps.push(app);
  return app;
}

beforeAll(async () => {
  t = await openIngest('ingest-rate-limit', LIMITS);
  producer = await UsageEventProducer.connect(t.stack.kafka, { topic: t.stack.topics.events, lingerMs: 0 });
});
afterAll(async () => {
  for (const app of apps) await app.close();
  for (const r of redisClients) r.disconnect();
  await producer?.close();
  await t?.close();
});

const balance = (app: FastifyInstance, account: string, key: string) =>
  app.inject({ method: 'GET', url: `/v1/accounts/${account}/balance`, headers: bearer(key) });

describe('per-account rate limits', () => {
  it('answer 429 with the envelope and Retry-After past the limit, counted across instances in Redis', async () => {
    const [a, b] = [await instance(t.stack.redis), await instance(t.stack.redis)];
    const acct = await createAccount(a);
    const bystander = await createAccount(a);

    const statuses = [];
    for (const app of [a, b, a]) statuses.push((await balance(app, acct.id, acct.api_key)).statusCode);
    expect(statuses).toEqual([200, 200, 200]);
    const limited = await balance(b, acct.id, acct.api_key);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual({ error: { code: 'RATE_LIMITED', message: expect.stringMatching(/3 requests per 60 s/) } });
    const retryAfter = Number(limited.headers['retry-after']);
    expect(retryAfter >= 1 && retryAfter <= 60).toBe(true);

    // Another key of the same account shares its budget; other accounts and the admin key do not.
    const second = await a.inject({ method: 'POST', url: `/v1/accounts/${acct.id}/keys`, headers: admin });
    expect((await balance(a, acct.id, second.json().api_key)).statusCode).toBe(429);
    expect((await balance(b, bystander.id, bystander.api_key)).statusCode).toBe(200);
    for (let i = 0; i < 5; i++) expect((await balance(a, acct.id, ADMIN_KEY)).statusCode).toBe(200);
  });

  it("count a tenant's service keys per tenant, across its accounts and apart from the accounts' own budgets", async () => {
    const [a, b] = [await instance(t.stack.redis), await instance(t.stack.redis)];
    const [first, second] = [await createAccount(a), await createAccount(a)];
    const tenant = await createTenant(t.stack.pool, { name: 'Rate-limited tenant', defaultPlanId: 'test-no-gift-usd-prepaid' });
    await t.stack.pool.query('UPDATE accounts SET tenant_id = $1 WHERE id = ANY($2::text[])', [tenant.id, [first.id, second.id]]);
    const key = (await issueKey(t.stack.pool, { kind: 'service', tenantId: tenant.id })).apiKey;

    const statuses = [];
    for (const [app, acct] of [[a, first], [b, second], [a, second], [b, first]] as const) statuses.push((await balance(app, acct.id, key)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 200]);
    const limited = await balance(a, first.id, key);
    expect(limited.statusCode).toBe(429);
    expect(limited.json()).toEqual({ error: { code: 'RATE_LIMITED', message: expect.stringMatching(/^this tenant may make 4 requests per 60 s/) } });
    // The accounts' own keys keep their own budgets.
    expect((await balance(b, first.id, first.api_key)).statusCode).toBe(200);
    expect((await balance(a, second.id, second.api_key)).statusCode).toBe(200);
  });

  it('keep counting in memory while Redis does not answer, instead of failing requests', async () => {
    const unreachable = createRedis('redis://127.0.0.1:1', { log: createLogger('unreachable-redis', 'silent') });
    redisClients.push(unreachable);
    const app = await instance(unreachable);
    const acct = await createAccount(app);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await balance(app, acct.id, acct.api_key)).statusCode);
    expect(statuses).toEqual([200, 200, 200, 429]);
  });
});

describe('unknown keys', () => {
  it('cost one Postgres lookup per key within the negative-cache TTL', async () => {
    const app = t.app;
    const acct = await createAccount(app);
    const before = app.apiKeys.dbLookups;
    const bad = `msk_${'x'.repeat(43)}`;
    const burst = await Promise.all(Array.from({ length: 20 }, () => balance(app, acct.id, bad)));
    const later = [];
    for (let i = 0; i < 20; i++) later.push(await balance(app, acct.id, bad));
    for (const res of [...burst, ...later]) {
      expect(res.statusCode).toBe(401);
      expect(res.json().error.code).toBe('UNAUTHORIZED');
    }
    expect(app.apiKeys.dbLookups - before).toBe(1);
    await balance(app, acct.id, `msk_${'y'.repeat(43)}`);
    expect(app.apiKeys.dbLookups - before).toBe(2);
  });
});

describe('server timeouts', () => {
  it('close a connection that stalls mid-request', async () => {
    const app = await instance(t.stack.redis);
    await app.listen({ host: '127.0.0.1', port: 0 });
    const { port } = app.server.address() as { port: number };
    const socket = connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.on('error', () => undefined); // a reset is a close too
    socket.write('POST /v1/events HTTP/1.1\r\nHost: localhost\r\n'); // and then nothing
    // Node's own header timeout would close it too, but only after a minute.
    await waitFor('the server to close the stalled connection', async () => socket.destroyed, 5000);
  });
});
