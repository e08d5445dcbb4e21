import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '@meterstream/platform/logger';
import { listen, type PgListener } from '@meterstream/platform/pg-listen';
import type { Pool } from '@meterstream/platform/postgres';
import { closeAccount, type AccountRecord } from '@meterstream/platform/stores/accounts';
import {
  API_KEY_PREFIX, findKeyOwner, hashApiKey, revokeApiKey, rotateApiKey, type ChangedApiKey, type IssuedApiKey, type KeyOwner,
} from '@meterstream/platform/stores/api-keys';
import type { IngestConfig } from './config.js';
import { ApiError } from './errors.js';

export type Principal = { kind: 'admin' } | { kind: 'account'; accountId: string; keyId: string };

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

/**
 * Resolves bearer keys to principals; account keys live hashed in Postgres (migrations 002, 004).
 * Lookups are cached in memory, found and unknown keys alike; every change to a key's row reaches
 * every instance through LISTEN api_keys_changed and evicts it, so a revocation takes effect at
 * once, and within the positive TTL on an instance whose LISTEN connection is down.
 */
export class ApiKeys {
  private lookups = 0;
  private readonly adminHash: Buffer;
  private readonly known = new Map<string, KeyOwner & { until: number }>();
  private readonly unknown = new Map<string, number>();
  // Lookups in flight, one per key however many requests wait on it; an eviction meanwhile
  // marks it stale, so what it read before the change is not cached.
  private readonly pending = new Map<string, PendingLookup>();
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
  async revoke(accountId: string, keyId: string): Promise<ChangedApiKey> {
    const revoked = await revokeApiKey(this.pool, accountId, keyId);
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
  async rotate(accountId: string, keyId: string): Promise<{ revoked: ChangedApiKey; created: IssuedApiKey }> {
    const rotated = await rotateApiKey(this.pool, accountId, keyId);
    this.evict(rotated.revoked.keyHash);
    return rotated;
  }

  async principalFor(key: string): Promise<Principal | null> {
    const hash = hashApiKey(key);
    if (timingSafeEqual(hash, this.adminHash)) return { kind: 'admin' };
    if (!key.startsWith(API_KEY_PREFIX)) return null;
    const hex = hash.toString('hex');
    const now = this.now();
    const hit = this.known.get(hex);
    if (hit && hit.until > now) return { kind: 'account', accountId: hit.accountId, keyId: hit.keyId };
    if ((this.unknown.get(hex) ?? 0) > now) return null;

    const row = await this.lookUp(hex);
    return row ? { kind: 'account', ...row } : null;
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

  /** onRequest hook: runs before the body is read, so an unauthenticated upload is never parsed. */
  readonly authenticate = async (req: FastifyRequest): Promise<void> => {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
    if (!m) throw new ApiError(401, 'UNAUTHORIZED', 'missing or malformed Authorization header, expected "Bearer <api key>"');
    const principal = await this.principalFor(m[1]!);
    if (!principal) throw new ApiError(401, 'UNAUTHORIZED', 'invalid API key');
    req.principal = principal;
  };

  /** onRequest hook for routes only the admin key may call. */
  readonly requireAdmin = async (req: FastifyRequest): Promise<void> => {
    await this.authenticate(req);
    if (req.principal.kind !== 'admin') throw new ApiError(403, 'FORBIDDEN', 'this route needs the admin API key');
  };
}

/**
 * The app's key resolver, listening for key changes until the app closes; `listen: false` only
 * where no request is ever served (generating the OpenAPI document needs no Postgres).
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
  return keys;
}

/** Bounded insertion-ordered cache: when full, the oldest entry makes room. */
function remember<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  if (max <= 0) return;
  map.delete(key);
  if (map.size >= max) map.delete(map.keys().next().value!);
  map.set(key, value);
}

/** The admin key reaches every account; an account key only its own. */
export function canAccess(principal: Principal, accountId: string): boolean {
  return principal.kind === 'admin' || principal.accountId === accountId;
}

export function assertCanAccess(principal: Principal, accountId: string): void {
  if (!canAccess(principal, accountId)) {
    throw new ApiError(403, 'FORBIDDEN', `this API key cannot access account ${accountId}`);
  }
}
