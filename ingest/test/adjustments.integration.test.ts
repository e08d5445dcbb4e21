import { describe, expect } from 'vitest';
import { admin, bearer, createAccount, ingestTest, injector, uid } from './support.js';

// Manual adjustments (issue 9): an operator corrects a balance with a reason, shown in the history.
const test = ingestTest();

describe('POST /v1/accounts/{id}/adjustments', () => {
  test('adds with its reason once per key, takes the soonest-expiring credits, and refuses what it must', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const url = `/v1/accounts/${acct.id}/adjustments`;
    const soon = new Date(Date.now() + 3 * 86_400_000).toISOString();
    const later = new Date(Date.now() + 30 * 86_400_000).toISOString();
    for (const [amount, expires_at] of [['10', later], ['3', soon]] as const) {
      const g = await inject('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('grant') }, { kind: 'purchased', amount, expires_at });
      expect(g.statusCode).toBe(201);
    }
    const balance = async () => (await inject('GET', `/v1/accounts/${acct.id}/balance`, admin)).json();
    expect((await balance()).balance).toBe('13.000000');

    const key = uid('adj');
    const body = { amount: '5', reason: 'compensation for the outage of 3 Dec' };
    const added = await inject('POST', url, { ...admin, 'idempotency-key': key }, body);
    expect(added.statusCode).toBe(201);
    expect(added.json()).toMatchObject({ kind: 'adjustment', amount: '5.000000', reason: body.reason, balance_after: '18.000000' });
    expect((await balance()).balance).toBe('18.000000');

    const retry = await inject('POST', url, { ...admin, 'idempotency-key': key }, body);
    expect({ status: retry.statusCode, replayed: retry.headers['idempotent-replayed'], entry: retry.json().entry_id })
      .toEqual({ status: 201, replayed: 'true', entry: added.json().entry_id });
    expect((await balance()).balance).toBe('18.000000');
    const reused = await inject('POST', url, { ...admin, 'idempotency-key': key }, { ...body, amount: '6' });
    expect({ status: reused.statusCode, code: reused.json().error.code }).toEqual({ status: 409, code: 'IDEMPOTENCY_KEY_REUSED' });

    const taken = await inject('POST', url, { ...admin, 'idempotency-key': uid('adj') }, { amount: '-2', reason: 'double-granted credit' });
    expect(taken.statusCode).toBe(201);
    const after = await balance();
    expect(after.balance).toBe('16.000000');
    // The credits expiring soonest paid: the 3 expiring in 3 days, not the 10 nor the adjustment's (no expiry).
    expect(after.grants.map((g: { expires_at: string | null; remaining: string }) => [g.expires_at, g.remaining])).toEqual([
      [soon, '1.000000'], [later, '10.000000'], [null, '5.000000'],
    ]);

    const history = (await inject('GET', `/v1/accounts/${acct.id}/transactions?kind=adjustment`, admin)).json();
    expect(history.transactions.map((r: { kind: string; amount: string; reason: string; balance_after: string }) =>
      [r.kind, r.amount, r.reason, r.balance_after])).toEqual([
      ['adjustment', '2.000000', 'double-granted credit', '16.000000'],
      ['adjustment', '5.000000', body.reason, '18.000000'],
    ]);

    const noReason = await inject('POST', url, { ...admin, 'idempotency-key': uid('adj') }, { amount: '1' });
    expect({ status: noReason.statusCode, message: noReason.json().error.message }).toMatchObject({ status: 400, message: expect.stringMatching(/body\.reason/) });
    const zero = await inject('POST', url, { ...admin, 'idempotency-key': uid('adj') }, { amount: '0', reason: 'nothing' });
    expect(zero.statusCode).toBe(400);
    const noKey = await inject('POST', url, admin, body);
    expect({ status: noKey.statusCode, code: noKey.json().error.code }).toEqual({ status: 400, code: 'IDEMPOTENCY_KEY_REQUIRED' });
    const byAccount = await inject('POST', url, { ...bearer(acct.api_key), 'idempotency-key': uid('adj') }, body);
    expect({ status: byAccount.statusCode, code: byAccount.json().error.code }).toEqual({ status: 403, code: 'FORBIDDEN' });
    expect((await balance()).balance).toBe('16.000000');
  });
});
