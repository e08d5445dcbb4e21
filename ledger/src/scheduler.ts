import { z } from 'zod';
import PgBoss from 'pg-boss';
import type { Kafka } from 'kafkajs';
import { systemClock, type Clock } from '@meterstream/platform/clock';
import { SERIAL_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import type { Logger } from '@meterstream/platform/logger';
import { listen } from '@meterstream/platform/pg-listen';
import type { Pool } from '@meterstream/platform/postgres';
import { topicNames } from '@meterstream/schemas';
import type { BalanceCache } from './balance-cache.js';
import { CacheWriter } from './cache-writer.js';
import { grantAllowances } from './commands/grant-allowances.js';
import { chargeAddons } from './commands/charge-addons.js';
import { chargeAutoTopUps, type ChargeDeps } from './commands/charge-auto-top-up.js';
import { expireGrants } from './commands/expire-grants.js';
import { notifyExpiringGifts } from './commands/notify-expiring-gifts.js';
import { NotifyConfig, notificationDelivery, type NotificationDelivery } from './notifications/config.js';
import { NotificationWorker } from './notifications/worker.js';
import { expireHolds } from './commands/expire-holds.js';
import { EntrySweeper } from './entry-sweeper.js';
import { WriteOrder } from './write-order.js';
import { StripeConfig, type Stripe } from '@meterstream/platform/stripe';

/** The time-based jobs and when pg-boss starts them (cron, UTC). */
export const JOBS = {
  /** Every minute: the month's allowance reaches accounts within a minute of 00:00 UTC on the 1st. */
  allowances: { queue: 'ledger.allowances', cron: '* * * * *' },
  /** Every minute: expired credits leave the balances (and Redis) within a minute of their expiry. */
  expiries: { queue: 'ledger.expiries', cron: '* * * * *' },
  /**
   * Every minute, and at once when deliveries are added or replayed (LISTEN notifications_due): the
   * notifications outbox is delivered, and failed deliveries retried when their backoff is over.
   */
  notifications: { queue: 'ledger.notifications', cron: '* * * * *' },
  /** Every minute: each gift with credits left that expires within 24 hours is told once (gift.expiring). */
  giftsExpiring: { queue: 'ledger.gifts-expiring', cron: '* * * * *' },
  /** Every minute: the gate's holds past their TTL are closed in Postgres (the gate stops counting them at their expiry). */
  holds: { queue: 'ledger.holds', cron: '* * * * *' },
  /** Every minute: active add-ons are charged within a minute of each account's period start. */
  addons: { queue: 'ledger.addons', cron: '* * * * *' },
  /**
   * Every minute, and at once when a trigger commits (LISTEN auto_top_ups_due): the triggered
   * automatic top-ups are charged on Stripe (charge-auto-top-up.ts), outside the rater's and the gate's work.
   */
  autoTopUps: { queue: 'ledger.auto-top-ups', cron: '* * * * *' },
} as const;
export type JobName = keyof typeof JOBS;

/** The scheduler's Stripe settings: automatic top-ups are charged here, off the rater's and the gate's paths. */
export const AutoTopUpConfig = StripeConfig.extend({
  AUTO_TOP_UP_ACTION_URL: z.url().default('http://localhost:8080/billing/authenticate?payment_intent={PAYMENT_INTENT}').describe(
    'Where a cardholder completes a charge their bank held for authentication (sent in the auto_top_up.action_required notification); {PAYMENT_INTENT} is replaced.',
  ),
});
export type AutoTopUpConfig = z.infer<typeof AutoTopUpConfig>;

/** startScheduler's autoTopUps from the settings: none without Stripe (triggered top-ups then wait). */
export function autoTopUpCharging(c: AutoTopUpConfig, stripe: Stripe | undefined): Pick<SchedulerDeps, 'autoTopUps'> {
  return stripe ? { autoTopUps: { stripe, actionUrl: c.AUTO_TOP_UP_ACTION_URL } } : {};
}

export interface SchedulerDeps {
  databaseUrl: string;
  kafkaTopicPrefix: string;
  pool: Pool;
  cache: BalanceCache;
  kafka: Kafka;
  log: Logger;
  clock?: Clock;
  /** How notifications are delivered (notifications/config.ts); by default NotifyConfig's defaults, without email. */
  notifications?: NotificationDelivery;
  /** Stripe, for automatic top-ups; without it they wait, triggered, for a scheduler with Stripe. */
  autoTopUps?: Omit<ChargeDeps, 'order' | 'log'>;
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
  const producer = deps.kafka.producer(SERIAL_PRODUCER_CONFIG);
  const send = serialSender(producer);
  const cacheWriter = new CacheWriter(deps.cache, deps.pool, log, { now: () => clock.now() });
  const order = new WriteOrder({ pool: deps.pool, send, cache: cacheWriter, topics, log, now: () => clock.now(), publishWaitMs: 10_000 });
  const sweeper = new EntrySweeper(deps.pool, send, topics.entries, log);
  const delivery = deps.notifications ?? notificationDelivery(NotifyConfig.parse({}));
  if (!delivery.mailer) log.info('SMTP_URL is unset: notification emails are disabled (they wait, pending, for a scheduler with SMTP); webhooks are delivered');
  const notifier = new NotificationWorker({ pool: deps.pool, log, settings: delivery.settings, mailer: delivery.mailer, now: () => clock.now() });
  const handlers: Record<JobName, () => Promise<void>> = {
    allowances: async () => {
      await grantAllowances(order, { now: clock.now(), log });
    },
    holds: async () => {
      const expired = await expireHolds({ pool: deps.pool, gate: deps.cache.gate, log }, { now: clock.now() });
      if (expired > 0) log.info({ holds: expired }, 'expired holds closed');
    },
    expiries: async () => {
      const expired = await expireGrants(order, { now: clock.now() });
      if (expired.grants > 0) log.info({ ...expired, lost: expired.lost.toString() }, 'expired grants taken out of the balances');
    },
    notifications: async () => {
      await notifier.drain();
    },
    giftsExpiring: async () => {
      const told = await notifyExpiringGifts(deps.pool, { nowMs: clock.now() });
      if (told > 0) log.info({ gifts: told }, 'gifts expiring within 24 hours told');
    },
    addons: async () => {
      await chargeAddons(order, { now: clock.now(), log });
    },
    autoTopUps: async () => {
      if (!deps.autoTopUps) return;
      const done = await chargeAutoTopUps({ ...deps.autoTopUps, order, log });
      if (done.charged + done.failed + done.actionRequired > 0) log.info(done, 'automatic top-ups charged');
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
    notifier.close();
    throw err;
  }
  sweeper.start();
  // A notification leaves at once, not at the next cron minute: a run is queued when one is added.
  const wake = listen({
    connectionString: deps.databaseUrl, channel: 'notifications_due', log, applicationName: 'meterstream-scheduler',
    onNotification: () => {
      boss.send(JOBS.notifications.queue, {}, { singletonKey: 'notifications' })
        .catch((err: unknown) => log.warn({ err }, 'could not queue a notification delivery run; the cron delivers it'));
    },
  });
  const autoTopUpsDue = listen({
    connectionString: deps.databaseUrl, channel: 'auto_top_ups_due', log, applicationName: 'meterstream-scheduler',
    onNotification: () => {
      boss.send(JOBS.autoTopUps.queue, {}, { singletonKey: 'autoTopUps' })
        .catch((err: unknown) => log.warn({ err }, 'could not queue an automatic top-up run; the cron runs it'));
    },
  });
  log.info({ jobs: Object.values(JOBS).map((j) => `${j.queue} (${j.cron})`) }, 'scheduler running');
  return {
    trigger: async (job) => (await boss.send(JOBS[job].queue, {}, { singletonKey: job })) !== null,
    async stop() {
      await wake.close();
      await autoTopUpsDue.close();
      await boss.stop({ graceful: true, wait: true, timeout: 30_000 });
      await sweeper.stop();
      await producer.disconnect();
      cacheWriter.stop();
      notifier.close();
    },
  };
}
