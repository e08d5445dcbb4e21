import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, bearer, createAccount, openIngest, uid, type TestIngest } from './support.js';

let t: TestIngest;
beforeAll(async () => {
  t = await openIngest('ingest-summary');
});
afterAll(async () => {
  await t?.close();
});

const DAY = 86_400_000;
const today = Math.floor(Date.now() / DAY) * DAY;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** Rated events as the sink writes them; the materialized views fill usage_daily from them. */
async function rated(accountId: string, rows: { product: string; daysAgo: number; quantity: number; amount: number }[]) {
  await t.ch.ch.insert({
    table: `${t.ch.database}.rated_events`,
    format: 'JSONEachRow',
    values: rows.map((r, i) => {
      const at = new Date(today - r.daysAgo * DAY + 3_600_000 + i * 1000).toISOString().replace('T', ' ').replace('Z', '');
      return {
        account_id: accountId, event_id: uid(), product: r.product, currency: 'USD', unit: 'token', quantity: r.quantity,
        unit_price: 1000, per: 1000, amount: r.amount, from_grants: r.amount, postpaid: 0, overdraft: 0, balance_after: 0,
        ledger_seq: i + 1, grants: '[]', properties: {}, event_time: at, rated_at: at,
      };
    }),
  });
}

describe('POST /v1/credits/projections/usage-summary', () => {
  it('sums 30 days per product and gives a 7-day series with the empty days', async () => {
    const acct = await createAccount(t.app);
    const other = await createAccount(t.app);
    await rated(acct.id, [
      { product: 'gpt-tokens', daysAgo: 0, quantity: 1_500_000_000, amount: 1_500_000 },
      { product: 'gpt-tokens', daysAgo: 0, quantity: 250_000_000, amount: 250_000 },
      { product: 'image-gen', daysAgo: 3, quantity: 1_000_000, amount: 40_000 },
      { product: 'image-gen', daysAgo: 3, quantity: 1_000_000, amount: 40_000 },
      { product: 'gpt-tokens', daysAgo: 10, quantity: 2_000_000_000, amount: 2_000_000 },
      { product: 'gpt-tokens', daysAgo: 29, quantity: 1_000_000, amount: 1 },
      { product: 'gpt-tokens', daysAgo: 30, quantity: 100_000_000_000, amount: 100_000_000 },
    ]);
    await rated(other.id, [{ product: 'gpt-tokens', daysAgo: 0, quantity: 5_000_000, amount: 5_000_000 }]);

    const res = await t.app.inject({
      method: 'POST', url: '/v1/credits/projections/usage-summary', headers: bearer(acct.api_key), payload: { account_id: acct.id },
    });
    expect(res.statusCode).toBe(200);
    const s = res.json();
    expect(s).toMatchObject({
      account_id: acct.id,
      currency: 'USD',
      period: { from: isoDay(today - 29 * DAY), to: isoDay(today) },
      totals: { events: 6, amount: '3.830001' },
      products: [
        { product: 'gpt-tokens', events: 4, quantity: '3751.000000', amount: '3.750001' },
        { product: 'image-gen', events: 2, quantity: '2.000000', amount: '0.080000' },
      ],
    });
    expect(s.daily).toEqual([6, 5, 4, 3, 2, 1, 0].map((ago) => ({
      date: isoDay(today - ago * DAY),
      events: ago === 0 || ago === 3 ? 2 : 0,
      amount: ago === 0 ? '1.750000' : ago === 3 ? '0.080000' : '0.000000',
    })));
  });

  it('returns zeros for an account without usage', async () => {
    const acct = await createAccount(t.app, { currency: 'EUR' });
    const res = await t.app.inject({ method: 'POST', url: '/v1/credits/projections/usage-summary', headers: admin, payload: { account_id: acct.id } });
    expect(res.json()).toMatchObject({ currency: 'EUR', totals: { events: 0, amount: '0.000000' }, products: [] });
    expect(res.json().daily).toHaveLength(7);
  });

  it("answers 403 for another account's key, 404 for an unknown account, 400 without account_id", async () => {
    const [a, b] = [await createAccount(t.app), await createAccount(t.app)];
    const url = '/v1/credits/projections/usage-summary';
    const forbidden = await t.app.inject({ method: 'POST', url, headers: bearer(b.api_key), payload: { account_id: a.id } });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json().error.code).toBe('FORBIDDEN');
    const missing = await t.app.inject({ method: 'POST', url, headers: admin, payload: { account_id: 'acct_nobody' } });
    expect(missing.statusCode).toBe(404);
    const invalid = await t.app.inject({ method: 'POST', url, headers: admin, payload: {} });
    expect(invalid.statusCode).toBe(400);
    expect(invalid.json().error.message).toMatch(/^body\.account_id: /);
  });
});
