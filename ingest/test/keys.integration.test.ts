import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@meterstream/platform/logger';
import { loadConfig } from '@meterstream/platform/config';
import { waitFor } from '../../tests/support/processes.js';
import { buildApp } from '../src/app.js';
import { IngestConfig } from '../src/config.js';
import { UsageEventProducer } from '../src/producer-client.js';
import { ADMIN_KEY, admin, bearer, createAccount, openIngest, type TestIngest } from './support.js';

// Cached keys would live this long without the notifications: anything faster is their doing.
const LONG_TTL = { API_KEY_CACHE_TTL_MS: '600000' };

let t: TestIngest;
/** A second ingest instance on the same database: its key cache is its own. */
let other: FastifyInstance;
let producer: UsageEventProducer;
beforeAll(async () => {
  t = await openIngest('ingest-keys', LONG_TTL);
  const config = loadConfig(IngestConfig, { ...t.stack.env, ADMIN_API_KEY: ADMIN_KEY, ...LONG_TTL });
  producer = await UsageEventProducer.connect(t.stack.kafka, { topic: t.stack.topics.events, lingerMs: 0 });
  other = await buildApp({
    config, pool: t.stack.pool, cache: t.stack.cache, producer, ch: t.ch.ch, chDatabase: t.ch.database,
    log: createLogger('ingest-keys-b', config.LOG_LEVEL),
  });
});
afterAll(async () => {
  await other?.close();
  await producer?.close();
  await t?.close();
});

const keysUrl = (account: string) => `/v1/accounts/${account}/keys`;
const get = (app: FastifyInstance, url: string, key: string) => app.inject({ method: 'GET', url, headers: bearer(key) });
/** What another instance answers for the key, on a route every key of the account may call. */
const statusOn = async (app: FastifyInstance, account: string, key: string) => (await get(app, keysUrl(account), key)).statusCode;

async function keyIdOf(account: string, key: string): Promise<string> {
  const listed = await get(t.app, keysUrl(account), key);
  return (listed.json() as { keys: { id: string; current: boolean }[] }).keys.find((k) => k.current)!.id;
}

describe('API keys', () => {
  it('lists ids, kinds and dates, never the secrets; more keys are created, each shown once', async () => {
    const acct = await createAccount(t.app);
    const created = await t.app.inject({ method: 'POST', url: keysUrl(acct.id), headers: admin });
    expect(created.statusCode).toBe(201);
    const second = created.json() as { id: string; api_key: string; revoked_at: null };
    expect(second).toMatchObject({ account_id: acct.id, revoked_at: null });
    expect(second.api_key).toMatch(/^msk_/);

    const listed = await get(t.app, keysUrl(acct.id), second.api_key);
    expect(listed.statusCode).toBe(200);
    const keys = (listed.json() as { keys: Record<string, unknown>[] }).keys;
    expect(keys.map((k) => [k.revoked_at, k.current])).toEqual([[null, false], [null, true]]);
    expect(keys[1]!.id).toBe(second.id);
    expect(Object.keys(keys[0]!).sort()).toEqual(['account_id', 'created_at', 'current', 'id', 'kind', 'member_id', 'revoked_at', 'role', 'tenant_id']);
    // Without a body, a key of the account's owner: as the key POST /v1/accounts returned.
    expect(keys.map((k) => [k.kind, k.role])).toEqual([['member', 'owner'], ['member', 'owner']]);
    expect(listed.body).not.toContain(acct.api_key);
    expect(listed.body).not.toContain(second.api_key);
  });

  it('a revocation through one instance is refused by the other within a second', async () => {
    const acct = await createAccount(t.app);
    expect(await statusOn(other, acct.id, acct.api_key)).toBe(200); // now in the other instance's cache
    const keyId = await keyIdOf(acct.id, acct.api_key);

    const revoked = await t.app.inject({ method: 'DELETE', url: `${keysUrl(acct.id)}/${keyId}`, headers: admin });
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ id: keyId, revoked_at: expect.any(String) });
    expect(await statusOn(t.app, acct.id, acct.api_key)).toBe(401);
    await waitFor('the other instance to refuse the revoked key', async () => (await statusOn(other, acct.id, acct.api_key)) === 401, 1000);

    const again = await t.app.inject({ method: 'DELETE', url: `${keysUrl(acct.id)}/${keyId}`, headers: admin });
    expect(again.json().revoked_at).toBe(revoked.json().revoked_at);
    const listed = await t.app.inject({ method: 'GET', url: keysUrl(acct.id), headers: admin });
    expect(listed.json().keys).toEqual([expect.objectContaining({ id: keyId, revoked_at: revoked.json().revoked_at, current: false })]);
  });

  it('a key deleted from the table by hand stops working everywhere too', async () => {
    const acct = await createAccount(t.app);
    expect(await statusOn(other, acct.id, acct.api_key)).toBe(200);
    await t.stack.pool.query('DELETE FROM api_keys WHERE account_id = $1', [acct.id]);
    await waitFor('the other instance to refuse the deleted key', async () => (await statusOn(other, acct.id, acct.api_key)) === 401, 1000);
  });

  it('an account key may revoke itself, on every instance', async () => {
    const acct = await createAccount(t.app);
    const keyId = await keyIdOf(acct.id, acct.api_key);
    expect(await statusOn(other, acct.id, acct.api_key)).toBe(200);
    const self = await t.app.inject({ method: 'DELETE', url: `${keysUrl(acct.id)}/${keyId}`, headers: bearer(acct.api_key) });
    expect(self.statusCode).toBe(200);
    expect(await statusOn(t.app, acct.id, acct.api_key)).toBe(401);
    await waitFor('the other instance to refuse the self-revoked key', async () => (await statusOn(other, acct.id, acct.api_key)) === 401, 1000);
  });

  it('rotation issues a working key and revokes the old one on every instance', async () => {
    const acct = await createAccount(t.app);
    const keyId = await keyIdOf(acct.id, acct.api_key);
    expect(await statusOn(other, acct.id, acct.api_key)).toBe(200);

    const rotated = await t.app.inject({ method: 'POST', url: `${keysUrl(acct.id)}/${keyId}/rotate`, headers: admin });
    expect(rotated.statusCode).toBe(201);
    const fresh = rotated.json() as { id: string; api_key: string; replaced: { id: string; revoked_at: string } };
    expect(fresh.id).not.toBe(keyId);
    expect(fresh.replaced).toMatchObject({ id: keyId, revoked_at: expect.any(String) });
    expect(await statusOn(other, acct.id, fresh.api_key)).toBe(200);
    await waitFor('the other instance to refuse the rotated key', async () => (await statusOn(other, acct.id, acct.api_key)) === 401, 1000);
  });

  it("rotating a member's key keeps its member and role; a tenant's revoked key is refused on every instance", async () => {
    const acct = await createAccount(t.app);
    const member = (await t.app.inject({
      method: 'POST', url: `/v1/accounts/${acct.id}/members`, headers: admin, payload: { email: 'rotating@example.com', role: 'billing' },
    })).json() as { id: string };
    const key = (await t.app.inject({ method: 'POST', url: keysUrl(acct.id), headers: admin, payload: { kind: 'member', member_id: member.id } })).json() as { id: string };
    const rotated = await t.app.inject({ method: 'POST', url: `${keysUrl(acct.id)}/${key.id}/rotate`, headers: bearer(acct.api_key) });
    expect(rotated.statusCode).toBe(201);
    expect(rotated.json()).toMatchObject({ kind: 'member', member_id: member.id, role: 'billing', replaced: { id: key.id, revoked_at: expect.any(String) } });

    const tenant = (await t.app.inject({ method: 'POST', url: '/v1/tenants', headers: admin, payload: { name: 'Keys', default_plan_id: 'test-no-gift-usd-prepaid' } })).json() as { id: string };
    const tenantKey = (await t.app.inject({ method: 'POST', url: `/v1/tenants/${tenant.id}/keys`, headers: admin })).json() as { id: string; api_key: string };
    const prices = (app: FastifyInstance) => get(app, '/v1/prices', tenantKey.api_key).then((r) => r.statusCode);
    expect(await prices(other)).toBe(200);
    const revoked = await t.app.inject({ method: 'DELETE', url: `/v1/tenants/${tenant.id}/keys/${tenantKey.id}`, headers: admin });
    expect(revoked.json()).toMatchObject({ id: tenantKey.id, tenant_id: tenant.id, revoked_at: expect.any(String) });
    expect(await prices(t.app)).toBe(401);
    await waitFor("the other instance to refuse the tenant's revoked key", async () => (await prices(other)) === 401, 1000);
  });

  it('after its LISTEN connection is terminated, an instance reconnects and hears revocations again', async () => {
    const acct = await createAccount(t.app);
    const keyId = await keyIdOf(acct.id, acct.api_key);
    expect(await statusOn(other, acct.id, acct.api_key)).toBe(200);
    // Exactly the two LISTEN connections this file's instances opened.
    const before = [t.app.apiKeys.listenerPid, other.apiKeys.listenerPid];
    const killed = await t.stack.pool.query<{ done: boolean }>('SELECT pg_terminate_backend(pid) AS done FROM unnest($1::int[]) AS pid', [before]);
    expect(killed.rows.map((r) => r.done)).toEqual([true, true]);
    await waitFor('both instances listening on new connections', async () => {
      const now = [t.app.apiKeys.listenerPid, other.apiKeys.listenerPid];
      return now.every((pid, i) => pid !== undefined && pid !== before[i]);
    }, 10_000);
    expect(await statusOn(other, acct.id, acct.api_key)).toBe(200);

    await t.app.inject({ method: 'DELETE', url: `${keysUrl(acct.id)}/${keyId}`, headers: admin });
    await waitFor('the reconnected instance to refuse the revoked key', async () => (await statusOn(other, acct.id, acct.api_key)) === 401, 1000);
  });
});
