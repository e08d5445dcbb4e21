import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { ID_MAX_LENGTH, INT64_MAX } from '@meterstream/schemas';
import { createClickHouse } from '@meterstream/platform/clickhouse';
import { createLogger } from '@meterstream/platform/logger';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { createRedis } from '@meterstream/platform/redis';
import { loadConfig } from '@meterstream/platform/config';
import { openRaw, rawRequest, refusedPort, type RawResponse } from '../../tests/support/raw-http.js';
import { buildApp, type AppDeps } from '../src/app.js';
import { IngestConfig } from '../src/config.js';
import { outageOf } from '../src/errors.js';
import { UsageEventProducer } from '../src/producer-client.js';
import { admin, ADMIN_KEY, bearer, createAccount, openIngest, type TestIngest } from './support.js';

let t: TestIngest;
let url: string;
let producer: UsageEventProducer;
const extraApps: FastifyInstance[] = [];
const extraPools: Pool[] = [];

beforeAll(async () => {
  t = await openIngest('ingest-errors', { MAX_BODY_BYTES: '2048' });
  url = await t.app.listen({ host: '127.0.0.1', port: 0 });
  producer = await UsageEventProducer.connect(t.stack.kafka, { topic: t.stack.topics.events, lingerMs: 0 });
});
afterAll(async () => {
  for (const app of extraApps) await app.close();
  await producer?.close();
  for (const pool of extraPools) await pool.end();
  await t?.close();
});

/** Another app on the test's stack, with some of its clients replaced. */
async function appWith(over: Partial<AppDeps>, env: Record<string, string> = {}): Promise<FastifyInstance> {
  const config = loadConfig(IngestConfig, { ...t.stack.env, ADMIN_API_KEY: ADMIN_KEY, ...env });
  const app = await buildApp({
    config, pool: t.stack.pool, cache: t.stack.cache, producer, ch: t.ch.ch, chDatabase: t.ch.database,
    log: createLogger('ingest-errors', 'silent'), ...over,
  });
  extraApps.push(app);
  return app;
}

const envelope = { error: { code: expect.any(String), message: expect.any(String) } };

function expectEnvelope(res: RawResponse | null, status: number, code: string): RawResponse {
  expect(res).not.toBeNull();
  expect(res!.status).toBe(status);
  expect(res!.headers['content-type']).toMatch(/^application\/json/);
  expect(JSON.parse(res!.body)).toEqual({ error: { code, message: expect.any(String) } });
  return res!;
}

describe("Fastify's and Node's own errors leave as the envelope", () => {
  it('404 for an unknown path, 405 with Allow for a known path asked with another method', async () => {
    const unknown = await t.app.inject({ method: 'GET', url: '/v1/nope?x=1' });
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'no route GET /v1/nope' } });

    const del = await t.app.inject({ method: 'DELETE', url: '/v1/events', headers: admin });
    expect(del.statusCode).toBe(405);
    expect(del.headers.allow).toBe('POST');
    expect(del.json()).toEqual({ error: { code: 'METHOD_NOT_ALLOWED', message: 'DELETE is not allowed on /v1/events; allowed: POST' } });

    const put = await t.app.inject({ method: 'PUT', url: '/v1/accounts/acct_1/balance', headers: admin });
    expect(put.statusCode).toBe(405);
    expect(put.headers.allow).toBe('GET, HEAD');
    expect(put.json().error.code).toBe('METHOD_NOT_ALLOWED');
  });

  it(`routes every id of up to ${ID_MAX_LENGTH} characters; a longer path parameter is a 414 envelope`, async () => {
    const longest = `p${'x'.repeat(ID_MAX_LENGTH - 1)}`;
    const price = { unit: 'token', unit_price: '0.001', per: 1000, currency: 'USD' };
    const put = await t.app.inject({ method: 'PUT', url: `/v1/prices/${longest}`, headers: admin, payload: price });
    expect(put.statusCode).toBe(200);
    expect(put.json().product).toBe(longest);
    const balance = await t.app.inject({ method: 'GET', url: `/v1/accounts/${'a'.repeat(ID_MAX_LENGTH)}/balance`, headers: admin });
    expect(balance.statusCode).toBe(404);
    expect(balance.json().error.code).toBe('ACCOUNT_NOT_FOUND');

    for (const path of [`/v1/accounts/${'a'.repeat(ID_MAX_LENGTH + 1)}/balance`, `/v1/prices/${'p'.repeat(200)}`]) {
      const res = await t.app.inject({ method: path.startsWith('/v1/prices') ? 'PUT' : 'GET', url: path, headers: admin, payload: price });
      expect(res.statusCode).toBe(414);
      expect(res.json()).toEqual({
        error: { code: 'URI_TOO_LONG', message: `a path parameter is longer than ${ID_MAX_LENGTH} characters, the longest id there is` },
      });
    }
  });

  it('413, 415, malformed and empty JSON, a wrong content-length and a bad URL encoding', async () => {
    const post = (payload: string, headers: Record<string, string>) =>
      t.app.inject({ method: 'POST', url: '/v1/accounts', payload, headers: { ...admin, ...headers } });
    const json = { 'content-type': 'application/json' };

    const big = await post(JSON.stringify({ email: `${'x'.repeat(3000)}@example.com`, currency: 'USD', billing_mode: 'prepaid' }), json);
    expect(big.statusCode).toBe(413);
    expect(big.json()).toEqual({ error: { code: 'PAYLOAD_TOO_LARGE', message: expect.any(String) } });

    const text = await post('<email/>', { 'content-type': 'application/xml' });
    expect(text.statusCode).toBe(415);
    expect(text.json()).toEqual({ error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: expect.any(String) } });

    for (const body of ['{"email":', '', '{"a":1}}', '\u0000']) {
      const res = await post(body, json);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: { code: 'MALFORMED_JSON', message: expect.any(String) } });
    }

    const proto = await post('{"__proto__":{"x":1}}', json);
    expect(proto.statusCode).toBe(400);
    expect(proto.json()).toEqual(envelope);

    const length = await post('{"email":"a@example.com"}', { ...json, 'content-length': '5' });
    expect(length.statusCode).toBe(400);
    expect(length.json()).toEqual(envelope);

    const badUrl = await t.app.inject({ method: 'GET', url: '/v1/accounts/%E0%A4%A/balance', headers: admin });
    expect(badUrl.statusCode).toBe(400);
    expect(badUrl.json()).toEqual({ error: { code: 'BAD_URL', message: 'the path is not valid percent-encoded UTF-8' } });
  });

  it('requests the HTTP parser refuses: bad framing, invalid tokens, headers too large', async () => {
    const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;
    const cases: [string, number, string][] = [
      [head(['POST /v1/accounts HTTP/1.1', 'Host: x', 'Content-Length: abc']), 400, 'MALFORMED_REQUEST'],
      [head(['POST /v1/events HTTP/1.1', 'Host: x', 'Content-Length: 5', 'Transfer-Encoding: chunked']), 400, 'MALFORMED_REQUEST'],
      [head(['POST /v1/events HTTP/1.1', 'Host: x', 'Content-Length: 5', 'Content-Length: 6']), 400, 'MALFORMED_REQUEST'],
      [head(['G@T /healthz HTTP/1.1', 'Host: x']), 400, 'MALFORMED_REQUEST'],
      [head(['GET /healthz HTTP/1.1']), 400, 'MISSING_HOST'],
      [head(['GET /healthz HTTP/1.1', 'Host: x', 'Bad Header: 1']), 400, 'MALFORMED_REQUEST'],
      [head(['GET /healthz HTTP/1.1', 'Host: x', `X-Big: ${'a'.repeat(20_000)}`]), 431, 'HEADERS_TOO_LARGE'],
      [head([`GET /v1/prices?q=${'a'.repeat(20_000)} HTTP/1.1`, 'Host: x']), 431, 'HEADERS_TOO_LARGE'],
    ];
    for (const [bytes, status, code] of cases) expectEnvelope(await rawRequest(url, bytes), status, code);
    const connect = expectEnvelope(await rawRequest(url, head(['CONNECT example.com:443 HTTP/1.1', 'Host: example.com:443'])), 405, 'METHOD_NOT_ALLOWED');
    // the methods the API routes, sorted
    expect(connect.headers.allow).toBe('DELETE, GET, HEAD, PATCH, POST, PUT');
  });

  it('a request arriving while the server shuts down gets a 503 envelope; the one in flight completes', async () => {
    const app = await appWith({});
    let inFlight!: () => void;
    const routed = new Promise<void>((resolve) => (inFlight = resolve));
    app.addHook('onRequest', async (req) => {
      if (req.headers['x-first'] === '1') inFlight();
    });
    const appUrl = await app.listen({ host: '127.0.0.1', port: 0 });
    const conn = await openRaw(appUrl);
    const body = JSON.stringify({ email: 'closing@example.com', currency: 'USD', billing_mode: 'prepaid' });
    conn.write(`POST /v1/accounts HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${ADMIN_KEY}\r\nX-First: 1\r\n` +
      `Content-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`);
    await routed;
    const closed = app.close();
    conn.write(`${body.slice(10)}GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n`);
    const [first, second] = await conn.responses(2);
    expect(first!.status).toBe(201);
    expectEnvelope(second ?? null, 503, 'SHUTTING_DOWN');
    conn.close();
    await closed;
  });
});

describe('a dependency that is down is a 503 naming it, never a 500', () => {
  it('Postgres refusing connections: on a key-cache miss and on a route that queries it', async () => {
    const down = `postgres://postgres@127.0.0.1:${await refusedPort()}/meterstream`;
    const pool = createPool(down, 2, { timeouts: { PG_CONNECT_TIMEOUT_MS: 2000 }, log: createLogger('refused-pg', 'silent') });
    extraPools.push(pool);
    const app = await appWith({ pool }, { DATABASE_URL: down, PG_CONNECT_TIMEOUT_MS: '2000' });

    const keyLookup = await app.inject({ method: 'GET', url: '/v1/accounts/acct_1/balance', headers: bearer('msk_never-cached-key') });
    expect(keyLookup.statusCode).toBe(503);
    expect(keyLookup.json()).toEqual(envelope);
    expect(JSON.stringify(keyLookup.json())).toMatch(/postgres/i);

    const transactions = await app.inject({ method: 'GET', url: '/v1/accounts/acct_1/transactions', headers: admin });
    expect(transactions.statusCode).toBe(503);
    expect(transactions.headers['retry-after']).toBe('1');
    expect(transactions.json()).toEqual({ error: { code: 'DEPENDENCY_UNAVAILABLE', message: 'postgres is unavailable; retry later' } });
  });

  it('a ClickHouse server refusing connections, for usage-summary', async () => {
    const ch = await createClickHouse({ url: `http://127.0.0.1:${await refusedPort()}`, chdbPath: '' });
    const app = await appWith({ ch });
    const acct = await createAccount(t.app);
    const res = await app.inject({ method: 'POST', url: '/v1/credits/projections/usage-summary', headers: admin, payload: { account_id: acct.id } });
    await ch.close();
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual(envelope);
    expect(JSON.stringify(res.json())).toMatch(/clickhouse/i);
  });

  it("tells the real clients' outage errors from errors in a query", async () => {
    const reject = (p: Promise<unknown>) => p.then(() => expect.unreachable('should have failed'), (e: unknown) => e);

    // A value Postgres refuses is a bug of the caller here (missing validation), not an outage.
    expect(outageOf(await reject(t.stack.pool.query('SELECT $1::bigint', ['9999999999999999999'])))).toBeUndefined();
    const timedOut = await reject((async () => {
      const c = await t.stack.pool.connect();
      try {
        await c.query('SET statement_timeout = 50');
        await c.query('SELECT pg_sleep(2)');
      } finally {
        await c.query('RESET statement_timeout').catch(() => undefined);
        c.release();
      }
    })());
    expect(outageOf(timedOut)).toBe('postgres');

    const redis = createRedis(`redis://127.0.0.1:${await refusedPort()}`, { log: createLogger('refused-redis', 'silent'), timeouts: { REDIS_COMMAND_TIMEOUT_MS: 500 } });
    expect(outageOf(await reject(redis.get('x')))).toBe('redis');
    redis.disconnect();

    expect(outageOf(new TypeError('x is undefined'))).toBeUndefined();
  });
});

describe('transactions cursor', () => {
  const cursorOf = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');

  it('answers 400 INVALID_CURSOR for a seq beyond int8, a bad event id or garbage, and accepts the longest valid cursor', async () => {
    const acct = await createAccount(t.app);
    const get = (cursor: string) =>
      t.app.inject({ method: 'GET', url: `/v1/accounts/${acct.id}/transactions?cursor=${encodeURIComponent(cursor)}`, headers: bearer(acct.api_key) });
    const bad = [
      cursorOf(['9999999999999999999', 'evt-1']),
      cursorOf([(INT64_MAX + 1n).toString(), 'evt-1']),
      cursorOf(['12', 'evt\u0000']),
      cursorOf(['12', '\ud800']),
      cursorOf(['12', 'x'.repeat(ID_MAX_LENGTH + 1)]),
      cursorOf({ seq: '1' }),
      cursorOf(null),
      'not a cursor at all!',
      '',
    ];
    for (const cursor of bad) {
      const res = await get(cursor);
      expect(res.statusCode, cursor).toBe(400);
      expect(res.json().error.code).toMatch(/^(INVALID_CURSOR|VALIDATION_ERROR)$/);
    }
    expect((await get(cursorOf(['9999999999999999999', 'evt-1']))).json()).toEqual({
      error: { code: 'INVALID_CURSOR', message: 'cursor is not one this API returned' },
    });

    const longest = await get(cursorOf([INT64_MAX.toString(), 'e'.repeat(ID_MAX_LENGTH)]));
    expect(longest.statusCode).toBe(200);
    expect(longest.json()).toEqual({ transactions: [], next_cursor: null });
  });
});
