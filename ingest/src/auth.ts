import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Logger } from '@meterstream/platform/logger';
import { listen, type PgListener } from '@meterstream/platform/pg-listen';
import { inTransaction, type Pool, type PoolClient } from '@meterstream/platform/postgres';
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

const KEY_PREFIX = 'msk_';
const POSITIVE_CACHE_MAX = 10_000;
/** Postgres sends a key's hash here when its row changes (migration 004). */
export const API_KEYS_CHANNEL = 'api_keys_changed';

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/** What the key routes show of a key: never the secret, which is shown once at creation. */
export interface ApiKeyRecord {
  id: string;
  account_id: string;
  created_at: string;
  revoked_at: string | null;
}

interface KeyOwner {
  accountId: string;
  keyId: string;
}

interface PendingLookup {
  stale: boolean;
  row: Promise<KeyOwner | undefined>;
}

interface KeyRow {
  id: string;
  account_id: string;
  created_at: Date;
  revoked_at: Date | null;
}

const toRecord = (r: KeyRow): ApiKeyRecord => ({
  id: r.id, account_id: r.account_id, created_at: r.created_at.toISOString(), revoked_at: r.revoked_at?.toISOString() ?? null,
});

export class KeyNotFoundError extends Error {
  override readonly name = 'KeyNotFoundError';
}
export class KeyRevokedError extends Error {
  override readonly name = 'KeyRevokedError';
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
    this.adminHash = sha256(adminKey);
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

  /** Creates a key for the account inside the caller's transaction; the plain key is never stored. */
  async create(client: PoolClient, accountId: string): Promise<ApiKeyRecord & { api_key: string }> {
    const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
    const { rows } = await client.query<KeyRow>(
      'INSERT INTO api_keys (id, key_hash, account_id) VALUES ($1, $2, $3) RETURNING id, account_id, created_at, revoked_at',
      [`key_${randomBytes(12).toString('hex')}`, sha256(key).toString('hex'), accountId],
    );
    return { ...toRecord(rows[0]!), api_key: key };
  }

  async issue(client: PoolClient, accountId: string): Promise<string> {
    return (await this.create(client, accountId)).api_key;
  }

  /** The account's keys, oldest first; null when the account does not exist. */
  async list(accountId: string): Promise<ApiKeyRecord[] | null> {
    const { rows } = await this.pool.query<KeyRow | { id: null }>(
      `SELECT k.id, k.account_id, k.created_at, k.revoked_at
         FROM accounts a LEFT JOIN api_keys k ON k.account_id = a.id
        WHERE a.id = $1 ORDER BY k.created_at, k.id`,
      [accountId],
    );
    if (rows.length === 0) return null;
    return rows.flatMap((r) => (r.id === null ? [] : [toRecord(r)]));
  }

  /** Idempotent: revoking a revoked key answers its first revocation. */
  async revoke(accountId: string, keyId: string): Promise<ApiKeyRecord> {
    const { rows } = await this.pool.query<KeyRow & { key_hash: string }>(
      `UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE account_id = $1 AND id = $2
       RETURNING id, account_id, created_at, revoked_at, key_hash`,
      [accountId, keyId],
    );
    const row = rows[0];
    if (!row) throw new KeyNotFoundError(`account ${accountId} has no key ${keyId}`);
    // Other instances hear it from Postgres; this one need not wait for its own notification.
    this.evict(row.key_hash);
    return toRecord(row);
  }

  /** A new key for the account and the old one revoked, in one transaction. */
  async rotate(accountId: string, keyId: string): Promise<{ revoked: ApiKeyRecord; created: ApiKeyRecord & { api_key: string } }> {
    const { revoked, hash, created } = await inTransaction(this.pool, async (c) => {
      const { rows } = await c.query<KeyRow & { key_hash: string }>(
        'SELECT id, account_id, created_at, revoked_at, key_hash FROM api_keys WHERE account_id = $1 AND id = $2 FOR UPDATE',
        [accountId, keyId],
      );
      const old = rows[0];
      if (!old) throw new KeyNotFoundError(`account ${accountId} has no key ${keyId}`);
      if (old.revoked_at) throw new KeyRevokedError(`key ${keyId} was revoked at ${old.revoked_at.toISOString()}; create a new key instead`);
      const done = await c.query<KeyRow>(
        'UPDATE api_keys SET revoked_at = now() WHERE key_hash = $1 RETURNING id, account_id, created_at, revoked_at',
        [old.key_hash],
      );
      return { revoked: toRecord(done.rows[0]!), hash: old.key_hash, created: await this.create(c, accountId) };
    });
    this.evict(hash);
    return { revoked, created };
  }

  async principalFor(key: string): Promise<Principal | null> {
    const hash = sha256(key);
    if (timingSafeEqual(hash, this.adminHash)) return { kind: 'admin' };
    if (!key.startsWith(KEY_PREFIX)) return null;
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
    const { rows } = await this.pool.query<{ account_id: string; id: string }>(
      'SELECT account_id, id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL',
      [hex],
    );
    const owner = rows[0] && { accountId: rows[0].account_id, keyId: rows[0].id };
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
