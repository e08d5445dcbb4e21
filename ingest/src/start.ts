import type { FastifyInstance } from 'fastify';
import { topicNames } from '@meterstream/schemas';
import { createClickHouse, type ClickHouseClient } from '@meterstream/platform/clickhouse';
import { createKafka, ensureTopicsOf } from '@meterstream/platform/kafka';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { EntrySweeper } from '@meterstream/ledger/entry-sweeper';
import { createLogger, type Logger } from '@meterstream/platform/logger';
import { createPool } from '@meterstream/platform/postgres';
import { createRedis } from '@meterstream/platform/redis';
import { buildApp } from './app.js';
import { NO_SINK_CLICKHOUSE, type IngestConfig } from './config.js';
import { UsageEventProducer } from './producer-client.js';

export interface StartOptions {
  config: IngestConfig;
  log?: Logger;
  /**
   * The ClickHouse client of the sink running in this same process (what `npm start` passes):
   * embedded chDB can be opened by one process only, so that is the only way to read it here.
   */
  ch?: ClickHouseClient;
}

export interface RunningIngest {
  app: FastifyInstance;
  url: string;
  /** Stops accepting requests, lets in-flight ones finish, flushes the producer, closes clients. */
  close(): Promise<void>;
}

const APP_NAME = 'meterstream-ingest';

export async function start({ config, log = createLogger('ingest', config.LOG_LEVEL), ch }: StartOptions): Promise<RunningIngest> {
  const kafka = createKafka(config.KAFKA_BROKERS, APP_NAME, log, config);
  await ensureTopicsOf(kafka, config.KAFKA_TOPIC_PREFIX, config.KAFKA_EVENTS_PARTITIONS);
  // No linger: requests arrive as batches already, and while one send is in flight the next
  // requests' events coalesce into the following batch anyway.
  const producer = await UsageEventProducer.connect(kafka, {
    topic: topicNames(config.KAFKA_TOPIC_PREFIX).events,
    lingerMs: 0,
    maxAgeDays: config.EVENT_MAX_AGE_DAYS,
  });
  const pool = createPool(config.DATABASE_URL, 10, { applicationName: APP_NAME, log, timeouts: config });
  const redis = createRedis(config.REDIS_URL, { connectionName: APP_NAME, log, timeouts: config });
  // A chDB of its own would be an empty one: without the sink beside it, only a server helps.
  const ownCh = !ch && config.CLICKHOUSE_URL ? await createClickHouse({ url: config.CLICKHOUSE_URL, chdbPath: config.CHDB_PATH }) : null;
  if (!ch && !ownCh) log.warn(`usage-summary disabled (answers 503): ${NO_SINK_CLICKHOUSE}`);
  // Publishes the ledger entries a grant committed but could not get onto Kafka in time.
  const sweeper = new EntrySweeper(pool, producer.sendRecord, topicNames(config.KAFKA_TOPIC_PREFIX).entries, log).start();
  const closeClients = async () => {
    try {
      await sweeper.stop();
      await producer.close();
    } finally {
      await Promise.all([pool.end(), redis.quit(), ownCh?.close()]);
    }
  };
  try {
    const app = await buildApp({
      config, pool, producer, log, redis,
      cache: new BalanceCache(redis, config.REDIS_PREFIX),
      ch: ch ?? ownCh,
      chDatabase: config.CLICKHOUSE_DATABASE,
    });
    const url = await app.listen({ host: config.INGEST_HOST, port: config.INGEST_PORT });
    return {
      app,
      url,
      async close() {
        await app.close();
        await closeClients();
      },
    };
  } catch (e) {
    await closeClients().catch(() => undefined);
    throw e;
  }
}
