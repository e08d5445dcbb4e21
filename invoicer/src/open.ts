import { createClickHouse, type ClickHouseClient } from '@meterstream/platform/clickhouse';
import { systemClock, type Clock } from '@meterstream/platform/clock';
import { createKafka, SERIAL_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import type { Logger } from '@meterstream/platform/logger';
import { createPool } from '@meterstream/platform/postgres';
import { createRedis } from '@meterstream/platform/redis';
import { stripeFromConfig } from '@meterstream/platform/stripe';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { topicNames } from '@meterstream/schemas';
import type { InvoicerConfig } from './config.js';
import type { InvoicerDeps } from './run.js';

const APP_NAME = 'meterstream-invoicer';

/** The invoicer's clients as a process opens them (CLI, job runner), and how to close them. */
export async function openInvoicer(
  config: InvoicerConfig, log: Logger, clock: Clock = systemClock,
  // A process that already opened ClickHouse passes its client (embedded chDB: one per process); it stays open.
  shared: { ch?: ClickHouseClient } = {},
): Promise<{ deps: InvoicerDeps; close(): Promise<void> }> {
  const pool = createPool(config.DATABASE_URL, 6, { applicationName: APP_NAME, log, timeouts: config });
  const redis = createRedis(config.REDIS_URL, { connectionName: APP_NAME, log, timeouts: config });
  const cache = new BalanceCache(redis, config.REDIS_PREFIX);
  const ch = shared.ch ?? await createClickHouse({ url: config.CLICKHOUSE_URL, chdbPath: config.CHDB_PATH });
  const producer = createKafka(config.KAFKA_BROKERS, APP_NAME, log, config).producer(SERIAL_PRODUCER_CONFIG);
  await producer.connect();
  const cacheWriter = new CacheWriter(cache, pool, log, { now: () => clock.now() });
  const stripe = stripeFromConfig(config);
  const order = new WriteOrder({ pool, send: serialSender(producer), cache: cacheWriter, topics: topicNames(config.KAFKA_TOPIC_PREFIX), log, now: () => clock.now() });
  return {
    deps: {
      order, ch, database: config.CLICKHOUSE_DATABASE, log, issuer: config.INVOICE_ISSUER, gate: cache.gate,
      batchSize: config.INVOICE_BATCH_SIZE, stripeConcurrency: config.INVOICE_STRIPE_CONCURRENCY,
      ...(stripe ? { stripe } : {}),
    },
    async close() {
      cacheWriter.stop();
      await producer.disconnect();
      if (!shared.ch) await ch.close();
      await pool.end();
      redis.disconnect();
    },
  };
}
