import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { createPool } from '@meterstream/platform/postgres';
import { createRedis } from '@meterstream/platform/redis';
import { createKafka } from '@meterstream/platform/kafka';
import { retryWithBackoff, RetryAborted } from '@meterstream/platform/backoff';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { RaterConfig } from './config.js';
import { startRater, type Rater } from './rater.js';

const config = loadConfig(RaterConfig);
const log = createLogger('rater', config.LOG_LEVEL);
const pool = createPool(config.DATABASE_URL, config.RATER_CONCURRENCY + 3, { applicationName: 'meterstream-rater', log, timeouts: config });
const redis = createRedis(config.REDIS_URL, { connectionName: 'meterstream-rater', log, timeouts: config });
const kafka = createKafka(config.KAFKA_BROKERS, 'meterstream-rater', log, config);
const shutdown = new AbortController();

// Kafka or Postgres may be down or restarting when the rater starts: wait for them here rather
// than exiting, which without a supervisor would stop rating for good.
const starting: Promise<Rater | undefined> = retryWithBackoff(
  () => startRater({
    config, pool, cache: new BalanceCache(redis, config.REDIS_PREFIX), kafka, log,
    // A consumer kafkajs will not restart: exit, a fresh rater starts (Postgres holds the position).
    onFatal: () => process.exit(1),
  }),
  {
    initialMs: 500,
    maxMs: 10_000,
    signal: shutdown.signal,
    onError: (err, attempt, delayMs) => log.warn({ err, attempt, delayMs }, 'rater could not start (Kafka or Postgres unreachable); retrying'),
  },
).catch((err: unknown) => {
  if (err instanceof RetryAborted) return undefined;
  throw err;
});

// Handlers go in before the start completes: a SIGTERM during start-up still stops cleanly.
let stopping = false;
async function stop(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'rater stopping: finishing the current batch');
  // Leaving the group needs Kafka; an unreachable broker must not keep the process forever.
  setTimeout(() => {
    log.error({ afterMs: config.RATER_SHUTDOWN_TIMEOUT_MS }, 'rater did not stop in time; exiting (Postgres holds the position)');
    process.exit(1);
  }, config.RATER_SHUTDOWN_TIMEOUT_MS).unref();
  shutdown.abort();
  await (await starting)?.stop();
  await pool.end();
  redis.disconnect();
  log.info('rater stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void stop('SIGTERM'));
process.on('SIGINT', () => void stop('SIGINT'));

if (await starting) log.info({ group: config.RATER_GROUP_ID }, 'rater started');
