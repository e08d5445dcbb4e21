import { describe, expect } from 'vitest';
import { produceEvents, readTopicMessages, setPrices, usageEvent, waitRaterIdle } from '../../tests/support/fixtures.js';
import { startInProcessRater } from '../../rater/test/in-process-rater.js';
import { admin, bearer, ingestTest, injector, uid } from './support.js';

// Seed 000: $10 for 7 days, once per email address, enforced by tombstones that outlive the account.
const test = ingestTest();
const DAY = 86_400_000;

interface Created { id: string; api_key: string; email: string; created_at: string; signup_gift: { id: string } | null }

const signUp = async (inject: ReturnType<typeof injector>, email: string): Promise<Created> => {
  const res = await inject('POST', '/v1/accounts', admin, { email, currency: 'USD', billing_mode: 'prepaid' });
  expect(res.statusCode).toBe(201);
  return res.json();
};

describe('signup gift', () => {
  test('a new account gets its plan\'s gift, in its balance with its expiry and in its transactions', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await signUp(inject, `${uid('gift')}@example.com`);
    const expiresAt = new Date(Date.parse(acct.created_at) + 7 * DAY).toISOString();
    expect(acct.signup_gift).toEqual({
      id: expect.any(String), account_id: acct.id, kind: 'gift', amount: '10.000000', remaining: '10.000000',
      expires_at: expiresAt, priority: 100, created_at: acct.created_at,
    });
    const giftId = acct.signup_gift!.id;

    const balance = await inject('GET', `/v1/accounts/${acct.id}/balance`, bearer(acct.api_key));
    expect(balance.json()).toMatchObject({
      balance: '10.000000', grants: [{ id: giftId, kind: 'gift', remaining: '10.000000', expires_at: expiresAt, priority: 100 }],
    });
    const history = await inject('GET', `/v1/accounts/${acct.id}/transactions`, bearer(acct.api_key));
    expect(history.json()).toMatchObject({
      transactions: [{ kind: 'grant', seq: 1, amount: '10.000000', balance_after: '10.000000', grant_id: giftId, overdraft_paid: '0.000000' }],
      next_cursor: null,
    });
  });

  test('a closed account\'s email gets no second gift, whatever its case and surrounding spaces', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const local = uid('Grace.Hopper');
    const first = await signUp(inject, `${local}@Example.com`);
    expect(first.signup_gift).not.toBeNull();

    const closed = await inject('DELETE', `/v1/accounts/${first.id}`, admin);
    expect(closed.statusCode).toBe(200);
    expect(closed.json()).toMatchObject({ id: first.id, closed_at: expect.any(String) });

    const again = await signUp(inject, `  ${local.toUpperCase()}@EXAMPLE.COM\t`);
    expect(again).toMatchObject({ email: `${local.toUpperCase()}@EXAMPLE.COM`, signup_gift: null });
    const balance = await inject('GET', `/v1/accounts/${again.id}/balance`, bearer(again.api_key));
    expect(balance.json()).toMatchObject({ balance: '0.000000', grants: [] });
    const third = await signUp(inject, `${local.toLowerCase()}@example.com`);
    expect(third.signup_gift).toBeNull();

    // The tombstone holds a keyed hash, never the address.
    const { rows } = await t.stack.pool.query<{ account_id: string; n: number }>(
      `SELECT account_id, octet_length(email_hmac) AS n FROM email_tombstones WHERE account_id = ANY($1::text[])`, [[first.id, again.id, third.id]]);
    expect(rows).toEqual([{ account_id: first.id, n: 32 }]);
  });

  test('concurrent sign-ups with one email get one gift between them', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const local = uid('race');
    const spellings = [`${local}@example.com`, ` ${local}@example.com`, `${local.toUpperCase()}@example.com`, `${local}@EXAMPLE.com `, `${local}@example.com`];
    const accounts = await Promise.all(spellings.map((email) => signUp(inject, email)));
    expect(accounts.filter((a) => a.signup_gift !== null)).toHaveLength(1);
    const { rows } = await t.stack.pool.query<{ n: string; total: string }>(
      `SELECT count(*)::text AS n, sum(amount)::text AS total FROM grants WHERE kind = 'gift' AND account_id = ANY($1::text[])`, [accounts.map((a) => a.id)]);
    expect(rows).toEqual([{ n: '1', total: '10000000' }]);
  });

  test('a closed account\'s key is refused and its events dead-lettered; its billing data stays readable by the admin', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await signUp(inject, `${uid('leaving')}@example.com`);
    const second = (await inject('POST', `/v1/accounts/${acct.id}/keys`, admin)).json() as { api_key: string };
    expect((await inject('GET', `/v1/accounts/${acct.id}/balance`, bearer(acct.api_key))).statusCode).toBe(200);

    const closed = await inject('DELETE', `/v1/accounts/${acct.id}`, admin);
    expect(closed.statusCode).toBe(200);
    for (const key of [acct.api_key, second.api_key]) {
      const refused = await inject('GET', `/v1/accounts/${acct.id}/balance`, bearer(key));
      expect([refused.statusCode, refused.json().error.code]).toEqual([401, 'UNAUTHORIZED']);
    }
    // Closing again answers the first closing.
    expect((await inject('DELETE', `/v1/accounts/${acct.id}`, admin)).json()).toEqual(closed.json());

    const balance = await inject('GET', `/v1/accounts/${acct.id}/balance`, admin);
    expect([balance.statusCode, balance.json().balance]).toEqual([200, '10.000000']);
    const history = await inject('GET', `/v1/accounts/${acct.id}/transactions`, admin);
    expect(history.json()).toMatchObject({ transactions: [{ kind: 'grant', amount: '10.000000', grant_id: acct.signup_gift!.id }] });

    // The rater treats a closed account as an unknown one; an open one is charged as ever.
    const open = await signUp(inject, `${uid('staying')}@example.com`);
    await setPrices(t.stack);
    const rater = await startInProcessRater(t.stack);
    try {
      await produceEvents(t.stack, [usageEvent(acct.id, 'chat', '100', uid('closed')), usageEvent(open.id, 'chat', '100', uid('open'))]);
      await waitRaterIdle(t.stack);
    } finally {
      await rater.stop();
    }
    const dead = await readTopicMessages(t.stack, t.stack.topics.dlq);
    expect(dead.map((m) => [m.key, m.headers['error-code']])).toEqual([[acct.id, 'UNKNOWN_ACCOUNT']]);
    const { rows } = await t.stack.pool.query<{ account_id: string }>(
      'SELECT account_id FROM usage_ledger WHERE account_id = ANY($1::text[])', [[acct.id, open.id]]);
    expect(rows).toEqual([{ account_id: open.id }]);
  });
});
