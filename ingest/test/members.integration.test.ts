import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '@meterstream/platform/logger';
import { loadConfig } from '@meterstream/platform/config';
import { waitFor } from '../../tests/support/processes.js';
import { buildApp } from '../src/app.js';
import { IngestConfig } from '../src/config.js';
import { UsageEventProducer } from '../src/producer-client.js';
import { ADMIN_KEY, admin, bearer, createAccount, openIngest, uid, type TestIngest } from './support.js';

// Cached keys would live this long without the notifications: anything faster is their doing.
const LONG_TTL = { API_KEY_CACHE_TTL_MS: '600000' };

let t: TestIngest;
/** A second ingest instance on the same database: its key cache is its own. */
let other: FastifyInstance;
let producer: UsageEventProducer;
beforeAll(async () => {
  t = await openIngest('ingest-members', LONG_TTL);
  const config = loadConfig(IngestConfig, { ...t.stack.env, ADMIN_API_KEY: ADMIN_KEY, ...LONG_TTL });
  producer = await UsageEventProducer.connect(t.stack.kafka, { topic: t.stack.topics.events, lingerMs: 0 });
  other = await buildApp({
    config, pool: t.stack.pool, cache: t.stack.cache, producer, ch: t.ch.ch, chDatabase: t.ch.database,
    log: createLogger('ingest-members-b', config.LOG_LEVEL),
  });
});
afterAll(async () => {
  await other?.close();
  await producer?.close();
  await t?.close();
});

type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';
const send = (method: Method, url: string, key: string | Record<string, string>, payload?: unknown, app: FastifyInstance = t.app) =>
  app.inject({ method, url, headers: typeof key === 'string' ? bearer(key) : key, ...(payload === undefined ? {} : { payload: payload as object }) });

interface MemberJson { id: string; email: string; role: string; removed_at: string | null }

/** An account, and a member of each role with a key of its own (made by the owner). */
async function team() {
  const acct = await createAccount(t.app);
  const add = async (role: string) => {
    const res = await send('POST', `/v1/accounts/${acct.id}/members`, acct.api_key, { email: `${uid(role)}@Example.com`, role });
    expect(res.statusCode, res.body).toBe(201);
    const member = res.json() as MemberJson;
    const key = await send('POST', `/v1/accounts/${acct.id}/keys`, acct.api_key, { kind: 'member', member_id: member.id });
    expect(key.statusCode, key.body).toBe(201);
    return { ...member, key: (key.json() as { api_key: string }).api_key };
  };
  return { acct, admin: await add('admin'), billing: await add('billing'), member: await add('member') };
}

const event = (accountId: string) => [{ id: uid(), account_id: accountId, product: 'gpt-tokens', quantity: '1', timestamp: new Date().toISOString() }];
const transactions = (acct: string, key: string, app?: FastifyInstance) => send('GET', `/v1/accounts/${acct}/transactions`, key, undefined, app);

describe('members and roles', () => {
  it('an account starts with its owner; members are added with roles, one per email', async () => {
    const acct = await createAccount(t.app, { email: `${uid('owner')}@example.com` });
    const listed = await send('GET', `/v1/accounts/${acct.id}/members`, acct.api_key);
    expect(listed.statusCode).toBe(200);
    const [owner] = (listed.json() as { members: MemberJson[] }).members;
    expect(listed.json().members).toHaveLength(1);
    expect(owner).toMatchObject({ role: 'owner', removed_at: null, id: expect.stringMatching(/^mem_[0-9a-f]{24}$/) });

    const email = `${uid('ann')}@example.com`;
    const added = await send('POST', `/v1/accounts/${acct.id}/members`, acct.api_key, { email, role: 'billing' });
    expect(added.statusCode).toBe(201);
    expect(added.json()).toMatchObject({ email, role: 'billing', account_id: acct.id });
    const twice = await send('POST', `/v1/accounts/${acct.id}/members`, acct.api_key, { email: email.toUpperCase(), role: 'member' });
    expect(twice.statusCode).toBe(409);
    expect(twice.json().error.code).toBe('MEMBER_EXISTS');
    const after = await send('GET', `/v1/accounts/${acct.id}/members`, acct.api_key);
    expect((after.json() as { members: MemberJson[] }).members.map((m) => [m.email, m.role])).toEqual([[owner!.email, 'owner'], [email, 'billing']]);

    // The key POST /v1/accounts returned is the owner's member key.
    const keys = await send('GET', `/v1/accounts/${acct.id}/keys`, acct.api_key);
    expect(keys.json().keys).toEqual([expect.objectContaining({ kind: 'member', member_id: owner!.id, role: 'owner', current: true })]);
  });

  it('billing reads transactions but sends no usage; member sends usage but gets 403 on billing data', async () => {
    const { acct, billing, member } = await team();
    expect((await transactions(acct.id, billing.key)).statusCode).toBe(200);
    const refusedEvents = await send('POST', '/v1/events', billing.key, event(acct.id));
    expect(refusedEvents.statusCode).toBe(403);

    const posted = await send('POST', '/v1/events', member.key, event(acct.id));
    expect(posted.statusCode).toBe(202);
    expect(posted.json()).toMatchObject({ accepted: [expect.any(String)], rejected: [] });
    const refused = await transactions(acct.id, member.key);
    expect(refused.statusCode).toBe(403);
    expect(refused.json()).toEqual({ error: { code: 'FORBIDDEN', message: expect.stringContaining('billing:read') } });
    expect((await send('GET', `/v1/accounts/${acct.id}/balance`, member.key)).statusCode).toBe(403);
    expect((await send('GET', `/v1/accounts/${acct.id}/members`, member.key)).statusCode).toBe(200);
    expect((await send('POST', `/v1/accounts/${acct.id}/members`, member.key, { email: 'x@example.com', role: 'member' })).statusCode).toBe(403);
  });

  it('a service key sends usage and nothing else', async () => {
    const acct = await createAccount(t.app);
    const created = await send('POST', `/v1/accounts/${acct.id}/keys`, acct.api_key, { kind: 'service' });
    expect(created.json()).toMatchObject({ kind: 'service', account_id: acct.id, member_id: null, role: null });
    const service = (created.json() as { api_key: string }).api_key;
    expect((await send('POST', '/v1/events', service, event(acct.id))).statusCode).toBe(202);
    expect((await transactions(acct.id, service)).statusCode).toBe(403);
    expect((await send('GET', `/v1/accounts/${acct.id}/members`, service)).statusCode).toBe(403);
  });

  it('a new role applies to the member\'s keys at once, on every instance', async () => {
    const { acct, member } = await team();
    expect((await transactions(acct.id, member.key, other)).statusCode).toBe(403); // the key is now in the other instance's cache
    const changed = await send('PATCH', `/v1/accounts/${acct.id}/members/${member.id}`, acct.api_key, { role: 'billing' });
    expect(changed.statusCode).toBe(200);
    expect(changed.json()).toMatchObject({ id: member.id, role: 'billing' });
    expect((await transactions(acct.id, member.key)).statusCode).toBe(200);
    await waitFor('the other instance to see the new role', async () => (await transactions(acct.id, member.key, other)).statusCode === 200, 1000);
  });

  it("removing a member revokes its keys at once, on every instance; removing it again answers the removal", async () => {
    const { acct, member } = await team();
    const members = `/v1/accounts/${acct.id}/members`;
    expect((await send('GET', members, member.key, undefined, other)).statusCode).toBe(200);
    const removed = await send('DELETE', `${members}/${member.id}`, acct.api_key);
    expect(removed.statusCode).toBe(200);
    expect(removed.json()).toMatchObject({ id: member.id, removed_at: expect.any(String) });
    expect((await send('GET', members, member.key)).statusCode).toBe(401);
    await waitFor('the other instance to refuse the removed member\'s key', async () => (await send('GET', members, member.key, undefined, other)).statusCode === 401, 1000);

    const again = await send('DELETE', `${members}/${member.id}`, acct.api_key);
    expect(again.json().removed_at).toBe(removed.json().removed_at);
    const keys = (await send('GET', `/v1/accounts/${acct.id}/keys`, acct.api_key)).json() as { keys: { member_id: string; revoked_at: string | null }[] };
    expect(keys.keys.filter((k) => k.member_id === member.id)).toEqual([expect.objectContaining({ revoked_at: removed.json().removed_at })]);
    const listed = (await send('GET', members, acct.api_key)).json() as { members: MemberJson[] };
    expect(listed.members.map((m) => m.id)).not.toContain(member.id);
    const all = (await send('GET', `${members}?include_removed=true`, acct.api_key)).json() as { members: MemberJson[] };
    expect(all.members.find((m) => m.id === member.id)?.removed_at).toBe(removed.json().removed_at);
    // A removed member gets no new key, nor a new role.
    expect((await send('POST', `/v1/accounts/${acct.id}/keys`, acct.api_key, { kind: 'member', member_id: member.id })).statusCode).toBe(409);
    expect((await send('PATCH', `${members}/${member.id}`, acct.api_key, { role: 'admin' })).json().error.code).toBe('MEMBER_REMOVED');
  });

  it('the last owner cannot be removed or demoted (409); with a second owner it can', async () => {
    const acct = await createAccount(t.app);
    const members = `/v1/accounts/${acct.id}/members`;
    const owner = ((await send('GET', members, admin)).json() as { members: MemberJson[] }).members[0]!;
    for (const res of [await send('DELETE', `${members}/${owner.id}`, admin), await send('PATCH', `${members}/${owner.id}`, acct.api_key, { role: 'admin' })]) {
      expect(res.statusCode).toBe(409);
      expect(res.json().error.code).toBe('LAST_OWNER');
    }
    const second = (await send('POST', members, acct.api_key, { email: `${uid('co')}@example.com`, role: 'owner' })).json() as MemberJson;
    expect(second.role).toBe('owner');
    const demoted = await send('PATCH', `${members}/${owner.id}`, acct.api_key, { role: 'admin' });
    expect(demoted.statusCode).toBe(200);
    // The first owner's key now acts as an admin: it may no longer act on the remaining owner.
    expect((await send('DELETE', `${members}/${second.id}`, acct.api_key)).statusCode).toBe(403);
    expect((await send('DELETE', `${members}/${second.id}`, admin)).json().error.code).toBe('LAST_OWNER');
  });

  it('two concurrent removals of two owners leave one', async () => {
    const acct = await createAccount(t.app);
    const members = `/v1/accounts/${acct.id}/members`;
    const owner = ((await send('GET', members, admin)).json() as { members: MemberJson[] }).members[0]!;
    const second = (await send('POST', members, admin, { email: `${uid('co')}@example.com`, role: 'owner' })).json() as MemberJson;
    const results = await Promise.all([send('DELETE', `${members}/${owner.id}`, admin), send('DELETE', `${members}/${second.id}`, admin)]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    const left = ((await send('GET', members, admin)).json() as { members: MemberJson[] }).members;
    expect(left.map((m) => m.role)).toEqual(['owner']);
  });

  it('an admin manages members and keys but cannot act on owners', async () => {
    const { acct, admin: adm, member } = await team();
    const members = `/v1/accounts/${acct.id}/members`;
    const owner = ((await send('GET', members, adm.key)).json() as { members: MemberJson[] }).members.find((m) => m.role === 'owner')!;
    expect((await send('PATCH', `${members}/${member.id}`, adm.key, { role: 'billing' })).statusCode).toBe(200);
    expect((await send('POST', `/v1/accounts/${acct.id}/keys`, adm.key, { kind: 'member', member_id: member.id })).statusCode).toBe(201);
    for (const res of [
      await send('PATCH', `${members}/${member.id}`, adm.key, { role: 'owner' }),
      await send('POST', members, adm.key, { email: `${uid('o')}@example.com`, role: 'owner' }),
      await send('DELETE', `${members}/${owner.id}`, adm.key),
      await send('POST', `/v1/accounts/${acct.id}/keys`, adm.key, { kind: 'member', member_id: owner.id }),
      await send('POST', `/v1/accounts/${acct.id}/keys`, adm.key), // without a body: a key of the owner
    ]) {
      expect(res.statusCode).toBe(403);
      expect(res.json().error.code).toBe('FORBIDDEN');
    }
  });

  it("a tenant's service key reaches its tenant's accounts only", async () => {
    const acct = await createAccount(t.app);
    const foreign = await createAccount(t.app);
    const tenant = await send('POST', '/v1/tenants', admin, { name: 'Reseller', default_plan_id: 'test-no-gift-usd-prepaid' });
    expect(tenant.statusCode).toBe(201);
    const tenantId = (tenant.json() as { id: string }).id;
    await t.stack.pool.query('UPDATE accounts SET tenant_id = $1 WHERE id = $2', [tenantId, acct.id]);
    const key = await send('POST', `/v1/tenants/${tenantId}/keys`, admin);
    expect(key.json()).toMatchObject({ kind: 'service', tenant_id: tenantId, account_id: null });
    const tenantKey = (key.json() as { api_key: string }).api_key;
    expect((await transactions(acct.id, tenantKey)).statusCode).toBe(200);
    expect((await send('POST', '/v1/credits/projections/usage-summary', tenantKey, { account_id: acct.id })).statusCode).toBe(200);
    expect((await transactions(foreign.id, tenantKey)).statusCode).toBe(403);
    expect((await send('POST', '/v1/credits/projections/usage-summary', tenantKey, { account_id: foreign.id })).statusCode).toBe(403);
    expect((await send('POST', `/v1/accounts/${acct.id}/members`, tenantKey, { email: 'x@example.com', role: 'member' })).statusCode).toBe(403);
  });
});
