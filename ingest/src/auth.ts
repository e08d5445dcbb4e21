import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import type { MemberRole } from '@meterstream/schemas';
import type { Logger } from '@meterstream/platform/logger';
import { listen, type PgListener } from '@meterstream/platform/pg-listen';
import type { Pool } from '@meterstream/platform/postgres';
import { closeAccount, type AccountRecord } from '@meterstream/platform/stores/accounts';
import {
  API_KEY_PREFIX, findKeyOwner, hashApiKey, revokeApiKey, rotateApiKey,
  type ChangedApiKey, type IssuedApiKey, type KeyOwner, type KeyScope,
} from '@meterstream/platform/stores/api-keys';
import { changeMemberRole, removeMember, type MemberRecord } from '@meterstream/platform/stores/members';
import { tenantsOfAccounts } from '@meterstream/platform/stores/tenants';
import type { IngestConfig } from './config.js';
import { ApiError } from './errors.js';

/**
 * Who is calling (README, "People, roles and keys"): the operator (the admin key); a member of an
 * account, with its member's role; an account's service key; or a tenant's service key, which
 * reaches the accounts of its tenant.
 */
export type Principal =
  | { kind: 'admin' }
  | { kind: 'account'; key: 'member'; accountId: string; keyId: string; memberId: string; role: MemberRole }
  | { kind: 'account'; key: 'service'; accountId: string; keyId: string }
  | { kind: 'tenant'; tenantId: string; keyId: string };

/**
 * What a route lets through (the README's matrix); the operator passes every policy.
 * - public: no API key is read at all (a webhook from a payment provider, verified by its signature).
 * - admin: the operator only.
 * - any key: every valid key (the price list).
 * - usage:write: service keys (account or tenant) and the owner, admin and member roles: send usage, call the gate.
 * - billing:read: owner, admin, billing, and tenant keys: balance, transactions, usage summary, notifications, webhooks.
 * - billing:manage: owner, admin, billing: limits, thresholds, auto top-up, buying credits, webhooks (seed 004).
 * - members:manage: owner and admin: members and keys (only an owner acts on owners: the routes check it).
 * - account:read: every role, and tenant keys: the account's non-billing data (the account, its members).
 */
export const POLICIES = {
  public: { roles: [], service: false, tenant: false, who: 'anyone: the route authenticates its caller itself (a signature), never by API key' },
  admin: { roles: [], service: false, tenant: false, who: 'the operator (the admin key)' },
  'any key': { roles: ['owner', 'admin', 'billing', 'member'], service: true, tenant: true, who: 'any valid key' },
  'usage:write': {
    roles: ['owner', 'admin', 'member'], service: true, tenant: true,
    who: 'a service key of the account or of its tenant, or a member of the account with the owner, admin or member role',
  },
  'billing:read': {
    roles: ['owner', 'admin', 'billing'], service: false, tenant: true,
    who: 'a member of the account with the owner, admin or billing role, or a service key of its tenant',
  },
  'billing:manage': { roles: ['owner', 'admin', 'billing'], service: false, tenant: false, who: 'a member of the account with the owner, admin or billing role' },
  'members:manage': { roles: ['owner', 'admin'], service: false, tenant: false, who: 'a member of the account with the owner or admin role' },
  'account:read': { roles: ['owner', 'admin', 'billing', 'member'], service: false, tenant: true, who: 'any member of the account, or a service key of its tenant' },
} as const satisfies Record<string, { roles: readonly MemberRole[]; service: boolean; tenant: boolean; who: string }>;
export type Policy = keyof typeof POLICIES;

/**
 * Where a route's account is: `path` (its :id, checked before the body is read), or `handler`
 * (in the body or per event: the handler calls ApiKeys.assertAccount or canAccessAccount).
 * Only account-scoped policies have one; public, admin and any key have none.
 */
export type AccountIn = 'path' | 'handler';

export interface Access {
  policy: Policy;
  account: AccountIn | null;
}

/** A route's onRequest hook made by ApiKeys.allow: carries its access, which the OpenAPI document shows. */
export type AccessHook = ((req: FastifyRequest) => Promise<void>) & { access: Access };

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
  interface FastifyInstance {
    /** The key resolver of this app: its caches and counters, for operators and tests. */
    apiKeys: ApiKeys;
  }
}

const POSITIVE_CACHE_MAX = 10_000;
/** Postgres sends a key's hash here when its row changes (migration 004). */
export const API_KEYS_CHANNEL = 'api_keys_changed';

interface PendingLookup {
  stale: boolean;
  row: Promise<KeyOwner | undefined>;
}

export interface ApiKeysOptions {
  log: Logger;
  /** How long a found key is trusted without asking Postgres (the backstop when LISTEN is down). */
  cacheTtlMs: number;
  /** How long an unknown key is remembered, and how many at most. */
  negativeTtlMs: number;
  negativeMax: number;
  now?: () => number;
}

const toPrincipal = (o: KeyOwner): Principal => {
  switch (o.kind) {
    case 'member': return { kind: 'account', key: 'member', accountId: o.accountId, keyId: o.keyId, memberId: o.memberId, role: o.role };
    case 'service': return { kind: 'account', key: 'service', accountId: o.accountId, keyId: o.keyId };
    case 'tenant': return { kind: 'tenant', tenantId: o.tenantId, keyId: o.keyId };
  }
};

const describePrincipal = (p: Principal): string => {
  if (p.kind === 'tenant') return `a service key of tenant ${p.tenantId}`;
  if (p.kind === 'account') return p.key === 'member' ? `a member key with the ${p.role} role` : 'an account service key';
  return 'the admin key';
};

/**
 * Resolves bearer keys to principals; keys live hashed in Postgres (migrations 002, 004, 011).
 * Lookups are cached in memory, found and unknown keys alike; every change to a key's row reaches
 * every instance through LISTEN api_keys_changed and evicts it, so a revocation (also of a removed
 * member's or a closed account's keys) and a member's new role take effect at once, and within the
 * positive TTL on an instance whose LISTEN connection is down.
 */
export class ApiKeys {
  private lookups = 0;
  private readonly adminHash: Buffer;
  private readonly known = new Map<string, KeyOwner & { until: number }>();
  private readonly unknown = new Map<string, number>();
  // Lookups in flight, one per key however many requests wait on it; an eviction meanwhile
  // marks it stale, so what it read before the change is not cached.
  private readonly pending = new Map<string, PendingLookup>();
  // A tenant key's requests: the tenant of each account they named, read once per request.
  private readonly accountTenants = new WeakMap<FastifyRequest, Map<string, Promise<string | null | undefined>>>();
  private listener: PgListener | undefined;
  private readonly now: () => number;

  constructor(private readonly pool: Pool, adminKey: string, private readonly opts: ApiKeysOptions) {
    this.adminHash = hashApiKey(adminKey);
    this.now = opts.now ?? Date.now;
  }

  /** Starts evicting on notifications; resolves after the first LISTEN attempt, successful or not. */
  async listen(databaseUrl: string, connectTimeoutMs?: number): Promise<void> {
    this.listener = listen({
      connectionString: databaseUrl,
      channel: API_KEYS_CHANNEL,
      log: this.opts.log,
      connectTimeoutMs,
      applicationName: 'meterstream-ingest-keys',
      onNotification: (hash) => this.evict(hash),
      // Notifications sent while the connection was down are gone: forget everything cached.
      onListening: () => this.evictAll(),
    });
    await this.listener.firstAttempt;
  }

  /** Postgres key lookups made so far (cache misses): lets an operator or a test see the caches work. */
  get dbLookups(): number {
    return this.lookups;
  }

  /** The backend pid of the LISTEN connection (pg_stat_activity); undefined while it is down. */
  get listenerPid(): number | undefined {
    return this.listener?.backendPid;
  }

  async close(): Promise<void> {
    await this.listener?.close();
  }

  private evict(hash: string): void {
    this.known.delete(hash);
    this.unknown.delete(hash);
    const inFlight = this.pending.get(hash);
    if (inFlight) inFlight.stale = true;
  }

  private evictAll(): void {
    this.known.clear();
    this.unknown.clear();
    for (const inFlight of this.pending.values()) inFlight.stale = true;
  }

  /** Revokes the key (see revokeApiKey); this instance evicts it at once, the others on its notification. */
  async revoke(scope: KeyScope, keyId: string): Promise<ChangedApiKey> {
    const revoked = await revokeApiKey(this.pool, scope, keyId);
    this.evict(revoked.keyHash);
    return revoked;
  }

  /** Closes the account (see closeAccount), evicting its keys as revoke does. */
  async closeAccount(accountId: string): Promise<AccountRecord> {
    const { account, revokedKeyHashes } = await closeAccount(this.pool, accountId);
    for (const hash of revokedKeyHashes) this.evict(hash);
    return account;
  }

  /** Replaces the key (see rotateApiKey), evicting the old one as revoke does. */
  async rotate(scope: KeyScope, keyId: string): Promise<{ revoked: ChangedApiKey; created: IssuedApiKey }> {
    const rotated = await rotateApiKey(this.pool, scope, keyId);
    this.evict(rotated.revoked.keyHash);
    return rotated;
  }

  /** Removes the member and revokes its keys (see removeMember), evicting them as revoke does. */
  async removeMember(accountId: string, memberId: string): Promise<MemberRecord> {
    const { member, keyHashes } = await removeMember(this.pool, accountId, memberId);
    for (const hash of keyHashes) this.evict(hash);
    return member;
  }

  /** Changes the member's role (see changeMemberRole): its keys act with the new role at once. */
  async changeRole(accountId: string, memberId: string, role: MemberRole): Promise<MemberRecord> {
    const { member, keyHashes } = await changeMemberRole(this.pool, accountId, memberId, role);
    for (const hash of keyHashes) this.evict(hash);
    return member;
  }

  async principalFor(key: string): Promise<Principal | null> {
    const hash = hashApiKey(key);
    if (timingSafeEqual(hash, this.adminHash)) return { kind: 'admin' };
    if (!key.startsWith(API_KEY_PREFIX)) return null;
    const hex = hash.toString('hex');
    const now = this.now();
    const hit = this.known.get(hex);
    if (hit && hit.until > now) return toPrincipal(hit);
    if ((this.unknown.get(hex) ?? 0) > now) return null;

    const row = await this.lookUp(hex);
    return row ? toPrincipal(row) : null;
  }

  private lookUp(hex: string): Promise<KeyOwner | undefined> {
    const inFlight = this.pending.get(hex);
    if (inFlight) return inFlight.row;
    const lookup = { stale: false } as PendingLookup;
    lookup.row = this.fetchOwner(hex, lookup).finally(() => this.pending.delete(hex));
    this.pending.set(hex, lookup);
    return lookup.row;
  }

  private async fetchOwner(hex: string, lookup: { stale: boolean }): Promise<KeyOwner | undefined> {
    this.lookups++;
    const owner = await findKeyOwner(this.pool, hex);
    if (lookup.stale) return owner;
    const now = this.now();
    if (owner) remember(this.known, hex, { ...owner, until: now + this.opts.cacheTtlMs }, POSITIVE_CACHE_MAX);
    else remember(this.unknown, hex, now + this.opts.negativeTtlMs, this.opts.negativeMax);
    return owner;
  }

  /**
   * onRequest hook: any valid key. Runs before the body is read, so an unauthenticated upload is
   * never parsed. Routes declare who may call them with allow(); this is what allow() builds on.
   */
  readonly authenticate = async (req: FastifyRequest): Promise<void> => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) throw new ApiError(401, 'UNAUTHORIZED', 'missing or malformed Authorization header, expected "Bearer <api key>"');
    const principal = await this.principalFor(m[1]!);
    if (!principal) throw new ApiError(401, 'UNAUTHORIZED', 'invalid API key');
    req.principal = principal;
  };

  /**
   * The onRequest hook of a route that `policy` lets through (see POLICIES): one line per route
   * declares who may call it. With `account: 'path'` (the default of account-scoped policies) the
   * route's :id is the account, checked here too; with 'handler' the handler checks the account
   * it reads from the body (assertAccount).
   */
  allow(policy: Policy, opts: { account?: AccountIn } = {}): AccessHook {
    const rule = POLICIES[policy];
    const access: Access = { policy, account: policy === 'public' || policy === 'admin' || policy === 'any key' ? null : (opts.account ?? 'path') };
    const hook = async (req: FastifyRequest): Promise<void> => {
      if (policy === 'public') return;
      await this.authenticate(req);
      const p = req.principal;
      if (p.kind === 'admin') return;
      const allowed = p.kind === 'tenant' ? rule.tenant : p.key === 'service' ? rule.service : (rule.roles as readonly MemberRole[]).includes(p.role);
      if (policy === 'admin') throw new ApiError(403, 'FORBIDDEN', 'this route needs the admin API key');
      if (!allowed) throw new ApiError(403, 'FORBIDDEN', `this route needs ${rule.who} (${policy}); this is ${describePrincipal(p)}`);
      if (access.account === 'path') await this.assertAccount(req, (req.params as { id: string }).id);
    };
    return Object.assign(hook, { access });
  }

  /** onRequest hook for routes only the admin key may call: allow('admin'). */
  readonly requireAdmin = this.allow('admin');

  /**
   * Refuses (403) unless the request's principal may act on the account: its own account, or an
   * account of its tenant (read once per request).
   */
  async assertAccount(req: FastifyRequest, accountId: string): Promise<void> {
    const p = req.principal;
    const tenantId = p.kind === 'tenant' ? await this.tenantOf(req, accountId) : undefined;
    if (!canAccessAccount(p, { id: accountId, tenantId })) {
      throw new ApiError(403, 'FORBIDDEN', `this API key cannot access account ${accountId}`);
    }
  }

  private tenantOf(req: FastifyRequest, accountId: string): Promise<string | null | undefined> {
    let seen = this.accountTenants.get(req);
    if (!seen) this.accountTenants.set(req, (seen = new Map()));
    let tenant = seen.get(accountId);
    if (!tenant) seen.set(accountId, (tenant = tenantsOfAccounts(this.pool, [accountId]).then((m) => m.get(accountId))));
    return tenant;
  }
}

/**
 * The app's key resolver, listening for key changes until the app closes; `listen: false` only
 * where no request is ever served (generating the OpenAPI document needs no Postgres). Every
 * route's access (its allow() hook) is written into the OpenAPI document as x-access.
 */
export async function installApiKeys(
  app: FastifyInstance, pool: Pool, config: IngestConfig, log: Logger, { listen = true } = {},
): Promise<ApiKeys> {
  const keys = new ApiKeys(pool, config.ADMIN_API_KEY, {
    log,
    cacheTtlMs: config.API_KEY_CACHE_TTL_MS,
    negativeTtlMs: config.API_KEY_NEGATIVE_CACHE_TTL_MS,
    negativeMax: config.API_KEY_NEGATIVE_CACHE_MAX,
  });
  if (listen) await keys.listen(config.DATABASE_URL, config.PG_CONNECT_TIMEOUT_MS);
  app.decorate('apiKeys', keys);
  app.addHook('onClose', () => keys.close());
  app.addHook('onRoute', documentAccess);
  return keys;
}

/** Shows the route's access in its OpenAPI operation; a route whose account is in its path must be under /v1/accounts/:id. */
function documentAccess(route: RouteOptions): void {
  const access = [route.onRequest ?? []].flat().map((h) => (h as Partial<AccessHook>).access).find((a) => a !== undefined);
  if (!access) return;
  if (access.account === 'path' && !route.url.startsWith('/v1/accounts/:id')) {
    throw new Error(`${route.method} ${route.url}: policy ${access.policy} reads the account from /v1/accounts/:id; elsewhere use { account: 'handler' }`);
  }
  const schema = (route.schema ?? {}) as { description?: string };
  const { who } = POLICIES[access.policy];
  route.schema = {
    ...schema,
    'x-access': access.policy,
    description: `${schema.description ? `${schema.description}\n\n` : ''}Access (${access.policy}): ${who}${access.account === null ? '' : ', or the operator'}.`,
  } as RouteOptions['schema'];
}

/** Bounded insertion-ordered cache: when full, the oldest entry makes room. */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  if (max <= 0) return;
  map.delete(key);
  if (map.size >= max) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/**
 * Whether the principal may act on the account: the operator any, an account key its own, a
 * tenant key the accounts of its tenant; `tenantId` (the account's tenant) is read only for a
 * tenant key, and a tenant key without it is refused.
 */
export function canAccessAccount(principal: Principal, account: { id: string; tenantId?: string | null }): boolean {
  if (principal.kind === 'admin') return true;
  if (principal.kind === 'tenant') return account.tenantId != null && account.tenantId === principal.tenantId;
  return principal.accountId === account.id;
}

/** canAccessAccount without the account's tenant: tenant keys are refused (use ApiKeys.assertAccount). */
export function canAccess(principal: Principal, accountId: string): boolean {
  return canAccessAccount(principal, { id: accountId });
}

/** Synchronous check for handlers of routes not yet on allow(): tenant keys are refused. */
export function assertCanAccess(principal: Principal, accountId: string): void {
  if (!canAccess(principal, accountId)) {
    throw new ApiError(403, 'FORBIDDEN', `this API key cannot access account ${accountId}`);
  }
}

/**
 * Only an owner acts on owners: an admin may not key, rotate, revoke, promote to owner, demote or
 * remove an owner, which would let it take the account over. The operator and owners may.
 */
export function assertMayActOn(principal: Principal, role: MemberRole | null): void {
  if (role === 'owner' && principal.kind === 'account' && principal.key === 'member' && principal.role !== 'owner') {
    throw new ApiError(403, 'FORBIDDEN', 'only an owner (or the operator) may act on an owner of the account');
  }
}
