import { createRequire } from 'node:module';
import type { FastifyInstance } from 'fastify';
import rateLimit, { type FastifyRateLimitStore, type FastifyRateLimitStoreCtor } from '@fastify/rate-limit';
import type { Logger } from '@meterstream/platform/logger';
import type { Redis } from '@meterstream/platform/redis';
import type { IngestConfig } from './config.js';
import { ApiError } from './errors.js';

type StoreCallback = Parameters<FastifyRateLimitStore['incr']>[1];

// The plugin's own stores (its index only picks one of them); the exact version pin in
// package.json keeps these paths stable, and the rate-limit tests exercise both.
const require = createRequire(import.meta.url);
const RedisStore = require('@fastify/rate-limit/store/RedisStore') as new (
  continueExceeding: boolean, exponentialBackoff: boolean, redis: Redis, key: string,
) => FastifyRateLimitStore;
const LocalStore = require('@fastify/rate-limit/store/LocalStore') as new (
  continueExceeding: boolean, exponentialBackoff: boolean, cacheSize: number,
) => FastifyRateLimitStore;

/** Accounts counted in memory at once while Redis is away (least recently seen go first). */
const LOCAL_ACCOUNTS = 10_000;
/** A slow Redis must not slow requests down: past this, the request is counted in memory. */
const REDIS_WAIT_MS = 200;

/**
 * Counts in Redis, so every ingest instance shares one budget per account; while Redis is down
 * or slow, counts in this process instead of failing or unlimiting requests.
 */
function redisWithLocalFallback(redis: Redis | undefined, keyPrefix: string, log: Logger): FastifyRateLimitStoreCtor {
  const remote = redis && new RedisStore(false, false, redis, keyPrefix);
  const local = new LocalStore(false, false, LOCAL_ACCOUNTS);
  let degraded = false;
  const setDegraded = (now: boolean, err?: unknown) => {
    if (now === degraded) return;
    degraded = now;
    if (now) log.warn({ reason: err instanceof Error ? err.message : String(err) }, 'rate limits counted in this process only: Redis does not answer');
    else log.info('rate limits counted in Redis again');
  };

  return class {
    incr(key: string, cb: StoreCallback, timeWindow: number, max: number): void {
      if (!remote || redis.status !== 'ready') {
        if (remote) setDegraded(true, new Error(`Redis connection is ${redis.status}`));
        return local.incr(key, cb, timeWindow, max);
      }
      let settled = false;
      const fallBack = (err: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        setDegraded(true, err);
        local.incr(key, cb, timeWindow, max);
      };
      const timer = setTimeout(() => fallBack(new Error(`Redis took over ${REDIS_WAIT_MS} ms`)), REDIS_WAIT_MS);
      remote.incr(key, (err, result) => {
        if (err) return fallBack(err);
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        setDegraded(false);
        cb(null, result);
      }, timeWindow, max);
    }

    child(): FastifyRateLimitStore {
      throw new Error('per-route rate limits are not used: every route shares the account budget');
    }
  };
}

/**
 * Per-account request limits on every authenticated route, and per-tenant ones for tenant service
 * keys: the hook runs after the route's own authentication hook, so the principal is known. The
 * admin key (the operator) is not limited.
 */
export async function installRateLimit(app: FastifyInstance, o: { config: IngestConfig; redis: Redis | undefined; log: Logger }): Promise<void> {
  const window = o.config.RATE_LIMIT_WINDOW_MS;
  await app.register(rateLimit, {
    hook: 'onRequest',
    max: (req) => (req.principal?.kind === 'tenant' ? o.config.RATE_LIMIT_TENANT_MAX : o.config.RATE_LIMIT_MAX),
    timeWindow: window,
    store: redisWithLocalFallback(o.redis, `${o.config.REDIS_PREFIX}ratelimit:`, o.log),
    // Account ids and tenant ids share the store: a tenant's count is kept apart by a byte no id holds.
    keyGenerator: (req) => {
      const p = req.principal;
      if (p?.kind === 'account') return p.accountId;
      return p?.kind === 'tenant' ? `tenant\u0000${p.tenantId}` : '';
    },
    allowList: (req) => req.principal?.kind !== 'account' && req.principal?.kind !== 'tenant',
    errorResponseBuilder: (req, ctx) => new ApiError(
      429, 'RATE_LIMITED',
      `this ${req.principal?.kind === 'tenant' ? 'tenant' : 'account'} may make ${ctx.max} requests per ${window / 1000} s; retry in ${ctx.after} (see the Retry-After header)`,
    ),
  });
}
