// The scheduler alone (`npx tsx ledger/src/scheduler-main.ts`), for a deployment that runs the
// services one by one; `npm start` runs it inside its one process (deploy/pipeline.ts).
import type { z } from 'zod';
import { BaseConfig, ConfigError, loadConfig } from '@meterstream/platform/config';
import { createKafka } from '@meterstream/platform/kafka';
import { createLogger } from '@meterstream/platform/logger';
import { migratePostgres } from '@meterstream/platform/migrate';
import { createPool } from '@meterstream/platform/postgres';
import { createRedis } from '@meterstream/platform/redis';
import { BalanceCache } from './balance-cache.js';
import { stripeFromConfig } from '@meterstream/platform/stripe';
import { NotifyConfig, notificationDelivery } from './notifications/config.js';
import { AutoTopUpConfig, autoTopUpCharging, startScheduler } from './scheduler.js';

const APP_NAME = 'meterstream-scheduler';
const SchedulerConfig = BaseConfig.extend({ ...NotifyConfig.shape, ...AutoTopUpConfig.shape });
let config: z.infer<typeof SchedulerConfig>;
try {
  config = loadConfig(SchedulerConfig, process.env);
} catch (e) {
  if (!(e instanceof ConfigError)) throw e;
  console.error(e.message);
  process.exit(1);
}
const log = createLogger('scheduler', config.LOG_LEVEL);
await migratePostgres(config.DATABASE_URL, log);
const pool = createPool(config.DATABASE_URL, 4, { applicationName: APP_NAME, log, timeouts: config });
const redis = createRedis(config.REDIS_URL, { connectionName: APP_NAME, log, timeouts: config });
const scheduler = await startScheduler({
  databaseUrl: config.DATABASE_URL, kafkaTopicPrefix: config.KAFKA_TOPIC_PREFIX, pool,
  cache: new BalanceCache(redis, config.REDIS_PREFIX), kafka: createKafka(config.KAFKA_BROKERS, APP_NAME, log, config), log,
  notifications: notificationDelivery(config),
  ...autoTopUpCharging(config, stripeFromConfig(config)),
});
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => {
    log.info({ signal }, 'scheduler stopping after the running jobs');
    void scheduler.stop().then(async () => {
      await pool.end();
      redis.disconnect();
      process.exit(0);
    });
  });
}
