import { describe, expect } from 'vitest';
import { admin, bearer, createAccount, ingestTest, uid, type TestIngest } from './support.js';

// The usage summary on its happy path; its errors are in accounts.errors, who may ask in security.
const test = ingestTest();

const DAY = 86_400_000;
const today = Math.floor(Date.now() / DAY) * DAY;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** Rated events as a sink writes them, in one insert; usage_daily is computed from them. */
async function rated(t: TestIngest, accountId: string, rows: { product: string; daysAgo: number; quantity: number; amount: number; event_id?: string }[]) {
  await t.ch.ch.insert({
    table: `${t.ch.database}.rated_events`,
    format: 'JSONEachRow',
    values: rows.map((r, i) => {
      const at = new Date(today - r.daysAgo * DAY + 3_600_000).toISOString().replace('T', ' ').replace('Z', '');
      return {
        account_id: accountId, event_id: r.event_id ?? uid(), product: r.product, currency: 'USD', unit: 'token', quantity: r.quantity,
        unit_price: 1000, per: 1000, amount: r.amount, from_grants: r.amount, postpaid: 0, overdraft: 0, balance_after: 0,
        ledger_seq: i + 1, grants: '[]', properties: {}, event_time: at, rated_at: at,
      };
    }),
  });
}

describe('POST /v1/credits/projections/usage-summary', () => {
  test('sums 30 days per product and gives a 7-day series with the empty days', async ({ ingest: t }) => {
    const acct = await createAccount(t.app);
    const other = await createAccount(t.app);
    await rated(t, acct.id, [
      { product: 'gpt-tokens', daysAgo: 0, quantity: 1_500_000_000, amount: 1_500_000 },
      { product: 'gpt-tokens', daysAgo: 0, quantity: 250_000_000, amount: 250_000 },
      { product: 'image-gen', daysAgo: 3, quantity: 1_000_000, amount: 40_000 },
      { product: 'image-gen', daysAgo: 3, quantity: 1_000_000, amount: 40_000 },
      { product: 'gpt-tokens', daysAgo: 10, quantity: 2_000_000_000, amount: 2_000_000 },
      { product: 'gpt-tokens', daysAgo: 29, quantity: 1_000_000, amount: 1 },
      { product: 'gpt-tokens', daysAgo: 30, quantity: 100_000_000_000, amount: 100_000_000 },
    ]);
    await rated(t, other.id, [{ product: 'gpt-tokens', daysAgo: 0, quantity: 5_000_000, amount: 5_000_000 }]);

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

  test('counts an event once when two sinks wrote it, each in its own batch', async ({ ingest: t }) => {
    const acct = await createAccount(t.app);
    const shared = { product: 'gpt-tokens', daysAgo: 1, quantity: 2_000_000, amount: 700_000, event_id: uid() };
    await rated(t, acct.id, [{ product: 'gpt-tokens', daysAgo: 0, quantity: 1_000_000, amount: 300_000, event_id: uid() }, shared]);
    await rated(t, acct.id, [shared, { product: 'image-gen', daysAgo: 1, quantity: 1_000_000, amount: 40_000, event_id: uid() }]);

    const res = await t.app.inject({
      method: 'POST', url: '/v1/credits/projections/usage-summary', headers: bearer(acct.api_key), payload: { account_id: acct.id },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({
      totals: { events: 3, amount: '1.040000' },
      products: [
        { product: 'gpt-tokens', events: 2, quantity: '3.000000', amount: '1.000000' },
        { product: 'image-gen', events: 1, quantity: '1.000000', amount: '0.040000' },
      ],
    });
    expect(res.json().daily.slice(-2)).toEqual([
      { date: isoDay(today - DAY), events: 2, amount: '0.740000' },
      { date: isoDay(today), events: 1, amount: '0.300000' },
    ]);
  });

  test('returns zeros for an account without usage', async ({ ingest: t }) => {
    const acct = await createAccount(t.app, { currency: 'EUR' });
    const res = await t.app.inject({ method: 'POST', url: '/v1/credits/projections/usage-summary', headers: admin, payload: { account_id: acct.id } });
    expect(res.json()).toMatchObject({ currency: 'EUR', totals: { events: 0, amount: '0.000000' }, products: [] });
    expect(res.json().daily.map((d: { events: number; amount: string }) => [d.events, d.amount])).toEqual(Array(7).fill([0, '0.000000']));
  });
});
