import type { FastifyInstance } from 'fastify';
import { describe, expect } from 'vitest';
import type { Pool } from '@meterstream/platform/postgres';
import { ADMIN_KEY, admin, bearer, createAccount, ingestTest, uid } from './support.js';

// Every route of the OpenAPI document, called by every kind of caller (README, "People, roles and
// keys"). A route added to the API without a row here, or whose declared access (x-access) is not
// its row's, fails this file.

const CALLERS = [
  'operator', 'owner', 'admin', 'billing', 'member', 'service', 'tenant',
  'other account', 'other tenant', 'revoked', 'no key', 'malformed',
] as const;
type Caller = (typeof CALLERS)[number];

/**
 * The matrix: who each policy lets through, for the fixture's account. Refused callers get
 * 403 FORBIDDEN; revoked, missing and malformed keys 401 UNAUTHORIZED (a public route reads no
 * key: it authenticates its caller itself, as Stripe's webhook by its signature). The tenant key is of the
 * account's tenant; "other account" is the owner of another account, "other tenant" a key of
 * another tenant.
 */
const MATRIX = {
  public: CALLERS,
  admin: ['operator'],
  'any key': ['operator', 'owner', 'admin', 'billing', 'member', 'service', 'tenant', 'other account', 'other tenant'],
  'usage:write': ['operator', 'owner', 'admin', 'member', 'service', 'tenant'],
  'billing:read': ['operator', 'owner', 'admin', 'billing', 'tenant'],
  'billing:manage': ['operator', 'owner', 'admin', 'billing'],
  'members:manage': ['operator', 'owner', 'admin'],
  'account:read': ['operator', 'owner', 'admin', 'billing', 'member', 'tenant'],
} as const satisfies Record<string, readonly Caller[]>;
type Policy = keyof typeof MATRIX;

interface Fixture {
  app: FastifyInstance;
  /** The account the calls are about, of the tenant `tenant`. */
  account: { id: string; api_key: string };
  tenant: string;
  plan: string;
}

type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
interface Route {
  access: Policy;
  /**
   * The status of an allowed call, where the request below is valid so that nothing else may
   * answer; without it, an allowed call is any answer but 401, 403 and 500 (routes whose valid calls
   * need outside state, such as Stripe, or would change the fixture for the rows after them).
   */
  ok?: number;
  /** A valid request; the routes that change or remove something are given a fresh one each call. */
  request(f: Fixture): Promise<{ url: string; payload?: unknown; headers?: Record<string, string> }>;
}

const call = (f: Fixture, method: Method, url: string, payload?: unknown) =>
  f.app.inject({ method, url, headers: admin, ...(payload === undefined ? {} : { payload: payload as object }) });
const idOf = async (res: Promise<{ json(): unknown }>) => ((await res).json() as { id: string }).id;

const newServiceKey = (f: Fixture) => idOf(call(f, 'POST', `/v1/accounts/${f.account.id}/keys`, { kind: 'service' }));
const newMember = (f: Fixture) => idOf(call(f, 'POST', `/v1/accounts/${f.account.id}/members`, { email: `${uid('m')}@example.com`, role: 'member' }));
const newAccount = (f: Fixture) =>
  idOf(call(f, 'POST', '/v1/accounts', { email: `${uid('closing')}@example.com`, currency: 'USD', billing_mode: 'prepaid', plan_id: f.plan }));
const newWebhook = (f: Fixture) => idOf(call(f, 'POST', `/v1/accounts/${f.account.id}/webhooks`, { url: 'http://127.0.0.1:9/matrix' }));
/** A notification of the account to replay: the one a fresh grant writes. */
const newNotification = async (f: Fixture) => {
  await f.app.inject({
    method: 'POST', url: `/v1/accounts/${f.account.id}/grants`, headers: { ...admin, 'idempotency-key': uid('grant') }, payload: { kind: 'purchased', amount: '1' },
  });
  const res = await call(f, 'GET', `/v1/accounts/${f.account.id}/notifications`);
  return (res.json() as { notifications: { id: string }[] }).notifications[0]!.id;
};
const newTenantKey = (f: Fixture) => idOf(call(f, 'POST', `/v1/tenants/${f.tenant}/keys`));

/** A product the gate prices, and an open hold on the fixture's account (the operator's, for a fresh account with credits). */
const GATE_PRODUCT = 'matrix-gate';
const newHold = async (f: Fixture) => {
  const res = await f.app.inject({
    method: 'POST', url: '/v1/authorize', headers: { ...admin, 'idempotency-key': uid('hold') },
    payload: { account_id: f.account.id, product: GATE_PRODUCT, max_quantity: '1' },
  });
  expect(res.statusCode, res.body).toBe(200);
  return (res.json() as { hold_id: string }).hold_id;
};

const ROUTES: Record<string, Route> = {
  // Each event's account is judged on its own: see `judge` below.
  'POST /v1/events': {
    access: 'usage:write', ok: 202,
    request: async (f) => ({
      url: '/v1/events',
      payload: [{ id: uid(), account_id: f.account.id, product: 'gpt-tokens', quantity: '1', timestamp: new Date().toISOString() }],
    }),
  },
  'POST /v1/accounts': {
    access: 'admin', ok: 201,
    request: async (f) => ({ url: '/v1/accounts', payload: { email: `${uid('m')}@example.com`, currency: 'USD', billing_mode: 'prepaid', plan_id: f.plan } }),
  },
  'POST /v1/accounts/{id}/grants': {
    access: 'admin', ok: 201,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/grants`, payload: { kind: 'purchased', amount: '1' }, headers: { 'idempotency-key': uid('grant') } }),
  },
  'POST /v1/accounts/{id}/adjustments': {
    access: 'admin', ok: 201,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/adjustments`, payload: { amount: '1', reason: 'matrix' }, headers: { 'idempotency-key': uid('adj') } }),
  },
  // A fresh account each call: closing the fixture's would change every row after this one.
  'DELETE /v1/accounts/{id}': { access: 'admin', ok: 200, request: async (f) => ({ url: `/v1/accounts/${await newAccount(f)}` }) },
  'GET /v1/plans': { access: 'admin', ok: 200, request: async () => ({ url: '/v1/plans' }) },
  'PUT /v1/plans/{id}': {
    access: 'admin', ok: 201,
    request: async () => ({ url: `/v1/plans/${uid('plan')}`, payload: { name: 'Matrix', currency: 'USD', billing_mode: 'prepaid' } }),
  },
  'GET /v1/accounts/{id}/balance': { access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/balance` }) },
  'GET /v1/accounts/{id}/transactions': { access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/transactions` }) },
  'GET /v1/accounts/{id}/transactions.csv': {
    access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/transactions.csv` }),
  },
  'GET /v1/prices': { access: 'any key', ok: 200, request: async () => ({ url: '/v1/prices' }) },
  'PUT /v1/prices/{product}': {
    access: 'admin', ok: 200,
    request: async () => ({ url: `/v1/prices/${uid('matrix')}`, payload: { unit: 'token', unit_price: '0.001' } }),
  },
  'POST /v1/credits/projections/usage-summary': {
    access: 'billing:read', ok: 200,
    request: async (f) => ({ url: '/v1/credits/projections/usage-summary', payload: { account_id: f.account.id } }),
  },
  'POST /v1/accounts/{id}/keys': {
    access: 'members:manage', ok: 201, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/keys`, payload: { kind: 'service' } }),
  },
  'GET /v1/accounts/{id}/keys': { access: 'members:manage', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/keys` }) },
  'DELETE /v1/accounts/{id}/keys/{keyId}': {
    access: 'members:manage', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/keys/${await newServiceKey(f)}` }),
  },
  'POST /v1/accounts/{id}/keys/{keyId}/rotate': {
    access: 'members:manage', ok: 201, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/keys/${await newServiceKey(f)}/rotate` }),
  },
  'GET /v1/accounts/{id}/members': { access: 'account:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/members` }) },
  'POST /v1/accounts/{id}/members': {
    access: 'members:manage', ok: 201,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/members`, payload: { email: `${uid('m')}@example.com`, role: 'billing' } }),
  },
  'PATCH /v1/accounts/{id}/members/{memberId}': {
    access: 'members:manage', ok: 200,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/members/${await newMember(f)}`, payload: { role: 'billing' } }),
  },
  'DELETE /v1/accounts/{id}/members/{memberId}': {
    access: 'members:manage', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/members/${await newMember(f)}` }),
  },
  'POST /v1/tenants': { access: 'admin', ok: 201, request: async (f) => ({ url: '/v1/tenants', payload: { name: 'Matrix', default_plan_id: f.plan } }) },
  'GET /v1/tenants/{id}': { access: 'admin', ok: 200, request: async (f) => ({ url: `/v1/tenants/${f.tenant}` }) },
  'POST /v1/tenants/{id}/keys': { access: 'admin', ok: 201, request: async (f) => ({ url: `/v1/tenants/${f.tenant}/keys` }) },
  'GET /v1/tenants/{id}/keys': { access: 'admin', ok: 200, request: async (f) => ({ url: `/v1/tenants/${f.tenant}/keys` }) },
  'DELETE /v1/tenants/{id}/keys/{keyId}': {
    access: 'admin', ok: 200, request: async (f) => ({ url: `/v1/tenants/${f.tenant}/keys/${await newTenantKey(f)}` }),
  },
  'POST /v1/accounts/{id}/webhooks': {
    access: 'billing:manage', ok: 201,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/webhooks`, payload: { url: 'http://127.0.0.1:9/matrix' } }),
  },
  'GET /v1/accounts/{id}/webhooks': { access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/webhooks` }) },
  'DELETE /v1/accounts/{id}/webhooks/{webhookId}': {
    access: 'billing:manage', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/webhooks/${await newWebhook(f)}` }),
  },
  'GET /v1/accounts/{id}/notifications': {
    access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/notifications` }),
  },
  'POST /v1/accounts/{id}/notifications/{notificationId}/replay': {
    access: 'billing:manage', ok: 202,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/notifications/${await newNotification(f)}/replay` }),
  },
  // Routes of the credit product (other files); their valid calls need state of their own.
  'GET /v1/accounts/{id}/addons': { access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/addons` }) },
  'POST /v1/accounts/{id}/addons': {
    access: 'billing:manage', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/addons`, payload: { addon: 'matrix-no-such-addon' } }),
  },
  'DELETE /v1/accounts/{id}/addons/{addon}': {
    access: 'billing:manage', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/addons/matrix-no-such-addon` }),
  },
  'PUT /v1/accounts/{id}/billing-anchor-day': {
    access: 'billing:manage', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/billing-anchor-day`, payload: { billing_anchor_day: 1 } }),
  },
  'GET /v1/accounts/{id}/limits': { access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/limits` }) },
  'PUT /v1/accounts/{id}/limits': { access: 'billing:manage', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/limits`, payload: {} }) },
  'GET /v1/accounts/{id}/limit-requests': {
    access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/limit-requests` }),
  },
  // A prepaid account has no monthly limit to raise (409): what matters here is who gets that far.
  'POST /v1/accounts/{id}/limit-requests': {
    access: 'billing:manage',
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/limit-requests`, payload: { requested_limit: '1000', reason: 'matrix' } }),
  },
  'POST /v1/accounts/{id}/limit-requests/{rid}/approve': {
    access: 'admin', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/limit-requests/lr-matrix/approve`, payload: {} }),
  },
  'POST /v1/accounts/{id}/limit-requests/{rid}/reject': {
    access: 'admin', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/limit-requests/lr-matrix/reject`, payload: {} }),
  },
  'POST /v1/accounts/{id}/payment-methods/setup': {
    access: 'billing:manage', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/payment-methods/setup`, payload: {} }),
  },
  'GET /v1/accounts/{id}/payments': { access: 'billing:read', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/payments` }) },
  'GET /v1/accounts/{id}/payments/{paymentId}/invoice.pdf': {
    access: 'billing:read', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/payments/pay_${'0'.repeat(24)}/invoice.pdf` }),
  },
  'GET /v1/accounts/{id}/invoices': { access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/invoices` }) },
  'GET /v1/accounts/{id}/invoices/{invoiceId}': {
    access: 'billing:read', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/invoices/inv_${'0'.repeat(24)}` }),
  },
  'GET /v1/accounts/{id}/invoices/{invoiceId}/invoice.pdf': {
    access: 'billing:read', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/invoices/inv_${'0'.repeat(24)}/invoice.pdf` }),
  },
  'GET /v1/accounts/{id}/usage/monthly': { access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/usage/monthly` }) },
  'GET /v1/accounts/{id}/usage/daily/{day}': {
    access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/usage/daily/2026-10-01` }),
  },
  'GET /v1/accounts/{id}/plan': { access: 'billing:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/plan` }) },
  'PUT /v1/accounts/{id}/plan': {
    access: 'billing:manage', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/plan`, payload: { plan_id: 'matrix-no-such-plan' } }),
  },
  'GET /v1/accounts/{id}/top-ups': { access: 'billing:read', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/top-ups` }) },
  'GET /v1/accounts/{id}/auto-top-up': { access: 'billing:manage', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/auto-top-up` }) },
  'PUT /v1/accounts/{id}/auto-top-up': { access: 'billing:manage', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/auto-top-up`, payload: {} }) },
  'POST /v1/accounts/{id}/payments/{paymentId}/refund': {
    access: 'admin', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/payments/pay_${'0'.repeat(24)}/refund`, payload: {} }),
  },
  'POST /v1/accounts/{id}/top-ups': { access: 'billing:manage', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/top-ups`, payload: { amount: '0' } }) },
  'GET /v1/accounts/{id}/workspaces': { access: 'account:read', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/workspaces` }) },
  'POST /v1/accounts/{id}/workspaces': {
    access: 'members:manage', ok: 201, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/workspaces`, payload: { name: 'Matrix' } }),
  },
  'DELETE /v1/accounts/{id}/workspaces/{workspace_id}': {
    access: 'members:manage', request: async (f) => ({ url: `/v1/accounts/${f.account.id}/workspaces/ws_${'0'.repeat(24)}` }),
  },
  'GET /v1/dead-letters/counts': { access: 'admin', ok: 200, request: async () => ({ url: '/v1/dead-letters/counts' }) },
  // The gate: the account is in the body, judged in the handler (a tenant's, through its provisioner).
  'POST /v1/authorize': {
    access: 'usage:write',
    request: async (f) => ({
      url: '/v1/authorize', payload: { account_id: f.account.id, product: GATE_PRODUCT, max_quantity: '1' }, headers: { 'idempotency-key': uid('gate') },
    }),
  },
  'POST /v1/holds/{id}/release': { access: 'usage:write', ok: 200, request: async (f) => ({ url: `/v1/holds/${await newHold(f)}/release` }) },
  // No Stripe-Signature: refused by the route itself (never 401/403), whoever calls.
  'POST /v1/stripe/webhook': { access: 'public', request: async () => ({ url: '/v1/stripe/webhook', payload: { id: 'evt_matrix' } }) },
};

/** What each caller must get from a route: an exact status, with the envelope's code for refusals. */
function expected(name: string, route: Route, caller: Caller): string {
  if (route.access !== 'public' && (caller === 'revoked' || caller === 'no key' || caller === 'malformed')) return '401 UNAUTHORIZED';
  if ((MATRIX[route.access] as readonly Caller[]).includes(caller)) return route.ok === undefined ? 'allowed' : String(route.ok);
  // Keys that may send usage, for an account that is not theirs: each such event is refused on its own.
  if (name === 'POST /v1/events' && (caller === 'other account' || caller === 'other tenant')) return '202 event FORBIDDEN';
  return '403 FORBIDDEN';
}

/** What a caller got: the status, the envelope's code of a refusal, the code of a refused event. */
function outcome(name: string, route: Route, res: { statusCode: number; json(): unknown }): string {
  if (res.statusCode === 401 || res.statusCode === 403) return `${res.statusCode} ${(res.json() as { error: { code: string } }).error.code}`;
  // A bare 500 is a bug whoever calls (4xx is the caller's, 503 a dependency's).
  if (route.ok === undefined) return res.statusCode === 500 ? '500' : 'allowed';
  if (name === 'POST /v1/events' && res.statusCode === 202) {
    const { rejected } = res.json() as { rejected: { code: string }[] };
    return rejected.length === 0 ? '202' : `202 event ${rejected.map((r) => r.code).join(',')}`;
  }
  return String(res.statusCode);
}

const test = ingestTest();

/** The account of the calls, its tenant, and a key of every kind of caller. */
async function callers(app: FastifyInstance, pool: Pool): Promise<{ fixture: Fixture; headers: Record<Caller, Record<string, string>> }> {
  const account = await createAccount(app);
  const other = await createAccount(app);
  const plan = 'test-no-gift-usd-prepaid'; // made by createAccount
  const f: Fixture = { app, account, plan, tenant: '' };
  f.tenant = await idOf(call(f, 'POST', '/v1/tenants', { name: 'Matrix tenant', default_plan_id: plan }));
  const otherTenant = await idOf(call(f, 'POST', '/v1/tenants', { name: 'Another tenant', default_plan_id: plan }));
  expect((await call(f, 'PUT', `/v1/prices/${GATE_PRODUCT}`, { unit: 'request', unit_price: '0.01' })).statusCode).toBe(200);
  const grant = await app.inject({
    method: 'POST', url: `/v1/accounts/${account.id}/grants`, headers: { ...admin, 'idempotency-key': uid('grant') }, payload: { kind: 'purchased', amount: '100' },
  });
  expect(grant.statusCode).toBe(201);
  // Accounts join a tenant when it provisions them; here, by hand.
  await pool.query('UPDATE accounts SET tenant_id = $1 WHERE id = $2', [f.tenant, account.id]);
  const keyOf = async (url: string, payload?: unknown) => {
    const res = await call(f, 'POST', url, payload);
    expect(res.statusCode, res.body).toBe(201);
    return (res.json() as { id: string; api_key: string });
  };
  const memberKey = async (role: string) => {
    const member = await idOf(call(f, 'POST', `/v1/accounts/${account.id}/members`, { email: `${uid(role)}@example.com`, role }));
    return (await keyOf(`/v1/accounts/${account.id}/keys`, { kind: 'member', member_id: member })).api_key;
  };
  const revoked = await keyOf(`/v1/accounts/${account.id}/keys`);
  expect((await call(f, 'DELETE', `/v1/accounts/${account.id}/keys/${revoked.id}`)).statusCode).toBe(200);
  const headers: Record<Caller, Record<string, string>> = {
    operator: admin,
    owner: bearer(account.api_key),
    admin: bearer(await memberKey('admin')),
    billing: bearer(await memberKey('billing')),
    member: bearer(await memberKey('member')),
    service: bearer((await keyOf(`/v1/accounts/${account.id}/keys`, { kind: 'service' })).api_key),
    tenant: bearer((await keyOf(`/v1/tenants/${f.tenant}/keys`)).api_key),
    'other account': bearer(other.api_key),
    'other tenant': bearer((await keyOf(`/v1/tenants/${otherTenant}/keys`)).api_key),
    revoked: bearer(revoked.api_key),
    'no key': {},
    malformed: { authorization: `Token ${ADMIN_KEY}` }, // the admin key, in a scheme that is not Bearer
  };
  return { fixture: f, headers };
}

describe('authorization matrix', () => {
  test('every route of the OpenAPI document has a row here, and declares the access of its row', async ({ ingest: t }) => {
    await t.app.ready();
    const doc = t.app.swagger() as { paths: Record<string, Record<string, { 'x-access'?: string }>> };
    const declared = Object.fromEntries(Object.entries(doc.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([m, op]) => [`${m.toUpperCase()} ${path}`, op['x-access'] ?? 'none declared'])));
    expect(declared).toEqual(Object.fromEntries(Object.entries(ROUTES).map(([name, r]) => [name, r.access])));
  });

  test('answers every caller of every route as the matrix says', async ({ ingest: t }) => {
    const { fixture, headers } = await callers(t.app, t.stack.pool);

    const want: Record<string, Record<Caller, string>> = {};
    const got: Record<string, Record<Caller, string>> = {};
    for (const [name, route] of Object.entries(ROUTES)) {
      const method = name.slice(0, name.indexOf(' ')) as Method;
      want[name] = {} as Record<Caller, string>;
      got[name] = {} as Record<Caller, string>;
      for (const caller of CALLERS) {
        const { url, payload, headers: more } = await route.request(fixture);
        const res = await t.app.inject({ method, url, headers: { ...headers[caller], ...more }, ...(payload === undefined ? {} : { payload: payload as object }) });
        got[name][caller] = outcome(name, route, res);
        want[name][caller] = expected(name, route, caller);
      }
    }
    expect(got).toEqual(want);
  });
});
