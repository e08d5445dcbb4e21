import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { TestClock } from '@meterstream/platform/clock';
import { createLogger } from '@meterstream/platform/logger';
import { migratePostgres } from '@meterstream/platform/migrate';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { createAccount } from '@meterstream/platform/stores/accounts';
import { getNotification, replayNotification } from '@meterstream/platform/stores/notifications';
import { createWebhookEndpoint } from '@meterstream/platform/stores/webhook-endpoints';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { addGrant } from '@meterstream/ledger/commands/add-grant';
import { smtpMailer } from '@meterstream/ledger/notifications/email';
import { startScheduler } from '@meterstream/ledger/scheduler';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { waitFor } from '../../tests/support/processes.js';
import { describe, expect, test } from '../../tests/support/test.js';
import { expectedSignature, smtpSink, webhookReceiver } from './notification-receivers.js';

// Delivery runs on the one scheduler (pg-boss): gift.expiring told once per grant by its job, the
// notification delivered by the notifications job on the scheduler's test clock, a failing
// endpoint retried with exponential backoff and dead after N attempts, a replay sent again at once
// (the scheduler wakes on notifications_due). pg-boss's jobs run over the whole database they are
// started on: a database of this file's own, as in ledger/test/scheduler.integration.test.ts.
const url = new URL(process.env.DATABASE_URL!);
url.pathname = `${url.pathname}_notify_${randomBytes(3).toString('hex')}`;
let pool: Pool;
let receiver: Awaited<ReturnType<typeof webhookReceiver>>;
let smtp: Awaited<ReturnType<typeof smtpSink>>;

beforeAll(async () => {
  await migratePostgres(url.toString());
  pool = createPool(url.toString(), 4);
  receiver = await webhookReceiver();
  smtp = await smtpSink();
});

afterAll(async () => {
  await pool?.end();
  await receiver?.close();
  await smtp?.close();
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS "${url.pathname.slice(1)}" WITH (FORCE)`);
  await c.end();
});

const RETRY_INITIAL_MS = 1_000;
const MAX_ATTEMPTS = 3;

describe('notification delivery on the scheduler', () => {
  test('gift.expiring once per grant; a failing webhook retried with backoff on the test clock, dead after N attempts, replayed', async ({ stack }) => {
    const clock = new TestClock(Date.parse('2102-06-01T10:00:00Z'));
    const log = createLogger('notify-scheduler', 'silent');
    const email = 'gifted@example.com';
    const { id: account } = await createAccount(pool, { email, currency: 'USD', billingMode: 'prepaid' });
    const path = `/gift-${randomBytes(4).toString('hex')}`;
    const endpoint = await createWebhookEndpoint(pool, account, receiver.url(path, [500]));
    const cache = new CacheWriter(stack.cache, pool, log);
    const ledger = new WriteOrder({ pool, send: () => Promise.resolve(), cache, topics: stack.topics, log, now: () => clock.now() });
    const gift = await addGrant(ledger, {
      accountId: account, idempotencyKey: 'gift', input: { kind: 'gift', amount: '5', priority: 100, expires_at: '2102-06-02T06:00:00Z' },
    });
    // Not yet within 24 hours of its expiry: the job tells nothing.
    clock.set('2102-06-01T05:00:00Z');

    const scheduler = await startScheduler({
      databaseUrl: url.toString(), kafkaTopicPrefix: stack.config.KAFKA_TOPIC_PREFIX, pool, cache: stack.cache, kafka: stack.kafka, log, clock,
      notifications: {
        settings: { maxAttempts: MAX_ATTEMPTS, retryInitialMs: RETRY_INITIAL_MS, retryMaxMs: 60_000, webhookTimeoutMs: 5_000, batch: 100 },
        mailer: smtpMailer(smtp.url, 'billing@meterstream.test'),
      },
    });
    const settled = (queue: string) => waitFor(`${queue} to run`, async () =>
      (await pool.query<{ n: bigint }>(`SELECT count(*) AS n FROM pgboss.job WHERE name = $1 AND state < 'completed'`, [queue])).rows[0]!.n === 0n);
    const told = async () => (await pool.query<{ id: string }>(
      `SELECT id FROM notifications_outbox WHERE account_id = $1 AND type = 'gift.expiring'`, [account])).rows.map((r) => r.id);
    const webhookOf = async (id: string) => (await getNotification(pool, account, id))!.deliveries.find((d) => d.channel === 'webhook')!;
    const attempt = async (id: string, n: number) => {
      await scheduler.trigger('notifications');
      return waitFor(`attempt ${n}`, async () => {
        const d = await webhookOf(id);
        return d.attempts === n ? d : undefined;
      });
    };
    try {
      await scheduler.trigger('giftsExpiring');
      await settled('ledger.gifts-expiring');
      expect(await told()).toEqual([]);

      // 20 hours before the expiry: told, once however often the job runs.
      clock.set('2102-06-01T10:00:00Z');
      await scheduler.trigger('giftsExpiring');
      await settled('ledger.gifts-expiring');
      await scheduler.trigger('giftsExpiring');
      await settled('ledger.gifts-expiring');
      const [id, ...more] = await told();
      expect(more).toEqual([]);
      expect((await getNotification(pool, account, id!))!.payload).toEqual({
        type: 'gift.expiring', timestamp: '2102-06-01T10:00:00.000Z',
        data: { account_id: account, grant_id: gift.grant.id, currency: 'USD', remaining: '5.000000', expires_at: '2102-06-02T06:00:00.000Z' },
      });

      // Each attempt at the scheduler's clock; the next one after an exponential backoff (jitter: half to all of it).
      const sentAt: number[] = [clock.now()];
      const first = await attempt(id!, 1);
      expect(first.state).toBe('pending');
      expect(first.nextAttemptAt.getTime() - sentAt[0]!).toBeGreaterThanOrEqual(RETRY_INITIAL_MS / 2);
      expect(first.nextAttemptAt.getTime() - sentAt[0]!).toBeLessThanOrEqual(RETRY_INITIAL_MS);
      clock.set(first.nextAttemptAt);
      sentAt.push(clock.now());
      const second = await attempt(id!, 2);
      expect(second.nextAttemptAt.getTime() - sentAt[1]!).toBeGreaterThanOrEqual(RETRY_INITIAL_MS);
      expect(second.nextAttemptAt.getTime() - sentAt[1]!).toBeLessThanOrEqual(2 * RETRY_INITIAL_MS);
      clock.set(second.nextAttemptAt);
      sentAt.push(clock.now());
      const third = await attempt(id!, 3);
      expect({ state: third.state, error: third.lastError }).toEqual({ state: 'dead', error: expect.stringContaining('answered 500') });
      // Dead: later runs leave it alone.
      clock.advance(3_600_000);
      await scheduler.trigger('notifications');
      await settled('ledger.notifications');
      expect((await webhookOf(id!)).attempts).toBe(MAX_ATTEMPTS);

      const attempts = receiver.at(path).filter((r) => r.headers['webhook-id'] === id);
      expect(attempts.map((a) => a.headers['webhook-timestamp'])).toEqual(sentAt.map((ms) => String(Math.floor(ms / 1000))));
      for (const a of attempts) expect(a.headers['webhook-signature']).toBe(expectedSignature(endpoint.secret, id!, a.headers['webhook-timestamp'] as string, a.body));
      expect(JSON.parse(attempts[0]!.body)).toMatchObject({ type: 'gift.expiring', data: { grant_id: gift.grant.id, remaining: '5.000000' } });
      const mail = smtp.to(email).map((m) => m.raw.replace(/=\r\n/g, '')).filter((raw) => raw.includes(`X-Notification-ID: ${id}`));
      expect(mail).toHaveLength(1);
      expect(mail[0]).toContain('Subject: Gift credits expire soon: 5.000000 USD');

      // A replay is sent at once: the scheduler wakes on it, no trigger and no cron minute needed.
      receiver.answer(path, [200]);
      await replayNotification(pool, account, id!, clock.now());
      const replayed = await waitFor('the replay delivered', async () => {
        const d = await webhookOf(id!);
        return d.state === 'delivered' ? d : undefined;
      });
      expect(replayed.attempts).toBe(1);
      expect(receiver.at(path).filter((r) => r.headers['webhook-id'] === id)).toHaveLength(MAX_ATTEMPTS + 1);
    } finally {
      await scheduler.stop();
      cache.stop();
    }
  });
});
