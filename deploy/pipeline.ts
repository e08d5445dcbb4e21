// Every service in this one process, as `npm start` and `npm run demo` run them: chDB lets one
// process open a data directory, so on the embedded default the process that hosts the sink is
// the only one that can read what it wrote, and ingest (usage summaries) has to share it.
import { loadConfig } from '@meterstream/platform/config';
import { createLogger, type Logger } from '@meterstream/platform/logger';
import { createClickHouse, type ClickHouseClient } from '@meterstream/platform/clickhouse';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { createRedis } from '@meterstream/platform/redis';
import { createKafka } from '@meterstream/platform/kafka';
import { migrateClickHouse, migratePostgres } from '@meterstream/platform/migrate';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { NotifyConfig, notificationDelivery } from '@meterstream/ledger/notifications/config';
import { AutoTopUpConfig, autoTopUpCharging, startScheduler } from '@meterstream/ledger/scheduler';
import { stripeFromConfig } from '@meterstream/platform/stripe';
import { InvoicerConfig } from '@meterstream/invoicer/config';
import { startInvoicerJobs } from '@meterstream/invoicer/jobs';
import { openInvoicer } from '@meterstream/invoicer/open';
import { start, IngestConfig, type RunningIngest } from '@meterstream/ingest';
import { startRater, RaterConfig } from '@meterstream/rater';
import { startSink, SinkConfig } from '@meterstream/sink';

export interface Pipeline {
  config: IngestConfig;
  log: Logger;
  ingest: RunningIngest;
  /** The process's one ClickHouse client (the sink's), and the database it writes. */
  ch: ClickHouseClient;
  database: string;
  /** The rater's pool; also usable for reads. */
  pool: Pool;
  /** Stops taking requests, then stops rating and sinking after their current batches, then closes the clients. */
  stop(): Promise<void>;
}

export async function startPipeline(env: NodeJS.ProcessEnv, name: string, onFatal?: (err: Error) => void): Promise<Pipeline> {
  const config = loadConfig(IngestConfig, env);
  const raterConfig = loadConfig(RaterConfig, env);
  const log = createLogger(name, config.LOG_LEVEL);
  await migratePostgres(config.DATABASE_URL, log);
  const ch = await createClickHouse({ url: config.CLICKHOUSE_URL, chdbPath: config.CHDB_PATH });
  const database = config.CLICKHOUSE_DATABASE;
  await migrateClickHouse(ch, database, log);
  const pool = createPool(config.DATABASE_URL, raterConfig.RATER_CONCURRENCY + 3, { applicationName: 'meterstream-rater', log, timeouts: config });
  const redis = createRedis(config.REDIS_URL, { connectionName: 'meterstream-rater', log, timeouts: config });
  const kafka = createKafka(config.KAFKA_BROKERS, name, log, config);
  const ingest = await start({ config, ch, log: log.child({ service: 'ingest' }) });
  const rater = await startRater({
    config: raterConfig, pool, cache: new BalanceCache(redis, config.REDIS_PREFIX), kafka, log: log.child({ service: 'rater' }), onFatal,
  });
  const sink = await startSink({
    config: loadConfig(SinkConfig, env), ch, database, kafka, log: log.child({ service: 'sink' }), onFatal,
  });
  const scheduler = await startScheduler({
    databaseUrl: config.DATABASE_URL, kafkaTopicPrefix: config.KAFKA_TOPIC_PREFIX, pool,
    cache: new BalanceCache(redis, config.REDIS_PREFIX), kafka, log: log.child({ service: 'scheduler' }),
    notifications: notificationDelivery(loadConfig(NotifyConfig, env)),
    ...autoTopUpCharging(loadConfig(AutoTopUpConfig, env), stripeFromConfig(config)),
  });
  const invoicer = await openInvoicer(loadConfig(InvoicerConfig, env), log.child({ service: 'invoicer' }), undefined, { ch });
  const invoicerJobs = await startInvoicerJobs(config.DATABASE_URL, invoicer.deps);
  return {
    config, log, ingest, ch, database, pool,
    async stop() {
      await ingest.close();
      await Promise.all([rater.stop(), sink.stop(), scheduler.stop(), invoicerJobs.stop()]);
      await invoicer.close();
      await ch.close();
      await pool.end();
      redis.disconnect();
    },
  };
}
