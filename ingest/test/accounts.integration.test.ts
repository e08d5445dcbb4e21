import { createHash } from 'node:crypto';
import { describe, expect } from 'vitest';
import { monthOf } from '@meterstream/ledger/account-state';
import { admin, bearer, createAccount, ingestTest, injector, uid } from './support.js';

// The account routes on their happy path; their errors are in accounts.errors, who may call them
// in security and authorization-matrix.
const test = ingestTest();
const DAY = 86_400_000;
const grantHeaders = () => ({ ...admin, 'idempotency-key': uid('grant') });

describe('POST /v1/accounts', () => {
  test('creates an account and returns its key once; only the key hash is stored', async ({ ingest: t }) => {
    const inject = injector(t.app);
    // An address of its own: the signup gift is once per address in the whole database.
    const email = `${uid('ada')}@example.com`;
    const res = await inject('POST', '/v1/accounts', admin, { email, currency: 'EUR', billing_mode: 'postpaid' });
    expect(res.statusCode).toBe(201);
    const body = res.json();
    expect(body).toEqual({
      id: expect.stringMatching(/^acct_[0-9a-f]{24}$/), email, currency: 'EUR', billing_mode: 'postpaid',
      plan_id: 'default-eur-postpaid', billing_anchor_day: 1, created_at: expect.any(String), closed_at: null, api_key: expect.stringMatching(/^msk_/),
      signup_gift: expect.objectContaining({ kind: 'gift', amount: '10.000000' }),
    });
    const { rows } = await t.stack.pool.query('SELECT key_hash FROM api_keys WHERE account_id = $1', [body.id]);
    expect(rows).toEqual([{ key_hash: createHash('sha256').update(body.api_key).digest('hex') }]);
    const balance = await inject('GET', `/v1/accounts/${body.id}/balance`, bearer(body.api_key));
    expect(balance.statusCode).toBe(200);
  });
});

describe('grants and balance', () => {
  test('adds grants and shows the spendable balance, expired grants excluded, in burn order', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const url = `/v1/accounts/${acct.id}/grants`;
    const gift = await inject('POST', url, grantHeaders(), { kind: 'gift', amount: '10', expires_at: new Date(Date.now() + 7 * DAY).toISOString() });
    expect(gift.statusCode).toBe(201);
    expect(gift.json()).toMatchObject({ account_id: acct.id, kind: 'gift', amount: '10.000000', remaining: '10.000000', priority: 100 });
    await inject('POST', url, grantHeaders(), { kind: 'purchased', amount: '25.125' });
    const expired = await inject('POST', url, grantHeaders(), { kind: 'promotional', amount: '5', expires_at: new Date(Date.now() - DAY).toISOString() });
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

  test('counts postpaid usage only for the current month', async ({ ingest: t }) => {
    const inject = injector(t.app);
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
});

describe('GET /v1/accounts/{id}/transactions', () => {
  test('lists deductions newest first with the remaining balance, paginated by an opaque cursor', async ({ ingest: t }) => {
    const inject = injector(t.app);
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
      kind: 'usage', seq: 5, timestamp: '2025-03-01T10:05:00.000Z', action: 'image-gen', quantity: '7.500000', unit: 'image', amount: '0.050000',
      direction: 'debit', balance_after: '-0.500000', event_id: rows[4]!.event_id, rated_at: '2025-03-01T10:05:02.000Z',
    });
    expect(p1.transactions.map((x: { event_id: string }) => x.event_id)).toEqual([rows[4]!.event_id, rows[3]!.event_id]);

    const p2 = (await inject('GET', `${url}?limit=2&cursor=${p1.next_cursor}`, bearer(acct.api_key))).json();
    expect(p2.transactions.map((x: { event_id: string }) => x.event_id)).toEqual([rows[2]!.event_id, rows[1]!.event_id]);
    const p3 = (await inject('GET', `${url}?limit=2&cursor=${p2.next_cursor}`, admin)).json();
    expect(p3).toEqual({ transactions: [expect.objectContaining({ event_id: rows[0]!.event_id })], next_cursor: null });
  });

  test('lists nothing for an account without usage', async ({ ingest: t }) => {
    const acct = await createAccount(t.app);
    const res = await injector(t.app)('GET', `/v1/accounts/${acct.id}/transactions`, admin);
    expect(res.json()).toEqual({ transactions: [], next_cursor: null });
  });
});
