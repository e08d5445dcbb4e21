import { randomBytes } from 'node:crypto';
import { BaseConfig, loadConfig } from '@meterstream/schemas/config';
import { createPool, type Pool } from '@meterstream/schemas/postgres';
import { createRedis, type Redis } from '@meterstream/schemas/redis';
import { createKafka, ensureTopics } from '@meterstream/schemas/kafka';
import { createClickHouse, type ClickHouseClient } from '@meterstream/schemas/clickhouse';
import { migrateClickHouse } from '@meterstream/schemas/migrate';
import { BalanceCache } from '@meterstream/schemas/ledger/balance-cache';
import { topicNames, type TopicNames } from '@meterstream/schemas';
import type { Kafka } from 'kafkajs';

export interface TestStack {
  /** Environment for services under test (in-process or child processes), unique to this stack. */
  env: Record<string, string>;
  config: BaseConfig;
  topics: TopicNames;
  pool: Pool;
  redis: Redis;
  cache: BalanceCache;
  kafka: Kafka;
  close(): Promise<void>;
}

/**
 * Real Postgres, Redis and Kafka with names private to one test file: its own topics, Redis
 * prefix and consumer groups, inside the run's own database (see global-setup.ts).
 */
export async function openStack(name: string): Promise<TestStack> {
  const tag = `${name}-${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = {
    ...(process.env as Record<string, string>),
    KAFKA_TOPIC_PREFIX: `${process.env.KAFKA_TOPIC_PREFIX ?? ''}${tag}.`,
    REDIS_PREFIX: `${process.env.REDIS_PREFIX ?? 'mst:'}${tag}:`,
    KAFKA_EVENTS_PARTITIONS: process.env.KAFKA_EVENTS_PARTITIONS ?? '4',
    RATER_GROUP_ID: `rater-${tag}`,
    SINK_GROUP_ID: `sink-${tag}`,
  };
  const config = loadConfig(BaseConfig, env);
  const pool = createPool(config.DATABASE_URL, 5);
  const redis = createRedis(config.REDIS_URL);
  const kafka = createKafka(config.KAFKA_BROKERS, `test-${tag}`);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, config.KAFKA_TOPIC_PREFIX, config.KAFKA_EVENTS_PARTITIONS);
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  return {
    env, config, topics, pool, redis, kafka,
    cache: new BalanceCache(redis, config.REDIS_PREFIX),
    async close() {
      await admin.deleteTopics({ topics: Object.values(topics) }).catch(() => undefined);
      await admin.disconnect();
      await pool.end();
      redis.disconnect();
    },
  };
}

/** The ClickHouse of this test process: chDB in a directory of its own, or CLICKHOUSE_URL. */
export async function openClickHouse(name: string): Promise<{ ch: ClickHouseClient; database: string }> {
  const run = process.env.MS_TEST_RUN ?? 'local';
  const database = `t_${name.replace(/\W/g, '_')}_${randomBytes(3).toString('hex')}`;
  const ch = await createClickHouse({ url: process.env.CLICKHOUSE_URL, chdbPath: `.chdb/test-${run}/${process.pid}` });
  await migrateClickHouse(ch, database);
  return { ch, database };
}
