import PgBoss from 'pg-boss';
import type { Kafka } from 'kafkajs';
import { systemClock, type Clock } from '@meterstream/platform/clock';
import { IDEMPOTENT_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import type { Logger } from '@meterstream/platform/logger';
import type { Pool } from '@meterstream/platform/postgres';
import { topicNames } from '@meterstream/schemas';
import type { BalanceCache } from './balance-cache.js';
import { CacheWriter } from './cache-writer.js';
import { grantAllowances } from './commands/grant-allowances.js';
import { expireGrants } from './commands/expire-grants.js';
import { EntrySweeper } from './entry-sweeper.js';
import { WriteOrder } from './write-order.js';

/** The time-based jobs and when pg-boss starts them (cron, UTC). */
export const JOBS = {
  /** Every minute: the month's allowance reaches accounts within a minute of 00:00 UTC on the 1st. */
  allowances: { queue: 'ledger.allowances', cron: '* * * * *' },
  /** Every minute: expired credits leave the balances (and Redis) within a minute of their expiry. */
  expiries: { queue: 'ledger.expiries', cron: '* * * * *' },
} as const;
export type JobName = keyof typeof JOBS;

export interface SchedulerDeps {
  databaseUrl: string;
  kafkaTopicPrefix: string;
  pool: Pool;
  cache: BalanceCache;
  kafka: Kafka;
  log: Logger;
  clock?: Clock;
}

export interface Scheduler {
  /**
   * Queues a run of the job now, as its cron does (an operator after an outage, a test): false when
   * one is already waiting (the stately queue keeps one).
   */
  trigger(job: JobName): Promise<boolean>;
  /** Lets the running jobs finish, then closes what it opened. */
  stop(): Promise<void>;
}

/**
 * The one scheduler for time-based work, on pg-boss (Postgres, schema pgboss). pg-boss starts each
 * job once per cron minute across all instances and its stately queues run at most one of a job
 * at a time; the jobs themselves are idempotent per (job, period) through ledger keys
 * (allowance:<month> per account, expiry:<grant>), so a run that repeats, crashes midway or comes
 * late neither doubles nor loses a movement. The jobs read the time from `clock` only.
 */
export async function startScheduler(deps: SchedulerDeps): Promise<Scheduler> {
  const { log } = deps;
  const clock = deps.clock ?? systemClock;
  const topics = topicNames(deps.kafkaTopicPrefix);
  const producer = deps.kafka.producer(IDEMPOTENT_PRODUCER_CONFIG);
  const send = serialSender(producer);
  const cacheWriter = new CacheWriter(deps.cache, deps.pool, log);
  const order = new WriteOrder({ pool: deps.pool, send, cache: cacheWriter, topics, log, now: () => clock.now(), publishWaitMs: 10_000 });
  const sweeper = new EntrySweeper(deps.pool, send, topics.entries, log);
  const handlers: Record<JobName, () => Promise<void>> = {
    allowances: async () => {
      await grantAllowances(order, { now: clock.now(), log });
    },
    expiries: async () => {
      const expired = await expireGrants(order, { now: clock.now() });
      if (expired.grants > 0) log.info({ ...expired, lost: expired.lost.toString() }, 'expired grants taken out of the balances');
    },
  };
  const boss = new PgBoss({ connectionString: deps.databaseUrl, schema: 'pgboss', application_name: 'meterstream-scheduler', max: 2 });
  boss.on('error', (err) => log.warn({ err }, 'pg-boss error'));
  await producer.connect();
  try {
    await boss.start();
    for (const [name, job] of Object.entries(JOBS) as [JobName, (typeof JOBS)[JobName]][]) {
      await boss.createQueue(job.queue, { name: job.queue, policy: 'stately', retryLimit: 3, retryDelay: 10, retryBackoff: true });
      await boss.schedule(job.queue, job.cron, {}, { tz: 'UTC', singletonKey: name });
      await boss.work(job.queue, { batchSize: 1 }, handlers[name]);
    }
  } catch (err) {
    await boss.stop({ graceful: false }).catch(() => undefined);
    await producer.disconnect();
    cacheWriter.stop();
    throw err;
  }
  sweeper.start();
  log.info({ jobs: Object.values(JOBS).map((j) => `${j.queue} (${j.cron})`) }, 'scheduler running');
  return {
    trigger: async (job) => (await boss.send(JOBS[job].queue, {}, { singletonKey: job })) !== null,
    async stop() {
      await boss.stop({ graceful: true, wait: true, timeout: 30_000 });
      await sweeper.stop();
      await producer.disconnect();
      cacheWriter.stop();
    },
  };
}
