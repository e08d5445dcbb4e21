import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { expect } from 'vitest';
import type { Admin, Kafka } from 'kafkajs';
import { BaseConfig, loadConfig } from '@meterstream/platform/config';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { createRedis, type Redis } from '@meterstream/platform/redis';
import { createKafka, ensureTopics, SERIAL_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import { createLogger } from '@meterstream/platform/logger';
import { createClickHouse, type ClickHouseClient } from '@meterstream/platform/clickhouse';
import { migrateClickHouse } from '@meterstream/platform/migrate';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { topicNames, type TopicNames } from '@meterstream/schemas';

/** The clients of one test worker: what is costly to open, shared by the stacks isolated on it. */
export interface Services {
  pool: Pool;
  redis: Redis;
  kafka: Kafka;
  admin: Admin;
  close(): Promise<void>;
}

export interface TestStack {
  /** Environment for services under test (in-process or child processes), unique to this stack. */
  env: Record<string, string>;
  config: BaseConfig;
  topics: TopicNames;
  pool: Pool;
  redis: Redis;
  cache: BalanceCache;
  kafka: Kafka;
  /** The ledger's write order on these clients and names, as a service wires it: what commands (addGrant) run on. */
  ledger: WriteOrder;
  close(): Promise<void>;
}

/**
 * The unit project runs with no service at all (vitest.config.ts): a file that opens one belongs in
 * the integration project, which the file's name decides.
 */
function requireServices(what: string): void {
  if (process.env.MS_TEST_PROJECT !== 'unit') return;
  const file = expect.getState().testPath;
  throw new Error(`${file ? basename(file) : 'this test'} opens ${what}, which the unit project does not have: name the file *.integration.test.ts`);
}

/** One Postgres pool, Redis client and Kafka client on the run's database (see global-setup.ts). */
export async function openServices(name: string): Promise<Services> {
  requireServices('Postgres, Redis and Kafka');
  const config = loadConfig(BaseConfig, process.env);
  const pool = createPool(config.DATABASE_URL, 5);
  const redis = createRedis(config.REDIS_URL);
  const kafka = createKafka(config.KAFKA_BROKERS, `test-${name}-${randomBytes(3).toString('hex')}`);
  const admin = kafka.admin();
  await admin.connect();
  return {
    pool, redis, kafka, admin,
    async close() {
      await admin.disconnect();
      await pool.end();
      redis.disconnect();
    },
  };
}

/**
 * Names private to one test or file on shared clients: its own topics, Redis prefix and consumer
 * groups. close() deletes the topics and leaves the clients open.
 */
export async function isolate(services: Services, name: string): Promise<TestStack> {
  const tag = `${name.replace(/[^\w-]/g, '_').slice(0, 40)}-${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    KAFKA_TOPIC_PREFIX: `${process.env.KAFKA_TOPIC_PREFIX ?? ''}${tag}.`,
    REDIS_PREFIX: `${process.env.REDIS_PREFIX ?? 'mst:'}${tag}:`,
    KAFKA_EVENTS_PARTITIONS: process.env.KAFKA_EVENTS_PARTITIONS ?? '4',
    RATER_GROUP_ID: `rater-${tag}`,
    SINK_GROUP_ID: `sink-${tag}`,
  };
  const config = loadConfig(BaseConfig, env);
  await ensureTopics(services.admin, config.KAFKA_TOPIC_PREFIX, config.KAFKA_EVENTS_PARTITIONS);
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const { pool, redis, kafka, admin } = services;
  const cache = new BalanceCache(redis, config.REDIS_PREFIX);
  const log = createLogger('test-ledger', 'warn');
  // Connected on the first publication: most stacks never run a command.
  const producer = kafka.producer(SERIAL_PRODUCER_CONFIG);
  let connected: Promise<void> | undefined;
  const send = serialSender(producer);
  const cacheWriter = new CacheWriter(cache, pool, log);
  return {
    env, config, topics, pool, redis, kafka, cache,
    ledger: new WriteOrder({
      pool, cache: cacheWriter, topics, log,
      send: async (record) => {
        await (connected ??= producer.connect());
        await send(record);
      },
    }),
    async close() {
      cacheWriter.stop();
      if (connected) await producer.disconnect();
      await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => undefined);
    },
  };
}

/**
 * Real Postgres, Redis and Kafka with names private to one test file, on clients of its own.
 * Tests written with tests/support/test.ts get the same from its `stack` fixture.
 */
export async function openStack(name: string): Promise<TestStack> {
  const services = await openServices(name);
  const stack = await isolate(services, name);
  return {
    ...stack,
    async close() {
      await stack.close();
      await services.close();
    },
  };
}

/** The ClickHouse of this test process: chDB in a directory of its own, or CLICKHOUSE_URL. */
export async function openClickHouse(name: string): Promise<{ ch: ClickHouseClient; database: string }> {
  requireServices('ClickHouse');
  const run = process.env.MS_TEST_RUN ?? 'local';
  const database = `t_${name.replace(/\W/g, '_')}_${randomBytes(3).toString('hex')}`;
  const ch = await createClickHouse({ url: process.env.CLICKHOUSE_URL, chdbPath: `.chdb/test-${run}/${process.pid}` });
  await migrateClickHouse(ch, database);
  return { ch, database };
}
