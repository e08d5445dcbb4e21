import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { Pool, PoolClient } from '@meterstream/schemas/postgres';
import { ApiError } from './errors.js';

export type Principal = { kind: 'admin' } | { kind: 'account'; accountId: string };

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal;
  }
}

const KEY_PREFIX = 'msk_';
const CACHE_TTL_MS = 60_000;
const CACHE_MAX = 10_000;

const sha256 = (text: string) => createHash('sha256').update(text).digest();

/** Resolves bearer keys to principals; account keys live hashed in Postgres (migration 002). */
export class ApiKeys {
  private readonly adminHash: Buffer;
  // Every event request authenticates: remembering recent keys keeps Postgres off that hot path.
  private readonly recent = new Map<string, { accountId: string; until: number }>();

  constructor(private readonly pool: Pool, adminKey: string) {
    this.adminHash = sha256(adminKey);
  }

  /** Creates a key for the account inside the caller's transaction; the plain key is never stored. */
  async issue(client: PoolClient, accountId: string): Promise<string> {
    const key = `${KEY_PREFIX}${randomBytes(32).toString('base64url')}`;
    await client.query('INSERT INTO api_keys (key_hash, account_id) VALUES ($1, $2)', [sha256(key).toString('hex'), accountId]);
    return key;
  }

  async principalFor(key: string): Promise<Principal | null> {
    const hash = sha256(key);
    if (timingSafeEqual(hash, this.adminHash)) return { kind: 'admin' };
    if (!key.startsWith(KEY_PREFIX)) return null;
    const hex = hash.toString('hex');
    const hit = this.recent.get(hex);
    if (hit && hit.until > Date.now()) return { kind: 'account', accountId: hit.accountId };
    const { rows } = await this.pool.query<{ account_id: string }>('SELECT account_id FROM api_keys WHERE key_hash = $1', [hex]);
    const accountId = rows[0]?.account_id;
    if (!accountId) return null;
    if (this.recent.size >= CACHE_MAX) this.recent.delete(this.recent.keys().next().value!);
    this.recent.set(hex, { accountId, until: Date.now() + CACHE_TTL_MS });
    return { kind: 'account', accountId };
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

/** The admin key reaches every account; an account key only its own. */
export function canAccess(principal: Principal, accountId: string): boolean {
  return principal.kind === 'admin' || principal.accountId === accountId;
}

export function assertCanAccess(principal: Principal, accountId: string): void {
  if (!canAccess(principal, accountId)) {
    throw new ApiError(403, 'FORBIDDEN', `this API key cannot access account ${accountId}`);
  }
}
