import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { TestClock } from '@meterstream/platform/clock';
import { createLogger } from '@meterstream/platform/logger';
import { migratePostgres } from '@meterstream/platform/migrate';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { createAccount } from '@meterstream/platform/stores/accounts';
import { upsertPlan } from '@meterstream/platform/stores/plans';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { addGrant } from '@meterstream/ledger/commands/add-grant';
import { activateAddon } from '@meterstream/ledger/commands/activate-addon';
import { startScheduler } from '@meterstream/ledger/scheduler';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { toMicros } from '@meterstream/schemas';
import { waitFor } from '../../tests/support/processes.js';
import { describe, expect, test } from '../../tests/support/test.js';

// As scheduler.integration.test.ts: a database of its own, so that pg-boss's cron, which runs
// over every account of its database, never reaches the accounts of other test files.
const url = new URL(process.env.DATABASE_URL!);
url.pathname = `${url.pathname}_addons_${randomBytes(3).toString('hex')}`;
let pool: Pool;
const log = createLogger('addons-scheduler-test', 'silent');

beforeAll(async () => {
  await migratePostgres(url.toString());
  pool = createPool(url.toString(), 4);
});

afterAll(async () => {
  await pool.end();
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const c = new pg.Client({ connectionString: admin.toString() });
  await c.connect();
  await c.query(`DROP DATABASE IF EXISTS "${url.pathname.slice(1)}" WITH (FORCE)`);
  await c.end();
});

describe('scheduler: the addons job', () => {
  test('charges an active add-on at the month start once, however often it is triggered', async ({ stack }) => {
    await upsertPlan(pool, {
      id: 'with-addon', name: 'With add-on', currency: 'USD', billingMode: 'prepaid', signupGiftAmount: 0n, signupGiftValidityDays: 7,
      monthlyAllowanceAmount: 0n, allowanceRolloverMonths: 2, defaultMonthlyLimit: null, lowBalanceThreshold: 0n,
      addons: [{ id: 'concurrency', name: 'Concurrency', monthlyPrice: toMicros('2') }], addonShortfall: 'overdraft',
    });
    const { id: account } = await createAccount(pool, { email: 'a@example.com', currency: 'USD', billingMode: 'prepaid', planId: 'with-addon' });
    const clock = new TestClock(Date.parse('2031-01-10T00:00:00Z'));
    const cache = new CacheWriter(stack.cache, pool, log);
    const order = new WriteOrder({ pool, send: () => Promise.resolve(), cache, topics: stack.topics, log, now: () => clock.now() });
    try {
      await addGrant(order, { accountId: account, input: { kind: 'purchased', amount: '10', priority: 100 }, idempotencyKey: 'credits' });
      await activateAddon(order, { accountId: account, addon: 'concurrency' });
    } finally {
      cache.stop();
    }
    clock.set('2031-02-01T00:00:05Z');
    const scheduler = await startScheduler({
      databaseUrl: url.toString(), kafkaTopicPrefix: stack.config.KAFKA_TOPIC_PREFIX, pool, cache: stack.cache, kafka: stack.kafka, log, clock,
    });
    const settled = (queue: string) => waitFor(`${queue} to run`, async () =>
      (await pool.query<{ n: bigint }>(`SELECT count(*) AS n FROM pgboss.job WHERE name = $1 AND state < 'completed'`, [queue])).rows[0]!.n === 0n);
    try {
      await scheduler.trigger('addons');
      await scheduler.trigger('addons');
      await settled('ledger.addons');
      await scheduler.trigger('addons');
      await settled('ledger.addons');
    } finally {
      await scheduler.stop();
    }
    const entries = await pool.query<{ key: string; amount: bigint; balance_after: bigint }>(
      `SELECT idempotency_key AS key, amount, balance_after FROM ledger_entries WHERE account_id = $1 AND kind = 'addon' ORDER BY seq`, [account]);
    expect(entries.rows).toEqual([
      { key: 'addon:concurrency:2031-01', amount: -toMicros('2'), balance_after: toMicros('8') },
      { key: 'addon:concurrency:2031-02', amount: -toMicros('2'), balance_after: toMicros('6') },
    ]);
    expect((await stack.cache.read(account))?.grants.map((g) => g.remaining)).toEqual([toMicros('6')]);
  });
});
