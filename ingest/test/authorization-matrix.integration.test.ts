import { describe, expect } from 'vitest';
import { ADMIN_KEY, admin, bearer, createAccount, ingestTest, injector, uid, type TestIngest } from './support.js';

// Every route of the OpenAPI document, called by every kind of caller. A route added to the API
// without a row here fails this file: each route declares who may call it.

/** Who a route lets through; everyone else gets 403, and a caller without a valid key 401. */
type Who =
  | 'admin' // the admin key only
  | 'account' // the admin key, and an account key for its own account
  | 'any key'; // any valid key (POST /v1/events then judges each event's account on its own)

interface Fixture {
  app: TestIngest['app'];
  /** The account the calls are about; `own` is its key, `other` another account's. */
  account: { id: string; api_key: string };
}

interface Route {
  who: Who;
  /** The status of an allowed call: the request below is valid, so nothing else may answer. */
  ok: number;
  /** A valid request; the routes that revoke a key are given a fresh key each call. */
  request(f: Fixture): Promise<{ url: string; payload?: unknown; headers?: Record<string, string> }>;
}

const newKeyId = async (f: Fixture) => {
  const res = await injector(f.app)('POST', `/v1/accounts/${f.account.id}/keys`, admin);
  return (res.json() as { id: string }).id;
};

const newAccountId = async (f: Fixture) => {
  const res = await injector(f.app)('POST', '/v1/accounts', admin, { email: `${uid('closing')}@example.com`, currency: 'USD', billing_mode: 'prepaid' });
  return (res.json() as { id: string }).id;
};

const newWebhookId = async (f: Fixture) => {
  const res = await injector(f.app)('POST', `/v1/accounts/${f.account.id}/webhooks`, admin, { url: 'http://127.0.0.1:9/matrix' });
  return (res.json() as { id: string }).id;
};

/** A notification of the account to replay: the one a fresh grant writes. */
const newNotificationId = async (f: Fixture) => {
  const inject = injector(f.app);
  await inject('POST', `/v1/accounts/${f.account.id}/grants`, { ...admin, 'idempotency-key': uid('grant') }, { kind: 'purchased', amount: '1' });
  const res = await inject('GET', `/v1/accounts/${f.account.id}/notifications`, admin);
  return (res.json() as { notifications: { id: string }[] }).notifications[0]!.id;
};

const ROUTES: Record<string, Route> = {
  'POST /v1/events': {
    who: 'any key', ok: 202,
    request: async (f) => ({
      url: '/v1/events',
      payload: [{ id: uid(), account_id: f.account.id, product: 'gpt-tokens', quantity: '1', timestamp: new Date().toISOString() }],
    }),
  },
  'POST /v1/accounts': {
    who: 'admin', ok: 201,
    request: async () => ({ url: '/v1/accounts', payload: { email: `${uid('m')}@example.com`, currency: 'USD', billing_mode: 'prepaid' } }),
  },
  'POST /v1/accounts/{id}/grants': {
    who: 'admin', ok: 201,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/grants`, payload: { kind: 'purchased', amount: '1' }, headers: { 'idempotency-key': uid('grant') } }),
  },
  // A fresh account each call: closing the fixture's would change every row after this one.
  'DELETE /v1/accounts/{id}': { who: 'admin', ok: 200, request: async (f) => ({ url: `/v1/accounts/${await newAccountId(f)}` }) },
  'GET /v1/plans': { who: 'admin', ok: 200, request: async () => ({ url: '/v1/plans' }) },
  'PUT /v1/plans/{id}': {
    who: 'admin', ok: 201,
    request: async () => ({ url: `/v1/plans/${uid('plan')}`, payload: { name: 'Matrix', currency: 'USD', billing_mode: 'prepaid' } }),
  },
  'GET /v1/accounts/{id}/balance': { who: 'account', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/balance` }) },
  'GET /v1/accounts/{id}/transactions': { who: 'account', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/transactions` }) },
  'GET /v1/accounts/{id}/transactions.csv': { who: 'account', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/transactions.csv` }) },
  'GET /v1/prices': { who: 'any key', ok: 200, request: async () => ({ url: '/v1/prices' }) },
  'PUT /v1/prices/{product}': {
    who: 'admin', ok: 200,
    request: async () => ({ url: `/v1/prices/${uid('matrix')}`, payload: { unit: 'token', unit_price: '0.001' } }),
  },
  'POST /v1/credits/projections/usage-summary': {
    who: 'account', ok: 200,
    request: async (f) => ({ url: '/v1/credits/projections/usage-summary', payload: { account_id: f.account.id } }),
  },
  'POST /v1/accounts/{id}/keys': { who: 'admin', ok: 201, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/keys` }) },
  'GET /v1/accounts/{id}/keys': { who: 'account', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/keys` }) },
  'DELETE /v1/accounts/{id}/keys/{keyId}': {
    who: 'account', ok: 200,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/keys/${await newKeyId(f)}` }),
  },
  'POST /v1/accounts/{id}/keys/{keyId}/rotate': {
    who: 'admin', ok: 201,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/keys/${await newKeyId(f)}/rotate` }),
  },
  'POST /v1/accounts/{id}/webhooks': {
    who: 'account', ok: 201,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/webhooks`, payload: { url: 'http://127.0.0.1:9/matrix' } }),
  },
  'GET /v1/accounts/{id}/webhooks': { who: 'account', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/webhooks` }) },
  'DELETE /v1/accounts/{id}/webhooks/{webhookId}': {
    who: 'account', ok: 200,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/webhooks/${await newWebhookId(f)}` }),
  },
  'GET /v1/accounts/{id}/notifications': { who: 'account', ok: 200, request: async (f) => ({ url: `/v1/accounts/${f.account.id}/notifications` }) },
  'POST /v1/accounts/{id}/notifications/{notificationId}/replay': {
    who: 'account', ok: 202,
    request: async (f) => ({ url: `/v1/accounts/${f.account.id}/notifications/${await newNotificationId(f)}/replay` }),
  },
};

const CALLERS = ['admin', 'own', 'other', 'revoked', 'none', 'malformed'] as const;
type Caller = (typeof CALLERS)[number];

/** What each caller must get from a route: an exact status, with the envelope's code for refusals. */
function expected(route: Route, caller: Caller): string {
  if (caller === 'revoked' || caller === 'none' || caller === 'malformed') return '401 UNAUTHORIZED';
  const allowed = caller === 'admin' || route.who === 'any key' || (route.who === 'account' && caller === 'own');
  return allowed ? String(route.ok) : '403 FORBIDDEN';
}

const test = ingestTest();

describe('authorization matrix', () => {
  test('declares who may call every route of the OpenAPI document, and nothing else', async ({ ingest: t }) => {
    await t.app.ready();
    const doc = t.app.swagger() as { paths: Record<string, Record<string, unknown>> };
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`));
    expect(documented.sort()).toEqual(Object.keys(ROUTES).sort());
  });

  test('answers every caller of every route as its row declares', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const account = await createAccount(t.app);
    const other = await createAccount(t.app);
    const revokedKey = (await inject('POST', `/v1/accounts/${account.id}/keys`, admin)).json() as { id: string; api_key: string };
    expect((await inject('DELETE', `/v1/accounts/${account.id}/keys/${revokedKey.id}`, admin)).statusCode).toBe(200);
    const headers: Record<Caller, Record<string, string>> = {
      admin,
      own: bearer(account.api_key),
      other: bearer(other.api_key),
      revoked: bearer(revokedKey.api_key),
      none: {},
      malformed: { authorization: `Token ${ADMIN_KEY}` }, // the admin key, in a scheme that is not Bearer
    };
    const fixture: Fixture = { app: t.app, account };

    const want: Record<string, Record<Caller, string>> = {};
    const got: Record<string, Record<Caller, string>> = {};
    for (const [name, route] of Object.entries(ROUTES)) {
      const method = name.slice(0, name.indexOf(' ')) as 'GET' | 'POST' | 'PUT' | 'DELETE';
      want[name] = {} as Record<Caller, string>;
      got[name] = {} as Record<Caller, string>;
      for (const caller of CALLERS) {
        const { url, payload, headers: more } = await route.request(fixture);
        const res = await inject(method, url, { ...headers[caller], ...more }, payload);
        const refused = res.statusCode === 401 || res.statusCode === 403;
        got[name][caller] = refused ? `${res.statusCode} ${(res.json() as { error: { code: string } }).error.code}` : String(res.statusCode);
        want[name][caller] = expected(route, caller);
      }
    }
    expect(got).toEqual(want);
  });
});
