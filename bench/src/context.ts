import { rmSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Admin, Kafka } from 'kafkajs';
import { topicNames, type TopicNames } from '@meterstream/schemas';
import { createKafka, ensureTopics } from '@meterstream/platform/kafka';
import { migratePostgres } from '@meterstream/platform/migrate';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { createRedis, type Redis } from '@meterstream/platform/redis';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import type { BenchOptions } from './options.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Everything one bench run owns: its database, topics, Redis prefix, groups and chDB dirs. */
export interface RunContext {
  runId: string;
  opts: BenchOptions;
  databaseUrl: string;
  databaseName: string;
  redisUrl: string;
  redisPrefix: string;
  brokers: string;
  topicPrefix: string;
  topics: TopicNames;
  raterGroup: string;
  sinkGroup: string;
  chdbDir: string;
  chDatabase: string;
  /** where logs and profiles of this run go */
  artifactsDir: string;
  pool: Pool;
  redis: Redis;
  cache: BalanceCache;
  kafka: Kafka;
  admin: Admin;
  /** environment every service process of this run starts with */
  serviceEnv: Record<string, string>;
}

export function newRunId(): string {
  return `${Date.now().toString(36)}${process.pid.toString(36)}`;
}

export async function openContext(opts: BenchOptions, runId: string, artifactsDir: string): Promise<RunContext> {
  // Never the DATABASE_URL database itself (a test run's, or a dev's): a fresh one per run, dropped at the end.
  const base = new URL(process.env.BENCH_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
  const databaseName = `ms_bench_${runId}`;
  base.pathname = `/${databaseName}`;
  const databaseUrl = base.toString();
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const brokers = process.env.KAFKA_BROKERS ?? '127.0.0.1:9092';
  const topicPrefix = `bench.${runId}.`;
  const redisPrefix = `msbench:${runId}:`;
  const chdbDir = resolve(ROOT, `.chdb/bench-${runId}`);
  await migratePostgres(databaseUrl);
  const pool = createPool(databaseUrl, opts.naiveConnections + 4);
  const redis = createRedis(redisUrl);
  const kafka = createKafka(brokers, `bench-${runId}`);
  const admin = kafka.admin();
  await admin.connect();
  await ensureTopics(admin, topicPrefix, opts.partitions);
  const ctx: RunContext = {
    runId, opts, databaseUrl, databaseName, redisUrl, redisPrefix, brokers, topicPrefix,
    topics: topicNames(topicPrefix),
    raterGroup: `bench-rater-${runId}`,
    sinkGroup: `bench-sink-${runId}`,
    chdbDir,
    chDatabase: `bench_${runId}`,
    artifactsDir,
    pool, redis, kafka, admin,
    cache: new BalanceCache(redis, redisPrefix),
    serviceEnv: {},
  };
  const inherited = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
  ctx.serviceEnv = {
    ...inherited,
    LOG_LEVEL: process.env.BENCH_SERVICE_LOG_LEVEL ?? 'info',
    DATABASE_URL: databaseUrl,
    REDIS_URL: redisUrl,
    REDIS_PREFIX: redisPrefix,
    KAFKA_BROKERS: brokers,
    KAFKA_TOPIC_PREFIX: topicPrefix,
    KAFKA_EVENTS_PARTITIONS: String(opts.partitions),
    RATER_GROUP_ID: ctx.raterGroup,
    SINK_GROUP_ID: ctx.sinkGroup,
    CLICKHOUSE_DATABASE: ctx.chDatabase,
  };
  return ctx;
}

/** Deletes what the run created, each step on its own so one failure does not leave the rest behind. */
export async function closeContext(ctx: RunContext, keep: boolean): Promise<string[]> {
  const problems: string[] = [];
  const step = async (what: string, fn: () => Promise<unknown>) => {
    try {
      await fn();
    } catch (e) {
      problems.push(`${what}: ${(e as Error).message}`);
    }
  };
  if (!keep) {
    await step('delete topics', () => ctx.admin.deleteTopics({ topics: Object.values(ctx.topics), timeout: 30_000 }));
    await step('delete consumer groups', async () => {
      const listed = new Set((await ctx.admin.listGroups()).groups.map((g) => g.groupId));
      const mine = [...listed].filter((g) => g.includes(ctx.runId));
      if (mine.length > 0) await ctx.admin.deleteGroups(mine);
    });
    await step('delete redis keys', async () => {
      let cursor = '0';
      do {
        const [next, keys] = await ctx.redis.scan(cursor, 'MATCH', `${ctx.redisPrefix}*`, 'COUNT', 5000);
        cursor = next;
        if (keys.length > 0) await ctx.redis.del(...keys);
      } while (cursor !== '0');
    });
  }
  await step('disconnect kafka admin', () => ctx.admin.disconnect());
  await step('close pool', () => ctx.pool.end());
  ctx.redis.disconnect();
  if (!keep) {
    await step('drop database', async () => {
      const admin = new URL(ctx.databaseUrl);
      admin.pathname = '/postgres';
      const c = new pg.Client({ connectionString: admin.toString() });
      await c.connect();
      try {
        await c.query(`DROP DATABASE IF EXISTS "${ctx.databaseName}" WITH (FORCE)`);
      } finally {
        await c.end();
      }
    });
    await step('remove chDB data', async () => rmSync(ctx.chdbDir, { recursive: true, force: true }));
  }
  return problems;
}
