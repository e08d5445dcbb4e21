import { describe, expect } from 'vitest';
import { ID_MAX_LENGTH, PER_MAX } from '@meterstream/schemas';
import { admin, bearer, createAccount, ingestTest, uid, type TestIngest } from './support.js';

// What PUT and GET /v1/prices answer at and past their limits, and to input they cannot read.
const test = ingestTest();

const put = (t: TestIngest, product: string, payload: object) =>
  t.app.inject({ method: 'PUT', url: `/v1/prices/${product}`, headers: admin, payload });

/** A product id of exactly n characters, unique to this run. */
const productOf = (n: number) => {
  const tag = uid('p');
  return tag + 'x'.repeat(n - tag.length);
};

describe('product ids: one limit in the contract, the router and the database', () => {
  test(`prices a product of ${ID_MAX_LENGTH} characters and accepts its events`, async ({ ingest: t }) => {
    const product = productOf(ID_MAX_LENGTH);
    const res = await put(t, product, { unit: 'token', unit_price: '0.002', per: 1000 });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ product, unit_price: '0.002000', per: 1000 });
    const listed = await t.app.inject({ method: 'GET', url: `/v1/prices?q=${product.slice(0, 20)}`, headers: admin });
    expect(listed.json().prices.map((p: { product: string }) => p.product)).toEqual([product]);

    const acct = await createAccount(t.app);
    const e = { id: uid(), account_id: acct.id, product, quantity: '10', timestamp: new Date().toISOString() };
    const sent = await t.app.inject({ method: 'POST', url: '/v1/events', headers: bearer(acct.api_key), payload: e });
    expect(sent.json()).toEqual({ accepted: [e.id], rejected: [] });
  });

  test(`answers a product of ${ID_MAX_LENGTH + 1} characters with the envelope, never storing it`, async ({ ingest: t }) => {
    const product = productOf(ID_MAX_LENGTH + 1);
    const res = await put(t, product, { unit: 'token', unit_price: '0.002' });
    // The router's maxParamLength is ID_MAX_LENGTH: it refuses the path before any handler runs.
    expect(res.statusCode).toBe(414);
    expect(res.json()).toEqual({ error: { code: 'URI_TOO_LONG', message: expect.stringContaining(`${ID_MAX_LENGTH} characters`) } });
    const { rows } = await t.stack.pool.query('SELECT count(*)::int AS n FROM prices WHERE product = $1', [product]);
    expect(rows).toEqual([{ n: 0 }]);
  });

  test('has the database refuse longer ids too', async ({ ingest: t }) => {
    const long = 'x'.repeat(ID_MAX_LENGTH + 1);
    await expect(t.stack.pool.query(`INSERT INTO prices (product, currency, unit, unit_price, per) VALUES ($1, 'USD', 'token', 1, 1)`, [long]))
      .rejects.toMatchObject({ code: '23514', constraint: 'prices_product_length' });
    await expect(t.stack.pool.query(`INSERT INTO accounts (id, email, currency, billing_mode) VALUES ($1, 'x@example.com', 'USD', 'prepaid')`, [long]))
      .rejects.toMatchObject({ code: '23514', constraint: 'accounts_id_length' });
    const ledger = (column: string) => ({ account_id: 'a', event_id: 'e', product: 'p', [column]: long });
    for (const column of ['account_id', 'event_id', 'product']) {
      const r = ledger(column);
      await expect(t.stack.pool.query(
        `INSERT INTO usage_ledger (account_id, event_id, seq, product, quantity, unit, unit_price, per, amount, from_grants, postpaid,
                                   overdraft, grant_split, balance_after, event_time, rated_at, src_topic, src_partition, src_offset)
         VALUES ($1, $2, 1, $3, 1, 'token', 1, 1, 0, 0, 0, 0, '[]', 0, now(), now(), 't', 0, 0)`,
        [r.account_id, r.event_id, r.product],
      ), column).rejects.toMatchObject({ code: '23514', constraint: `usage_ledger_${column}_length` });
    }
  });
});

describe('unit_price and per stay inside int8', () => {
  test('accepts the largest unit price and answers 400 above it, 15 digits included', async ({ ingest: t }) => {
    const product = uid('p');
    const max = await put(t, product, { unit: 'request', unit_price: '999999999.999999' });
    expect(max.statusCode).toBe(200);
    expect(max.json().unit_price).toBe('999999999.999999');
    for (const unit_price of ['1000000000', '999999999999999', '999999999999999.999999']) {
      const res = await put(t, product, { unit: 'request', unit_price });
      expect(res.statusCode, unit_price).toBe(400);
      expect(res.json()).toEqual({ error: { code: 'VALIDATION_ERROR', message: 'body.unit_price: must be at most 999999999.999999' } });
    }
    const stored = await t.stack.pool.query('SELECT unit_price::text FROM prices WHERE product = $1', [product]);
    expect(stored.rows).toEqual([{ unit_price: '999999999999999' }]);
  });

  test(`takes per from 1 to ${PER_MAX} as a whole number`, async ({ ingest: t }) => {
    const product = uid('p');
    expect((await put(t, product, { unit: 'token', unit_price: '1', per: PER_MAX })).json().per).toBe(PER_MAX);
    for (const per of [0, -1, 1.5, PER_MAX + 1, 1e300, '60']) {
      const res = await put(t, product, { unit: 'token', unit_price: '1', per });
      expect(res.statusCode, String(per)).toBe(400);
      expect(res.json()).toEqual({ error: { code: 'VALIDATION_ERROR', message: expect.stringMatching(/^body\.per: /) } });
    }
  });

  test('answers 400 for a search Postgres could not read (NUL)', async ({ ingest: t }) => {
    const res = await t.app.inject({ method: 'GET', url: '/v1/prices?q=a%00b', headers: admin });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: { code: 'VALIDATION_ERROR', message: 'querystring.q: contains the NUL character (\\u0000)' } });
  });
});

describe('bad input', () => {
  test('answers 400 naming every field it could not read', async ({ ingest: t }) => {
    const bad = await put(t, 'x', { unit: 'parsec', unit_price: '-1' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/body\.unit: .*body\.unit_price: /);
  });
});
