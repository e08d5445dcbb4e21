import { describe, expect } from 'vitest';
import { setPrices } from '../../tests/support/fixtures.js';
import { admin, bearer, createAccount, ingestTest, injector, uid, type TestIngest } from './support.js';

// Limit increase requests (seed 001): the account asks, the operator approves or rejects, the limit
// changes on approval, and every step is in the account's history.
const test = ingestTest();

const requests = (id: string) => `/v1/accounts/${id}/limit-requests`;

async function limits(t: TestIngest, accountId: string) {
  const r = await t.stack.pool.query<{ monthly_limit: bigint | null; allowed_limit: bigint | null }>(
    'SELECT monthly_limit, allowed_limit FROM accounts WHERE id = $1', [accountId]);
  return r.rows[0]!;
}

/** The history's adjustment rows, oldest first: what the account sees of its requests. */
async function adjustments(t: TestIngest, accountId: string) {
  const res = await injector(t.app)('GET', `/v1/accounts/${accountId}/transactions?kind=adjustment`, admin);
  expect(res.statusCode).toBe(200);
  return (res.json<{ transactions: { amount: string; reason: string; direction: string; balance_after: string }[] }>()).transactions
    .reverse().map((r) => ({ amount: r.amount, reason: r.reason, balance_after: r.balance_after }));
}

describe('limit increase requests', () => {
  test('a member asks, the admin approves: the monthly limit becomes the requested one, both steps in the history, approving again changes nothing',
    async ({ ingest: t }) => {
      const inject = injector(t.app);
      const acct = await createAccount(t.app, { billing_mode: 'postpaid' });
      const asked = await inject('POST', requests(acct.id), bearer(acct.api_key), { requested_limit: '250', reason: 'launch week' });
      expect(asked.statusCode).toBe(201);
      const request = asked.json<{ id: string }>();
      expect(request).toMatchObject({
        account_id: acct.id, limit: 'monthly_limit', requested_limit: '250.000000', current_limit: '100.000000',
        reason: 'launch week', status: 'pending', decided_by: null, decided_at: null,
      });
      expect(request.id).toMatch(/^lr_[0-9a-f]{24}$/);
      expect((await limits(t, acct.id)).monthly_limit).toBeNull(); // the plan's 100 until approved

      const approved = await inject('POST', `${requests(acct.id)}/${request.id}/approve`, admin, { note: 'ok for the launch' });
      expect(approved.statusCode).toBe(200);
      expect(approved.json()).toMatchObject({ id: request.id, status: 'approved', decided_by: 'admin', decision_note: 'ok for the launch' });
      expect((await limits(t, acct.id)).monthly_limit).toBe(250_000_000n);

      const history = [
        { amount: '0.000000', balance_after: '0.000000', reason: `monthly limit increase requested (${request.id}): 100.000000 USD -> 250.000000 USD: launch week` },
        { amount: '0.000000', balance_after: '0.000000', reason: `monthly limit raised (${request.id} approved): 100.000000 USD -> 250.000000 USD: ok for the launch` },
      ];
      expect(await adjustments(t, acct.id)).toEqual(history);

      const again = await inject('POST', `${requests(acct.id)}/${request.id}/approve`, admin);
      expect(again.statusCode).toBe(200);
      expect(again.headers['idempotent-replayed']).toBe('true');
      expect(again.json()).toEqual(approved.json());
      expect(await adjustments(t, acct.id)).toEqual(history);
      const rejected = await inject('POST', `${requests(acct.id)}/${request.id}/reject`, admin);
      expect(rejected.statusCode).toBe(409);
      expect(rejected.json().error.code).toBe('LIMIT_REQUEST_DECIDED');

      const listed = await inject('GET', requests(acct.id), bearer(acct.api_key));
      expect(listed.json()).toEqual({ limit_requests: [approved.json()] });
      // The new limit is the base of the next request.
      const next = await inject('POST', requests(acct.id), bearer(acct.api_key), { requested_limit: '250', reason: 'more' });
      expect(next.statusCode).toBe(400);
      expect(next.json().error).toEqual({ code: 'NOT_AN_INCREASE', message: 'requested_limit must be above the current monthly limit of 250.000000 USD' });
    });

  test('a rejected request leaves the limit as it was, says so in the history, and cannot be approved afterwards', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app, { billing_mode: 'postpaid' });
    const request = (await inject('POST', requests(acct.id), bearer(acct.api_key), { requested_limit: '1000', reason: 'big batch' })).json<{ id: string }>();
    const rejected = await inject('POST', `${requests(acct.id)}/${request.id}/reject`, admin, { note: 'pay the open invoice first' });
    expect(rejected.statusCode).toBe(200);
    expect(rejected.json()).toMatchObject({ status: 'rejected', decision_note: 'pay the open invoice first' });
    expect(await limits(t, acct.id)).toEqual({ monthly_limit: null, allowed_limit: null });
    expect((await adjustments(t, acct.id)).map((a) => a.reason)).toEqual([
      `monthly limit increase requested (${request.id}): 100.000000 USD -> 1000.000000 USD: big batch`,
      `monthly limit increase to 1000.000000 USD rejected (${request.id}): pay the open invoice first`,
    ]);
    const approve = await inject('POST', `${requests(acct.id)}/${request.id}/approve`, admin);
    expect(approve.statusCode).toBe(409);
    expect(approve.json().error.code).toBe('LIMIT_REQUEST_DECIDED');
    // Decided, so a new request may wait.
    expect((await inject('POST', requests(acct.id), bearer(acct.api_key), { requested_limit: '500', reason: 'smaller then' })).statusCode).toBe(201);
  });

  test('raises the allowed limit when the request names it (seed 004)', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    await t.stack.pool.query('UPDATE accounts SET allowed_limit = 50000000, spend_alert_threshold = 40000000 WHERE id = $1', [acct.id]);
    const request = (await inject('POST', requests(acct.id), bearer(acct.api_key), { limit: 'allowed_limit', requested_limit: '80.5', reason: 'season' }))
      .json<{ id: string; current_limit: string }>();
    expect(request.current_limit).toBe('50.000000');
    expect((await inject('POST', `${requests(acct.id)}/${request.id}/approve`, admin)).statusCode).toBe(200);
    expect(await limits(t, acct.id)).toEqual({ monthly_limit: null, allowed_limit: 80_500_000n });
    expect((await adjustments(t, acct.id)).at(-1)!.reason).toBe(`allowed limit raised (${request.id} approved): 50.000000 USD -> 80.500000 USD`);
  });

  test('one approval when ten race: one history entry, every answer the approved request', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app, { billing_mode: 'postpaid' });
    const request = (await inject('POST', requests(acct.id), bearer(acct.api_key), { requested_limit: '300', reason: 'race' })).json<{ id: string }>();
    const answers = await Promise.all(Array.from({ length: 10 }, () => inject('POST', `${requests(acct.id)}/${request.id}/approve`, admin)));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(10).fill(200));
    expect(new Set(answers.map((a) => a.body)).size).toBe(1);
    expect(answers.filter((a) => a.headers['idempotent-replayed'] === undefined)).toHaveLength(1);
    expect(await adjustments(t, acct.id)).toHaveLength(2);
  });

  test('an approved increase lifts the gate\'s MONTHLY_LIMIT_REACHED at once', async ({ ingest: t }) => {
    const inject = injector(t.app);
    await setPrices(t.stack);
    const acct = await createAccount(t.app, { billing_mode: 'postpaid' });
    await t.stack.pool.query("UPDATE accounts SET payment_method = 'test-card' WHERE id = $1", [acct.id]);
    // 2,600 images at 0.04: 104.00, over the plan's 100.00 monthly limit.
    const authorize = () => inject('POST', '/v1/authorize', { ...bearer(acct.api_key), 'idempotency-key': uid('call') },
      { account_id: acct.id, product: 'image', max_quantity: '2600' });
    const refused = await authorize();
    expect(refused.statusCode).toBe(402);
    expect(refused.json().error.code).toBe('MONTHLY_LIMIT_REACHED');
    expect(refused.json().error.message).toContain('/limit-requests');

    const request = (await inject('POST', requests(acct.id), bearer(acct.api_key), { requested_limit: '150', reason: 'a bigger batch' })).json<{ id: string }>();
    expect((await authorize()).statusCode).toBe(402); // asking is not getting
    expect((await inject('POST', `${requests(acct.id)}/${request.id}/approve`, admin)).statusCode).toBe(200);
    const held = await authorize();
    expect(held.statusCode).toBe(200);
    expect(held.json()).toMatchObject({ account_id: acct.id, amount: '104.000000' });
  });

  test('refuses what makes no request: no such limit, not an increase, one already waiting', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const prepaid = await createAccount(t.app);
    const noMonthly = await inject('POST', requests(prepaid.id), bearer(prepaid.api_key), { requested_limit: '100', reason: 'x' });
    expect(noMonthly.statusCode).toBe(409);
    expect(noMonthly.json().error).toEqual({ code: 'LIMIT_NOT_SET', message: `account ${prepaid.id} has no monthly limit to raise` });
    const noAllowed = await inject('POST', requests(prepaid.id), bearer(prepaid.api_key), { limit: 'allowed_limit', requested_limit: '100', reason: 'x' });
    expect(noAllowed.json().error.code).toBe('LIMIT_NOT_SET');

    const postpaid = await createAccount(t.app, { billing_mode: 'postpaid' });
    const lower = await inject('POST', requests(postpaid.id), bearer(postpaid.api_key), { requested_limit: '99.999999', reason: 'x' });
    expect(lower.statusCode).toBe(400);
    expect(lower.json().error.code).toBe('NOT_AN_INCREASE');
    for (const body of [{ requested_limit: 200, reason: 'x' }, { requested_limit: '200', reason: '  ' }, { requested_limit: '200', reason: 'x'.repeat(301) }]) {
      const res = await inject('POST', requests(postpaid.id), bearer(postpaid.api_key), body);
      expect({ body, status: res.statusCode, code: res.json().error.code }).toEqual({ body, status: 400, code: 'VALIDATION_ERROR' });
    }
    const first = (await inject('POST', requests(postpaid.id), bearer(postpaid.api_key), { requested_limit: '200', reason: 'x' })).json<{ id: string }>();
    const second = await inject('POST', requests(postpaid.id), bearer(postpaid.api_key), { requested_limit: '300', reason: 'y' });
    expect(second.statusCode).toBe(409);
    expect(second.json().error).toEqual({ code: 'LIMIT_REQUEST_PENDING', message: `request ${first.id} for the monthly limit is waiting for a decision` });
    expect(await adjustments(t, postpaid.id)).toHaveLength(1);
    expect(await adjustments(t, prepaid.id)).toEqual([]);
  });

  test("only the admin decides, and an account's key reaches only its own requests", async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app, { billing_mode: 'postpaid' });
    const other = await createAccount(t.app, { billing_mode: 'postpaid' });
    const request = (await inject('POST', requests(acct.id), bearer(acct.api_key), { requested_limit: '200', reason: 'x' })).json<{ id: string }>();
    const self = await inject('POST', `${requests(acct.id)}/${request.id}/approve`, bearer(acct.api_key));
    expect(self.statusCode).toBe(403);
    expect((await inject('POST', requests(acct.id), bearer(other.api_key), { requested_limit: '200', reason: 'x' })).statusCode).toBe(403);
    expect((await inject('GET', requests(acct.id), bearer(other.api_key))).statusCode).toBe(403);
    const elsewhere = await inject('POST', `${requests(other.id)}/${request.id}/approve`, admin);
    expect(elsewhere.statusCode).toBe(404);
    expect(elsewhere.json().error.code).toBe('LIMIT_REQUEST_NOT_FOUND');
    expect((await limits(t, acct.id)).monthly_limit).toBeNull();
    expect((await inject('GET', requests('acct-nobody'), admin)).statusCode).toBe(404);
  });
});
