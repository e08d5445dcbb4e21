import { describe, expect } from 'vitest';
import { admin, ingestTest, injector, uid } from './support.js';

const test = ingestTest();
const DAY = 86_400_000;

describe('plans', () => {
  test('the migration gives each currency and billing mode a default plan: $10 gift for 7 days, $100 postpaid limit', async ({ ingest: t }) => {
    const res = await injector(t.app)('GET', '/v1/plans', admin);
    expect(res.statusCode).toBe(200);
    const plans = (res.json() as { plans: { id: string }[] }).plans.filter((p) => p.id.startsWith('default-'));
    const common = {
      signup_gift: { amount: '10.000000', validity_days: 7 }, monthly_allowance: { amount: '0.000000', rollover_months: 2 }, low_balance_threshold: '1.000000',
      addons: [], addon_shortfall: 'suspend', auto_top_up: { enabled: false, amount: '10.000000' }, hold_ttl_seconds: 900, provision_on_first_use: false,
    };
    expect(plans).toEqual([
      { id: 'default-eur-postpaid', name: 'Default EUR postpaid', currency: 'EUR', billing_mode: 'postpaid', ...common, default_monthly_limit: '100.000000', created_at: expect.any(String), updated_at: expect.any(String) },
      { id: 'default-eur-prepaid', name: 'Default EUR prepaid', currency: 'EUR', billing_mode: 'prepaid', ...common, default_monthly_limit: null, created_at: expect.any(String), updated_at: expect.any(String) },
      { id: 'default-usd-postpaid', name: 'Default USD postpaid', currency: 'USD', billing_mode: 'postpaid', ...common, default_monthly_limit: '100.000000', created_at: expect.any(String), updated_at: expect.any(String) },
      { id: 'default-usd-prepaid', name: 'Default USD prepaid', currency: 'USD', billing_mode: 'prepaid', ...common, default_monthly_limit: null, created_at: expect.any(String), updated_at: expect.any(String) },
    ]);
  });

  test('PUT creates then replaces a plan; an account on it gets its gift', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const id = uid('pro');
    const body = {
      name: 'Pro', currency: 'EUR', billing_mode: 'postpaid',
      signup_gift: { amount: '2.5', validity_days: 3 }, monthly_allowance: { amount: '20', rollover_months: 1 },
    };
    const created = await inject('PUT', `/v1/plans/${id}`, admin, body);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({
      id, signup_gift: { amount: '2.500000', validity_days: 3 }, monthly_allowance: { amount: '20.000000', rollover_months: 1 },
      default_monthly_limit: '100.000000', low_balance_threshold: '1.000000',
    });
    const replaced = await inject('PUT', `/v1/plans/${id}`, admin, { ...body, default_monthly_limit: null, signup_gift: { amount: '3', validity_days: 2 } });
    expect(replaced.statusCode).toBe(200);
    expect(replaced.json()).toMatchObject({ default_monthly_limit: null, signup_gift: { amount: '3.000000', validity_days: 2 } });

    const acct = await inject('POST', '/v1/accounts', admin, { email: `${uid('pro')}@example.com`, currency: 'EUR', billing_mode: 'postpaid', plan_id: id });
    expect(acct.statusCode).toBe(201);
    const a = acct.json();
    expect(a).toMatchObject({ plan_id: id, signup_gift: { kind: 'gift', amount: '3.000000', expires_at: new Date(Date.parse(a.created_at) + 2 * DAY).toISOString() } });

    // Accounts pin its currency and billing mode.
    const moved = await inject('PUT', `/v1/plans/${id}`, admin, { ...body, currency: 'USD' });
    expect([moved.statusCode, moved.json().error.code]).toEqual([409, 'PLAN_IN_USE']);
  });

  test('refuses a prepaid limit, an unknown plan and a plan of another currency', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const prepaid = await inject('PUT', `/v1/plans/${uid('p')}`, admin, { name: 'P', currency: 'USD', billing_mode: 'prepaid', default_monthly_limit: '5' });
    expect([prepaid.statusCode, prepaid.json().error.code]).toEqual([400, 'VALIDATION_ERROR']);
    const email = `${uid('x')}@example.com`;
    const unknown = await inject('POST', '/v1/accounts', admin, { email, currency: 'USD', billing_mode: 'prepaid', plan_id: uid('nope') });
    expect([unknown.statusCode, unknown.json().error.code]).toEqual([400, 'PLAN_NOT_FOUND']);
    const other = await inject('POST', '/v1/accounts', admin, { email, currency: 'USD', billing_mode: 'prepaid', plan_id: 'default-eur-prepaid' });
    expect([other.statusCode, other.json().error.code]).toEqual([400, 'PLAN_MISMATCH']);
    // Neither refusal used up the address's gift.
    const ok = await inject('POST', '/v1/accounts', admin, { email, currency: 'USD', billing_mode: 'prepaid' });
    expect(ok.json().signup_gift).toMatchObject({ amount: '10.000000' });
  });
});
