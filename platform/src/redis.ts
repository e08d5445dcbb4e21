import { Redis } from 'ioredis';
import { CLIENT_TIMEOUT_DEFAULTS, type ClientTimeouts } from './config.js';
import { createLogger, type Logger } from './logger.js';

export type { Redis };

export interface RedisOptions {
  /** CLIENT SETNAME, so operators can find a service's connections in CLIENT LIST. */
  connectionName?: string;
  log?: Logger;
  /** Any of BaseConfig's REDIS_* timeouts (a service passes its whole config); the rest default. */
  timeouts?: Partial<Pick<ClientTimeouts, 'REDIS_CONNECT_TIMEOUT_MS' | 'REDIS_COMMAND_TIMEOUT_MS'>>;
}

/**
 * Redis is a cache: when it is down, commands fail within REDIS_COMMAND_TIMEOUT_MS (also while
 * queued for a reconnection) so that callers fall back to Postgres instead of waiting on it.
 */
export function createRedis(url: string, opts: RedisOptions = {}): Redis {
  const t = { ...CLIENT_TIMEOUT_DEFAULTS, ...opts.timeouts };
  const log = opts.log ?? createLogger(opts.connectionName ?? 'redis');
  const redis = new Redis(url, {
    enableAutoPipelining: true,
    connectionName: opts.connectionName,
    connectTimeout: t.REDIS_CONNECT_TIMEOUT_MS,
    commandTimeout: t.REDIS_COMMAND_TIMEOUT_MS,
    maxRetriesPerRequest: 1,
  });
  // ioredis reports every failed reconnection attempt; one warning per outage is enough.
  let down = false;
  redis.on('error', (err: Error) => {
    if (down) return log.debug({ err: err.message }, 'Redis still unreachable');
    down = true;
    log.warn({ err: err.message, url: redactedUrl(url) }, 'Redis unreachable; retrying in the background');
  });
  redis.on('ready', () => {
    if (down) log.info({ url: redactedUrl(url) }, 'Redis reachable again');
    down = false;
  });
  return redis;
}

function redactedUrl(url: string): string {
  const u = new URL(url);
  if (u.password) u.password = '***';
  return u.toString();
}
