import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { monthOf } from '@meterstream/schemas/ledger/account-state';
import { admin, bearer, createAccount, openIngest, uid, type TestIngest } from './support.js';

let t: TestIngest;
beforeAll(async () => {
  t = await openIngest('ingest-accounts');
});
afterAll(async () => {
  await t?.close();
});

const inject = (method: 'GET' | 'POST' | 'PUT', url: string, headers: Record<string, string>, payload?: object) =>
  t.app.inject({ method, url, headers, ...(payload ? { payload } : {}) });
const DAY = 86_400_000;

describe('POST /v1/accounts', () => {
  it('creates an account and returns its key once; only the key hash is stored', async () => {
    const res = await inject('POST', '/v1/accounts', admin, { email: 'ada@example.com', currency: 'EUR', billing_mode: 'postpaid' });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({
      id: expect.stringMatching(/^acct_[0-9a-f]{24}$/), email: 'ada@example.com', currency: 'EUR', billing_mode: 'postpaid',
      created_at: expect.any(String), api_key: expect.stringMatching(/^msk_/),
    });
    const { rows } = await t.stack.pool.query('SELECT key_hash FROM api_keys WHERE account_id = $1', [body.id]);
    expect(rows).toEqual([{ key_hash: createHash('sha256').update(body.api_key).digest('hex') }]);
    const balance = await inject('GET', `/v1/accounts/${body.id}/balance`, bearer(body.api_key));
    expect(balance.statusCode).toBe(200);
  });

  it('explains invalid input in a 400 envelope', async () => {
    const res = await inject('POST', '/v1/accounts', admin, { email: 'not-an-email', currency: 'GBP', billing_mode: 'prepaid' });
    expect(res.statusCode).toBe(400);
    const { error } = res.json();
    expect(error.code).toBe('VALIDATION_ERROR');
    expect(error.message).toMatch(/body\.email: .*email/i);
    expect(error.message).toMatch(/body\.currency: .*"USD"/);
  });

  it('needs the admin key: 401 without a key, 403 with an account key', async () => {
    const acct = await createAccount(t.app);
    const payload = { email: 'x@example.com', currency: 'USD', billing_mode: 'prepaid' };
    const none = await inject('POST', '/v1/accounts', {}, payload);
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('UNAUTHORIZED');
    const scoped = await inject('POST', '/v1/accounts', bearer(acct.api_key), payload);
    expect(scoped.statusCode).toBe(403);
    expect(scoped.json()).toEqual({ error: { code: 'FORBIDDEN', message: 'this route needs the admin API key' } });
  });
});

describe('grants and balance', () => {
  it('adds grants and shows the spendable balance, expired grants excluded, in burn order', async () => {
    const acct = await createAccount(t.app);
    const url = `/v1/accounts/${acct.id}/grants`;
    const gift = await inject('POST', url, admin, { kind: 'gift', amount: '10', expires_at: new Date(Date.now() + 7 * DAY).toISOString() });
    expect(gift.statusCode).toBe(201);
    expect(gift.json()).toMatchObject({ account_id: acct.id, kind: 'gift', amount: '10.000000', remaining: '10.000000', priority: 100 });
    await inject('POST', url, admin, { kind: 'purchased', amount: '25.125' });
    const expired = await inject('POST', url, admin, { kind: 'promotional', amount: '5', expires_at: new Date(Date.now() - DAY).toISOString() });
    expect(expired.statusCode).toBe(201);

    const res = await inject('GET', `/v1/accounts/${acct.id}/balance`, bearer(acct.api_key));
    expect(res.statusCode).toBe(200);
    const b = res.json();
    expect(b).toMatchObject({
      account_id: acct.id, currency: 'USD', billing_mode: 'prepaid',
      balance: '35.125000', overdraft: '0.000000', postpaid_accrued_this_month: '0.000000', ledger_seq: 3,
    });
    expect(b.grants.map((g: { kind: string; remaining: string }) => [g.kind, g.remaining])).toEqual([
      ['gift', '10.000000'],
      ['purchased', '25.125000'],
    ]);
  });

  it('rejects a grant with more than 6 decimals and answers 404 for an unknown account', async () => {
    const acct = await createAccount(t.app);
    const bad = await inject('POST', `/v1/accounts/${acct.id}/grants`, admin, { kind: 'purchased', amount: '1.0000001' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/body\.amount: .*6 decimal places/);
    const missing = await inject('POST', '/v1/accounts/acct_missing/grants', admin, { kind: 'purchased', amount: '1' });
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('ACCOUNT_NOT_FOUND');
  });

  it('counts postpaid usage only for the current month', async () => {
    const acct = await createAccount(t.app, { billing_mode: 'postpaid' });
    await t.stack.pool.query(`INSERT INTO postpaid_usage (account_id, month, amount) VALUES ($1, $2, 4200000)`, [acct.id, `${monthOf(Date.now())}-01`]);
    const now = await inject('GET', `/v1/accounts/${acct.id}/balance`, bearer(acct.api_key));
    expect(now.json()).toMatchObject({ postpaid_accrued_this_month: '4.200000', source: 'postgres' });

    // A state cached last month still carries last month's sum: it must not show as this month's.
    const cached = (await t.stack.cache.read(acct.id))!;
    await t.stack.cache.forget(acct.id);
    await t.stack.cache.write([{ ...cached, postpaidMonth: '2000-01', postpaidAmount: 9_000_000n }]);
    const stale = await inject('GET', `/v1/accounts/${acct.id}/balance`, admin);
    expect(stale.json()).toMatchObject({ postpaid_accrued_this_month: '0.000000', source: 'redis' });
  });

  it("forbids another account's key, allows the admin key, 404s an unknown account", async () => {
    const [a, b] = [await createAccount(t.app), await createAccount(t.app)];
    const other = await inject('GET', `/v1/accounts/${a.id}/balance`, bearer(b.api_key));
    expect(other.statusCode).toBe(403);
    expect(other.json()).toEqual({ error: { code: 'FORBIDDEN', message: `this API key cannot access account ${a.id}` } });
    expect((await inject('GET', `/v1/accounts/${a.id}/balance`, admin)).statusCode).toBe(200);
    const missing = await inject('GET', '/v1/accounts/acct_nobody/balance', admin);
    expect(missing.statusCode).toBe(404);
    expect(missing.json().error.code).toBe('ACCOUNT_NOT_FOUND');
  });
});

describe('GET /v1/accounts/{id}/transactions', () => {
  it('lists deductions newest first with the remaining balance, paginated by an opaque cursor', async () => {
    const acct = await createAccount(t.app);
    const base = Date.parse('2025-03-01T10:00:00Z');
    const rows = [1, 2, 3, 4, 5].map((seq) => ({
      seq, event_id: uid(), product: seq % 2 ? 'image-gen' : 'tts-audio', quantity: BigInt(seq) * 1_500_000n,
      amount: BigInt(seq) * 10_000n, balance_after: 1_000_000n - BigInt(seq) * 300_000n, event_time: new Date(base + seq * 60_000),
    }));
    for (const r of rows) {
      await t.stack.pool.query(
        `INSERT INTO usage_ledger (account_id, event_id, seq, product, quantity, unit, unit_price, per, amount, from_grants,
                                   postpaid, overdraft, grant_split, balance_after, event_time, rated_at, src_topic, src_partition, src_offset)
         VALUES ($1, $2, $3, $4, $5, 'image', 10000, 1, $6, $6, 0, 0, '[]', $7, $8, $8::timestamptz + interval '2 seconds', 'usage.events', 0, $3)`,
        [acct.id, r.event_id, r.seq, r.product, r.quantity, r.amount, r.balance_after, r.event_time],
      );
    }
    const url = `/v1/accounts/${acct.id}/transactions`;
    const first = await inject('GET', `${url}?limit=2`, bearer(acct.api_key));
    expect(first.statusCode).toBe(200);
    const p1 = first.json();
    expect(p1.transactions[0]).toEqual({
      timestamp: '2025-03-01T10:05:00.000Z', action: 'image-gen', quantity: '7.500000', unit: 'image', amount: '0.050000',
      balance_after: '-0.500000', event_id: rows[4]!.event_id, rated_at: '2025-03-01T10:05:02.000Z',
    });
    expect(p1.transactions.map((x: { event_id: string }) => x.event_id)).toEqual([rows[4]!.event_id, rows[3]!.event_id]);

    const p2 = (await inject('GET', `${url}?limit=2&cursor=${p1.next_cursor}`, bearer(acct.api_key))).json();
    expect(p2.transactions.map((x: { event_id: string }) => x.event_id)).toEqual([rows[2]!.event_id, rows[1]!.event_id]);
    const p3 = (await inject('GET', `${url}?limit=2&cursor=${p2.next_cursor}`, admin)).json();
    expect(p3).toEqual({ transactions: [expect.objectContaining({ event_id: rows[0]!.event_id })], next_cursor: null });
  });

  it('answers 400 for a cursor it did not issue or a bad limit, 404 for an unknown account', async () => {
    const acct = await createAccount(t.app);
    const url = `/v1/accounts/${acct.id}/transactions`;
    const cursor = await inject('GET', `${url}?cursor=garbage`, admin);
    expect(cursor.statusCode).toBe(400);
    expect(cursor.json().error.code).toBe('INVALID_CURSOR');
    const limit = await inject('GET', `${url}?limit=0`, admin);
    expect(limit.statusCode).toBe(400);
    expect(limit.json().error.message).toMatch(/^querystring\.limit: /);
    expect((await inject('GET', '/v1/accounts/acct_nobody/transactions', admin)).statusCode).toBe(404);
    expect((await inject('GET', url, admin)).json()).toEqual({ transactions: [], next_cursor: null });
  });
});

describe('prices', () => {
  it('upserts prices as exact decimals and searches the list by product substring', async () => {
    const tag = uid('p').replace(/-/g, '');
    const put = await inject('PUT', `/v1/prices/${tag}-tts_audio`, admin, { unit: 'second', unit_price: '0.60', per: 60 });
    expect(put.statusCode).toBe(200);
    expect(put.json()).toMatchObject({ product: `${tag}-tts_audio`, unit: 'second', unit_price: '0.600000', per: 60, currency: 'USD' });
    const again = await inject('PUT', `/v1/prices/${tag}-tts_audio`, admin, { unit: 'second', unit_price: '0.012500', per: 60 });
    expect(again.json().unit_price).toBe('0.012500');
    await inject('PUT', `/v1/prices/${tag}-ttsXaudio`, admin, { unit: 'minute', unit_price: '1', currency: 'EUR' });
    await inject('PUT', `/v1/prices/${tag}-image`, admin, { unit: 'image', unit_price: '0.04' });

    const acct = await createAccount(t.app);
    const search = await inject('GET', `/v1/prices?q=${tag.toUpperCase()}-TTS_`, bearer(acct.api_key));
    expect(search.statusCode).toBe(200);
    expect(search.json().prices.map((p: { product: string; unit_price: string }) => [p.product, p.unit_price])).toEqual([
      [`${tag}-tts_audio`, '0.012500'],
    ]);
    const eur = await inject('GET', `/v1/prices?q=${tag}&currency=EUR`, admin);
    expect(eur.json().prices.map((p: { product: string }) => p.product)).toEqual([`${tag}-ttsXaudio`]);
    const all = await inject('GET', `/v1/prices?q=${tag}`, admin);
    expect(all.json().prices).toHaveLength(3);
  });

  it('lets only the admin set prices and any key read them', async () => {
    const acct = await createAccount(t.app);
    const put = await inject('PUT', '/v1/prices/anything', bearer(acct.api_key), { unit: 'request', unit_price: '1' });
    expect(put.statusCode).toBe(403);
    expect((await inject('GET', '/v1/prices', {})).statusCode).toBe(401);
    const bad = await inject('PUT', '/v1/prices/x', admin, { unit: 'parsec', unit_price: '-1' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/body\.unit: .*body\.unit_price: /);
  });
});

describe('service routes', () => {
  it('serves an OpenAPI document generated from the schemas, errors included', async () => {
    const res = await inject('GET', '/openapi.json', {});
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    const events = doc.paths['/v1/events'].post;
    expect(events.requestBody.content['application/json'].schema.anyOf).toHaveLength(2);
    expect(events.responses['202'].content['application/json'].schema.properties).toHaveProperty('rejected');
    expect(events.responses['413'].content['application/json'].schema.properties.error.required).toEqual(['code', 'message']);
    for (const path of ['/v1/accounts', '/v1/accounts/{id}/balance', '/v1/accounts/{id}/transactions', '/v1/prices', '/v1/prices/{product}', '/v1/credits/projections/usage-summary']) {
      expect(doc.paths).toHaveProperty([path]);
    }
    expect(doc.paths).not.toHaveProperty(['/openapi.json']);
  });

  it('answers unknown routes with a 404 envelope', async () => {
    const res = await inject('GET', '/v1/nope?x=1', admin);
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: { code: 'NOT_FOUND', message: 'no route GET /v1/nope' } });
  });
});
