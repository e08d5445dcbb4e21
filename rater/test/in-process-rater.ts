import { randomBytes } from 'node:crypto';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { createRedis, type Redis } from '@meterstream/platform/redis';
import { createKafka } from '@meterstream/platform/kafka';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { RaterConfig } from '../src/config.js';
import { startRater, type Rater } from '../src/rater.js';
import type { TestStack } from '../../tests/support/stack.js';

export interface InProcessRater extends Rater {
  /** The rater's own Postgres connections carry this application_name. */
  applicationName: string;
  pool: Pool;
  redis: Redis;
}

/**
 * A rater in the test's own process, as main.ts wires it, so that a test can read its figures
 * (stats) and point it at a Redis of its own. `env` overrides the stack's environment.
 */
export async function startInProcessRater(stack: TestStack, env: Record<string, string> = {}): Promise<InProcessRater> {
  const config = loadConfig(RaterConfig, { ...stack.env, RATER_SESSION_TIMEOUT_MS: '6000', ...env });
  const applicationName = `rater-test-${randomBytes(3).toString('hex')}`;
  const log = createLogger('rater', process.env.RATER_TEST_LOG_LEVEL ?? 'warn');
  const pool = createPool(config.DATABASE_URL, config.RATER_CONCURRENCY + 3, { applicationName, log, timeouts: config });
  const redis = createRedis(config.REDIS_URL, { log, timeouts: config });
  const kafka = createKafka(config.KAFKA_BROKERS, applicationName, log, config);
  const rater = await startRater({ config, pool, cache: new BalanceCache(redis, config.REDIS_PREFIX), kafka, log });
  let stopped = false;
  return {
    applicationName, pool, redis,
    stats: rater.stats,
    get cachePending() {
      return rater.cachePending;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await rater.stop();
      await pool.end();
      redis.disconnect();
    },
  };
}
