import { describe, expect } from 'vitest';
import { issueKey } from '@meterstream/platform/stores/api-keys';
import { createTenant } from '@meterstream/platform/stores/tenants';
import { provisionAccount } from '@meterstream/ledger/commands/provision-account';
import { grantAllowances } from '@meterstream/ledger/commands/grant-allowances';
import { readTopicMessages, setPrices, waitRaterIdle } from '../../tests/support/fixtures.js';
import { startInProcessRater } from '../../rater/test/in-process-rater.js';
import { admin, bearer, createAccount, ingestTest, injector, uid, type TestIngest } from './support.js';

// Seed 002: "The first billable call your account makes provisions the account and grants its
// initial allowance automatically". A tenant's service key naming an unknown account id.
const test = ingestTest();

const month = () => new Date().toISOString().slice(0, 7);

/** A tenant whose default plan grants a $5 allowance (rolling over 2 months), provisioning on first use or not, and its service key. */
async function tenant(t: TestIngest, provision: boolean): Promise<{ id: string; key: string; planId: string }> {
  const planId = uid('prov-plan');
  const plan = await injector(t.app)('PUT', `/v1/plans/${planId}`, admin, {
    name: 'Provisioned', currency: 'USD', billing_mode: 'prepaid',
    signup_gift: { amount: '10', validity_days: 7 }, monthly_allowance: { amount: '5', rollover_months: 2 },
    provision_on_first_use: provision,
  });
  expect(plan.statusCode).toBeLessThan(300);
  expect(plan.json().provision_on_first_use).toBe(provision);
  const created = await createTenant(t.stack.pool, { name: 'Acme voice', defaultPlanId: planId });
  const key = await issueKey(t.stack.pool, { kind: 'service', tenantId: created.id });
  return { id: created.id, key: key.apiKey, planId };
}

const event = (accountId: string, id = uid()) => ({ id, account_id: accountId, product: 'chat', quantity: '1000', timestamp: new Date().toISOString() });

async function allowanceEntries(t: TestIngest, accountId: string) {
  const { rows } = await t.stack.pool.query<{ idempotency_key: string; amount: string }>(
    "SELECT idempotency_key, amount::text FROM ledger_entries WHERE account_id = $1 AND kind = 'grant' ORDER BY seq", [accountId]);
  return rows;
}

describe('first billable use provisions the account', () => {
  test('the first event of an unknown account creates it on the tenant\'s default plan with this month\'s allowance, no gift', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acme = await tenant(t, true);
    const accountId = uid('cust');

    const sent = await inject('POST', '/v1/events', bearer(acme.key), [event(accountId, 'e1'), event(accountId, 'e2')]);
    expect(sent.statusCode).toBe(202);
    expect(sent.json()).toEqual({ accepted: ['e1', 'e2'], rejected: [] });

    const { rows: [account] } = await t.stack.pool.query(
      'SELECT email, plan_id, tenant_id, currency, billing_mode FROM accounts WHERE id = $1', [accountId]);
    expect(account).toEqual({ email: null, plan_id: acme.planId, tenant_id: acme.id, currency: 'USD', billing_mode: 'prepaid' });
    // No email: no owner member and no signup gift (once per email), only the allowance.
    expect((await t.stack.pool.query('SELECT 1 FROM members WHERE account_id = $1', [accountId])).rowCount).toBe(0);
    expect(await allowanceEntries(t, accountId)).toEqual([{ idempotency_key: `allowance:${month()}`, amount: '5000000' }]);
    const { rows: grants } = await t.stack.pool.query('SELECT kind, remaining::text, expires_at FROM grants WHERE account_id = $1', [accountId]);
    // Rolls over two months: usable until the start of the third month after this one.
    const now = new Date();
    expect(grants).toEqual([{ kind: 'allowance', remaining: '5000000', expires_at: new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 3, 1)) }]);
    // The tenant's key reads its customer's balance.
    const balance = await inject('GET', `/v1/accounts/${accountId}/balance`, bearer(acme.key));
    expect(balance.json()).toMatchObject({ balance: '5.000000', grants: [{ kind: 'allowance', remaining: '5.000000' }] });

    // The monthly job finds this month granted: it never doubles the allowance.
    expect(await grantAllowances(t.stack.ledger, { accounts: [accountId] })).toMatchObject({ granted: [], replayed: 0 });
    // The next request finds the account known: nothing more is created.
    expect((await inject('POST', '/v1/events', bearer(acme.key), event(accountId, 'e3'))).json()).toEqual({ accepted: ['e3'], rejected: [] });
    expect(await allowanceEntries(t, accountId)).toHaveLength(1);

    // The events are charged against the allowance.
    await setPrices(t.stack);
    const rater = await startInProcessRater(t.stack);
    try {
      await waitRaterIdle(t.stack);
    } finally {
      await rater.stop();
    }
    const { rows: charged } = await t.stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM usage_ledger WHERE account_id = $1', [accountId]);
    expect(charged).toEqual([{ n: 3 }]);
  });

  test('the first authorize (the gate) provisions the account and holds against its allowance', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acme = await tenant(t, true);
    await setPrices(t.stack);
    const accountId = uid('cust-gate');
    const held = await inject('POST', '/v1/authorize', { ...bearer(acme.key), 'idempotency-key': 'first-call' }, { account_id: accountId, product: 'chat', max_quantity: '1000000' });
    expect([held.statusCode, held.json()]).toEqual([200, expect.objectContaining({ account_id: accountId, amount: '2.000000', currency: 'USD' })]);
    expect(await allowanceEntries(t, accountId)).toEqual([{ idempotency_key: `allowance:${month()}`, amount: '5000000' }]);
    // Off: the gate answers that the account does not exist, and creates nothing.
    const off = await tenant(t, false);
    const unknown = uid('cust-gate-off');
    const refused = await inject('POST', '/v1/authorize', { ...bearer(off.key), 'idempotency-key': 'first-call' }, { account_id: unknown, product: 'chat', max_quantity: '1000' });
    expect([refused.statusCode, refused.json().error.code]).toEqual([404, 'ACCOUNT_NOT_FOUND']);
    expect((await t.stack.pool.query('SELECT 1 FROM accounts WHERE id = $1', [unknown])).rowCount).toBe(0);
  });

  test('20 concurrent first calls with one new account id make one account and one allowance grant', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acme = await tenant(t, true);
    const viaHttp = uid('cust-http');
    const answers = await Promise.all(Array.from({ length: 20 }, (_, i) => inject('POST', '/v1/events', bearer(acme.key), event(viaHttp, `c${i}`))));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(20).fill(202));
    expect(answers.flatMap((a) => a.json().accepted).sort()).toEqual(Array.from({ length: 20 }, (_, i) => `c${i}`).sort());
    expect(await allowanceEntries(t, viaHttp)).toHaveLength(1);

    // As 20 ingest instances would race (each its own command, no shared in-memory state): the
    // account's primary key lets one through, the others find it.
    const raced = uid('cust-raced');
    const outcomes = await Promise.all(Array.from({ length: 20 }, () => provisionAccount(t.stack.ledger, { tenantId: acme.id, accountId: raced })));
    expect(outcomes.filter((o) => o.outcome === 'created')).toHaveLength(1);
    expect(outcomes.filter((o) => o.outcome === 'own')).toHaveLength(19);
    expect(await allowanceEntries(t, raced)).toEqual([{ idempotency_key: `allowance:${month()}`, amount: '5000000' }]);
    const { rows } = await t.stack.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM accounts WHERE id = ANY($1::text[])', [[viaHttp, raced]]);
    expect(rows).toEqual([{ n: 2 }]);
  });

  test('with the setting off the events are accepted, then dead-lettered UNKNOWN_ACCOUNT with a reason and counted', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acme = await tenant(t, false);
    const accountId = uid('nobody');
    const sent = await inject('POST', '/v1/events', bearer(acme.key), [event(accountId, 'n1'), event(accountId, 'n2')]);
    expect(sent.json()).toEqual({ accepted: ['n1', 'n2'], rejected: [] });
    expect((await t.stack.pool.query('SELECT 1 FROM accounts WHERE id = $1', [accountId])).rowCount).toBe(0);

    await setPrices(t.stack);
    const rater = await startInProcessRater(t.stack);
    try {
      await waitRaterIdle(t.stack);
    } finally {
      await rater.stop();
    }
    const dead = (await readTopicMessages(t.stack, t.stack.topics.dlq)).filter((m) => m.key === accountId);
    expect(dead.map((m) => [m.headers['error-code'], m.headers['error-reason']])).toEqual([
      ['UNKNOWN_ACCOUNT', `account ${accountId} does not exist`], ['UNKNOWN_ACCOUNT', `account ${accountId} does not exist`],
    ]);
    const counts = await inject('GET', `/v1/dead-letters/counts?account_id=${accountId}`, admin);
    expect(counts.json()).toEqual({ codes: [{ code: 'UNKNOWN_ACCOUNT', pending: 2, replayed: 0, last_at: expect.any(String) }] });
    expect((await inject('GET', '/v1/dead-letters/counts', bearer(acme.key))).statusCode).toBe(403);
  });

  test('an event for another tenant\'s account, or for a signed-up account, is rejected on its own (FORBIDDEN)', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acme = await tenant(t, true);
    const globex = await tenant(t, true);
    const theirs = uid('globex-cust');
    expect((await inject('POST', '/v1/events', bearer(globex.key), event(theirs))).statusCode).toBe(202);
    const signedUp = await createAccount(t.app);
    const mine = uid('acme-cust');

    const sent = await inject('POST', '/v1/events', bearer(acme.key), [event(theirs, 'x1'), event(mine, 'x2'), event(signedUp.id, 'x3'), event(mine, 'x4')]);
    expect(sent.statusCode).toBe(202);
    expect(sent.json()).toEqual({
      accepted: ['x2', 'x4'],
      rejected: [
        { index: 0, id: 'x1', code: 'FORBIDDEN', message: `this API key cannot send events for account ${theirs}` },
        { index: 2, id: 'x3', code: 'FORBIDDEN', message: `this API key cannot send events for account ${signedUp.id}` },
      ],
    });
    // Refused from the cache as well, the second time.
    expect((await inject('POST', '/v1/events', bearer(acme.key), event(theirs, 'x5'))).json()).toMatchObject({ accepted: [], rejected: [{ code: 'FORBIDDEN' }] });
    const { rows } = await t.stack.pool.query('SELECT id, tenant_id FROM accounts WHERE id = ANY($1::text[]) ORDER BY id', [[theirs, mine]]);
    expect(rows).toEqual([{ id: mine, tenant_id: acme.id }, { id: theirs, tenant_id: globex.id }].sort((a, b) => a.id.localeCompare(b.id)));
  });
});
