import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClock } from '@meterstream/platform/clock';
import { admin, bearer, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// Plan settings, plan changes and add-ons through the API, on a clock of the test's own.
const clock = new TestClock(Date.parse('2031-01-20T15:00:00.000Z'));
let t: TestIngest;
let inject: ReturnType<typeof injector>;

beforeAll(async () => {
  t = await openIngest('plans-addons', {}, { now: () => clock.now() });
  inject = injector(t.app);
});
afterAll(() => t.close());

/** A prepaid USD plan offering concurrency at `price`; returns its id. */
async function plan(price: string, over: Record<string, unknown> = {}): Promise<string> {
  const id = uid('plan');
  const res = await inject('PUT', `/v1/plans/${id}`, admin, {
    name: 'Add-ons', currency: 'USD', billing_mode: 'prepaid', signup_gift: { amount: '0', validity_days: 7 },
    addons: [{ id: 'concurrency', name: 'Concurrency', monthly_price: price }], addon_shortfall: 'suspend', ...over,
  });
  if (res.statusCode >= 300) throw new Error(res.body);
  return id;
}

/** An account on `planId` with `credits` purchased. */
async function account(planId: string, credits: string): Promise<{ id: string; api_key: string }> {
  const a = await createAccount(t.app);
  await t.stack.pool.query('UPDATE accounts SET plan_id = $2 WHERE id = $1', [a.id, planId]);
  const g = await inject('POST', `/v1/accounts/${a.id}/grants`, { ...admin, 'idempotency-key': 'credits' }, { kind: 'purchased', amount: credits });
  expect(g.statusCode).toBe(201);
  return a;
}

describe('plan settings', () => {
  it('stores the add-ons, the shortfall behaviour, the auto top-up defaults and the hold TTL', async () => {
    const id = uid('plan');
    const body = {
      name: 'Studio', currency: 'USD', billing_mode: 'prepaid',
      addons: [{ id: 'voice-cloning', name: 'Voice cloning', monthly_price: '5' }, { id: 'kb', name: 'Knowledge base', monthly_price: '1.25' }],
      addon_shortfall: 'overdraft', auto_top_up: { enabled: true, amount: '25' }, hold_ttl_seconds: 600,
    };
    expect((await inject('PUT', `/v1/plans/${id}`, admin, body)).statusCode).toBe(201);
    const listed = ((await inject('GET', '/v1/plans', admin)).json() as { plans: { id: string }[] }).plans.find((p) => p.id === id);
    expect(listed).toMatchObject({
      addons: [{ id: 'kb', name: 'Knowledge base', monthly_price: '1.250000' }, { id: 'voice-cloning', name: 'Voice cloning', monthly_price: '5.000000' }],
      addon_shortfall: 'overdraft', auto_top_up: { enabled: true, amount: '25.000000' }, hold_ttl_seconds: 600, provision_on_first_use: false,
    });
    const bad = await inject('PUT', `/v1/plans/${id}`, admin, { ...body, addons: [body.addons[0], body.addons[0]], auto_top_up: { enabled: true, amount: '0' } });
    expect([bad.statusCode, bad.json().error.code]).toEqual([400, 'VALIDATION_ERROR']);
  });

  it('keeps an add-on in use on an account: 409 ADDON_IN_USE', async () => {
    const id = await plan('2');
    const a = await account(id, '10');
    expect((await inject('POST', `/v1/accounts/${a.id}/addons`, bearer(a.api_key), { addon: 'concurrency' })).statusCode).toBe(201);
    const removed = await inject('PUT', `/v1/plans/${id}`, admin, { name: 'Add-ons', currency: 'USD', billing_mode: 'prepaid', addons: [] });
    expect([removed.statusCode, removed.json().error.code]).toEqual([409, 'ADDON_IN_USE']);
  });
});

describe('add-ons', () => {
  it('activate deducts the price, again is a no-op, GET lists, DELETE deactivates; short credits suspend', async () => {
    const a = await account(await plan('3'), '4');
    const key = bearer(a.api_key);
    const on = await inject('POST', `/v1/accounts/${a.id}/addons`, key, { addon: 'concurrency' });
    expect([on.statusCode, on.json()]).toEqual([201, {
      account_id: a.id, addon: 'concurrency', name: 'Concurrency', state: 'active', monthly_price: '3.000000', last_period: '2031-01',
      activated_at: '2031-01-20T15:00:00.000Z', updated_at: '2031-01-20T15:00:00.000Z',
    }]);
    expect((await inject('POST', `/v1/accounts/${a.id}/addons`, key, { addon: 'concurrency' })).statusCode).toBe(200);
    expect((await inject('GET', `/v1/accounts/${a.id}/balance`, key)).json().balance).toBe('1.000000');
    const history = (await inject('GET', `/v1/accounts/${a.id}/transactions?kind=addon`, key)).json() as { transactions: { amount: string; direction: string }[] };
    expect(history.transactions.map((h) => [h.direction, h.amount])).toEqual([['debit', '3.000000']]);

    const off = await inject('DELETE', `/v1/accounts/${a.id}/addons/concurrency`, key);
    expect([off.statusCode, off.json().state]).toEqual([200, 'inactive']);
    // Activated again in a month it was paid for: nothing more is deducted.
    expect((await inject('POST', `/v1/accounts/${a.id}/addons`, key, { addon: 'concurrency' })).json().state).toBe('active');
    expect((await inject('GET', `/v1/accounts/${a.id}/balance`, key)).json().balance).toBe('1.000000');

    const short = await account(await plan('3'), '1');
    const suspended = await inject('POST', `/v1/accounts/${short.id}/addons`, bearer(short.api_key), { addon: 'concurrency' });
    expect([suspended.statusCode, suspended.json().state]).toEqual([201, 'suspended']);
    expect((await inject('GET', `/v1/accounts/${short.id}/addons`, bearer(short.api_key))).json().addons.map((x: { state: string }) => x.state)).toEqual(['suspended']);
  });

  it('refuses an add-on and a plan change on a closed account: 404, nothing charged or scheduled', async () => {
    const a = await account(await plan('3'), '5');
    const target = await plan('2');
    expect((await inject('DELETE', `/v1/accounts/${a.id}`, admin)).statusCode).toBe(200);
    const on = await inject('POST', `/v1/accounts/${a.id}/addons`, admin, { addon: 'concurrency' });
    expect([on.statusCode, on.json().error.code]).toEqual([404, 'ACCOUNT_NOT_FOUND']);
    const moved = await inject('PUT', `/v1/accounts/${a.id}/plan`, { ...admin, 'idempotency-key': 'closed-move' }, { plan_id: target });
    expect([moved.statusCode, moved.json().error.code]).toEqual([404, 'ACCOUNT_NOT_FOUND']);
    const entries = await t.stack.pool.query<{ kind: string }>(
      "SELECT kind FROM ledger_entries WHERE account_id = $1 AND kind IN ('addon', 'plan_change')", [a.id]);
    expect(entries.rows).toEqual([]);
    expect((await t.stack.pool.query('SELECT pending_plan_id FROM accounts WHERE id = $1', [a.id])).rows).toEqual([{ pending_plan_id: null }]);
  });

  it('refuses an add-on the plan does not offer, one never activated, and another account\'s key', async () => {
    const a = await account(await plan('1'), '5');
    const other = await account(await plan('1'), '5');
    const notOffered = await inject('POST', `/v1/accounts/${a.id}/addons`, bearer(a.api_key), { addon: 'voice-cloning' });
    expect([notOffered.statusCode, notOffered.json().error.code]).toEqual([400, 'ADDON_NOT_OFFERED']);
    const never = await inject('DELETE', `/v1/accounts/${a.id}/addons/voice-cloning`, bearer(a.api_key));
    expect([never.statusCode, never.json().error.code]).toEqual([404, 'ADDON_NOT_FOUND']);
    expect((await inject('POST', `/v1/accounts/${a.id}/addons`, bearer(other.api_key), { addon: 'concurrency' })).statusCode).toBe(403);
  });
});

describe('plan change and anchor day', () => {
  it('PUT /plan schedules the change for the next period, idempotently; GET shows it pending', async () => {
    const a = await account(await plan('1'), '5');
    const target = await plan('2');
    const key = bearer(a.api_key);
    const missing = await inject('PUT', `/v1/accounts/${a.id}/plan`, key, { plan_id: target });
    expect([missing.statusCode, missing.json().error.code]).toEqual([400, 'IDEMPOTENCY_KEY_REQUIRED']);
    const changed = await inject('PUT', `/v1/accounts/${a.id}/plan`, { ...key, 'idempotency-key': 'move-1' }, { plan_id: target });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({
      pending_plan_id: target, pending_plan_at: '2031-02-01T00:00:00.000Z', billing_anchor_day: 1,
      period: { id: '2031-01', starts_at: '2031-01-01T00:00:00.000Z', ends_at: '2031-02-01T00:00:00.000Z' },
    });
    const again = await inject('PUT', `/v1/accounts/${a.id}/plan`, { ...key, 'idempotency-key': 'move-1' }, { plan_id: target });
    expect([again.statusCode, again.headers['idempotent-replayed']]).toEqual([200, 'true']);
    const reused = await inject('PUT', `/v1/accounts/${a.id}/plan`, { ...key, 'idempotency-key': 'move-1' }, { plan_id: 'default-usd-prepaid' });
    expect([reused.statusCode, reused.json().error.code]).toEqual([409, 'IDEMPOTENCY_KEY_REUSED']);
    const postpaid = await inject('PUT', `/v1/accounts/${a.id}/plan`, { ...key, 'idempotency-key': 'move-2' }, { plan_id: 'default-usd-postpaid' });
    expect([postpaid.statusCode, postpaid.json().error.code]).toEqual([400, 'BILLING_MODE_CHANGE']);
    expect((await inject('GET', `/v1/accounts/${a.id}/plan`, key)).json()).toMatchObject({ pending_plan_id: target });
    const history = (await inject('GET', `/v1/accounts/${a.id}/transactions?kind=plan_change`, key)).json() as { transactions: { amount: string }[] };
    expect(history.transactions.map((h) => h.amount)).toEqual(['0.000000']);
  });

  it('PUT /billing-anchor-day moves the period start', async () => {
    const a = await account(await plan('1'), '5');
    const res = await inject('PUT', `/v1/accounts/${a.id}/billing-anchor-day`, bearer(a.api_key), { billing_anchor_day: 25 });
    expect(res.json()).toMatchObject({
      billing_anchor_day: 25, period: { id: '2030-12', starts_at: '2030-12-25T00:00:00.000Z', ends_at: '2031-01-25T00:00:00.000Z' },
    });
    const bad = await inject('PUT', `/v1/accounts/${a.id}/billing-anchor-day`, bearer(a.api_key), { billing_anchor_day: 31 });
    expect([bad.statusCode, bad.json().error.code]).toEqual([400, 'VALIDATION_ERROR']);
  });

  it('POST /v1/accounts takes the anchor day: the account\'s periods start on it from the first', async () => {
    const body = { email: `${uid('anchor')}@example.com`, currency: 'USD', billing_mode: 'prepaid' };
    const opened = await inject('POST', '/v1/accounts', admin, { ...body, billing_anchor_day: 15 });
    expect([opened.statusCode, opened.json().billing_anchor_day]).toEqual([201, 15]);
    expect((await inject('GET', `/v1/accounts/${opened.json().id}/plan`, admin)).json()).toMatchObject({
      billing_anchor_day: 15, period: { id: '2031-01', starts_at: '2031-01-15T00:00:00.000Z', ends_at: '2031-02-15T00:00:00.000Z' },
    });
    const plain = await inject('POST', '/v1/accounts', admin, { ...body, email: `${uid('anchor')}@example.com` });
    expect([plain.statusCode, plain.json().billing_anchor_day]).toEqual([201, 1]);
    const bad = await inject('POST', '/v1/accounts', admin, { ...body, email: `${uid('anchor')}@example.com`, billing_anchor_day: 29 });
    expect([bad.statusCode, bad.json().error.code]).toEqual([400, 'VALIDATION_ERROR']);
  });
});
