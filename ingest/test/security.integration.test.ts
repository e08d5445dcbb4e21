import { describe, expect } from 'vitest';
import { admin, bearer, createAccount, eventsTest, injector, uid } from './support.js';

// Who may call what, with the exact answers a caller gets. authorization-matrix checks every route
// of the OpenAPI document against every kind of caller; these are the cases with more to say.
const test = eventsTest();

const eventOf = (accountId: string, over: Record<string, unknown> = {}) => ({
  id: uid(), account_id: accountId, product: 'gpt-tokens', quantity: '12.5', timestamp: new Date().toISOString(), ...over,
});

describe('POST /v1/accounts', () => {
  test('needs the admin key: 401 without a key, 403 with an account key', async ({ ingest: t, acct }) => {
    const inject = injector(t.app);
    const payload = { email: 'x@example.com', currency: 'USD', billing_mode: 'prepaid' };
    const none = await inject('POST', '/v1/accounts', {}, payload);
    expect(none.statusCode).toBe(401);
    expect(none.json().error.code).toBe('UNAUTHORIZED');
    const scoped = await inject('POST', '/v1/accounts', bearer(acct.api_key), payload);
    expect(scoped.statusCode).toBe(403);
    expect(scoped.json()).toEqual({ error: { code: 'FORBIDDEN', message: 'this route needs the admin API key' } });
  });
});

describe('account-scoped routes', () => {
  test("forbid another account's key on the balance and allow the admin key", async ({ ingest: t, acct: a }) => {
    const inject = injector(t.app);
    const b = await createAccount(t.app);
    const other = await inject('GET', `/v1/accounts/${a.id}/balance`, bearer(b.api_key));
    expect(other.statusCode).toBe(403);
    expect(other.json()).toEqual({ error: { code: 'FORBIDDEN', message: `this API key cannot access account ${a.id}` } });
    expect((await inject('GET', `/v1/accounts/${a.id}/balance`, admin)).statusCode).toBe(200);
  });

  test("answer 403 for another account's usage summary", async ({ ingest: t, acct: a }) => {
    const b = await createAccount(t.app);
    const forbidden = await injector(t.app)('POST', '/v1/credits/projections/usage-summary', bearer(b.api_key), { account_id: a.id });
    expect(forbidden.statusCode).toBe(403);
    expect(forbidden.json()).toEqual({ error: { code: 'FORBIDDEN', message: `this API key cannot access account ${a.id}` } });
  });

  test("let a member-role key list nothing of the keys and mint none; the owner's key does both; nobody touches another account", async ({ ingest: t, acct }) => {
    const inject = injector(t.app);
    const stranger = await createAccount(t.app);
    const keysUrl = `/v1/accounts/${acct.id}/keys`;
    const added = await inject('POST', `/v1/accounts/${acct.id}/members`, bearer(acct.api_key), { email: `${uid('m')}@example.com`, role: 'member' });
    expect(added.statusCode, added.body).toBe(201);
    const minted = await inject('POST', keysUrl, bearer(acct.api_key), { kind: 'member', member_id: (added.json() as { id: string }).id });
    expect(minted.statusCode, minted.body).toBe(201);
    const memberKey = (minted.json() as { api_key: string }).api_key;
    const listed = await inject('GET', keysUrl, bearer(acct.api_key));
    expect(listed.statusCode).toBe(200);
    const keyId = (listed.json() as { keys: { id: string }[] }).keys[0]!.id;

    for (const [method, url] of [['GET', keysUrl], ['POST', keysUrl], ['POST', `${keysUrl}/${keyId}/rotate`]] as const) {
      const res = await inject(method, url, bearer(memberKey));
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('FORBIDDEN');
    }
    const foreign = await inject('DELETE', `${keysUrl}/${keyId}`, bearer(stranger.api_key));
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json().error.code).toBe('FORBIDDEN');
    // Nothing of the above revoked the key.
    expect((await inject('GET', keysUrl, bearer(acct.api_key))).statusCode).toBe(200);
  });
});

describe('prices', () => {
  test('only the admin key sets prices; any key reads them, no key does not', async ({ ingest: t, acct }) => {
    const inject = injector(t.app);
    const put = await inject('PUT', '/v1/prices/anything', bearer(acct.api_key), { unit: 'request', unit_price: '1' });
    expect(put.statusCode).toBe(403);
    expect(put.json()).toEqual({ error: { code: 'FORBIDDEN', message: 'this route needs the admin API key' } });
    expect((await inject('GET', '/v1/prices?q=anything', bearer(acct.api_key))).json()).toEqual({ prices: [] });
    expect((await inject('GET', '/v1/prices', {})).statusCode).toBe(401);
  });
});

describe('POST /v1/events', () => {
  test('answers 401 with the envelope for a missing or unknown key', async ({ ingest: t, acct }) => {
    for (const headers of [{}, { authorization: 'Basic abc' }, bearer('msk_not-a-real-key'), bearer('nope')]) {
      const res = await t.app.inject({ method: 'POST', url: '/v1/events', headers, payload: eventOf(acct.id) });
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } });
    }
  });

  test("rejects another account's events sent with an account key; the admin key may send for anyone", async ({ ingest: t, topic, acct }) => {
    const post = (payload: unknown, headers: Record<string, string>) =>
      t.app.inject({ method: 'POST', url: '/v1/events', headers, payload: payload as object });
    const other = await createAccount(t.app);
    const mine = eventOf(acct.id);
    const theirs = eventOf(other.id);
    const res = await post([mine, theirs], bearer(acct.api_key));
    expect(res.json()).toEqual({
      accepted: [mine.id],
      rejected: [{ index: 1, id: theirs.id, code: 'FORBIDDEN', message: `this API key cannot send events for account ${other.id}` }],
    });
    const byAdmin = await post(theirs, admin);
    expect(byAdmin.json()).toEqual({ accepted: [theirs.id], rejected: [] });
    // A later event of the same account lands on the same partition after both requests' events.
    const marker = eventOf(other.id);
    expect((await post(marker, admin)).json().accepted).toEqual([marker.id]);
    await topic.waitFor([marker.id]);
    expect(topic.messages.filter((x) => x.key === other.id).map((x) => x.value.id)).toEqual([theirs.id, marker.id]);
  });
});
