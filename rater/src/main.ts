import { loadConfig } from '@meterstream/schemas/config';
import { createLogger } from '@meterstream/schemas/logger';
import { createPool } from '@meterstream/schemas/postgres';
import { createRedis } from '@meterstream/schemas/redis';
import { createKafka } from '@meterstream/schemas/kafka';
import { BalanceCache } from '@meterstream/schemas/ledger/balance-cache';
import { RaterConfig } from './config.js';
import { startRater } from './rater.js';

const config = loadConfig(RaterConfig);
const log = createLogger('rater', config.LOG_LEVEL);
const pool = createPool(config.DATABASE_URL, config.RATER_CONCURRENCY + 3);
const redis = createRedis(config.REDIS_URL);
const kafka = createKafka(config.KAFKA_BROKERS, 'meterstream-rater', log);
const starting = startRater({ config, pool, cache: new BalanceCache(redis, config.REDIS_PREFIX), kafka, log });

// Handlers go in before the start completes: a SIGTERM during start-up still stops cleanly.
let stopping = false;
async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  log.info({ signal }, 'rater stopping: finishing the current batch');
  await (await starting).stop();
  await pool.end();
  redis.disconnect();
  log.info('rater stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));

await starting;
log.info({ group: config.RATER_GROUP_ID }, 'rater started');
