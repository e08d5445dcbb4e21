import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll } from 'vitest';
import { TestClock } from '@meterstream/platform/clock';
import { createLogger } from '@meterstream/platform/logger';
import { migratePostgres } from '@meterstream/platform/migrate';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { createAccount } from '@meterstream/platform/stores/accounts';
import { upsertPlan } from '@meterstream/platform/stores/plans';
import { startScheduler } from '@meterstream/ledger/scheduler';
import { toMicros } from '@meterstream/schemas';
import { waitFor } from '../../tests/support/processes.js';
import { describe, expect, test } from '../../tests/support/test.js';

// pg-boss's cron runs its jobs over every account of the database it is started on: a database of
// its own, so that the test clock's far-off months never reach the accounts of other test files.
const url = new URL(process.env.DATABASE_URL!);
url.pathname = `${url.pathname}_sched_${randomBytes(3).toString('hex')}`;
let pool: Pool;

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

describe('scheduler (pg-boss)', () => {
  test('runs the queued jobs on the clock it is given: the month\'s allowance once, then its expiry', async ({ stack }) => {
    await upsertPlan(pool, {
      id: 'monthly-10', name: 'Monthly 10', currency: 'USD', billingMode: 'prepaid', signupGiftAmount: 0n, signupGiftValidityDays: 7,
      monthlyAllowanceAmount: toMicros('10'), allowanceRolloverMonths: 0, defaultMonthlyLimit: null, lowBalanceThreshold: 0n,
    });
    const { id: account } = await createAccount(pool, { email: 'a@example.com', currency: 'USD', billingMode: 'prepaid', planId: 'monthly-10' });
    const clock = new TestClock(Date.parse('2031-01-01T00:00:05Z'));
    const scheduler = await startScheduler({
      databaseUrl: url.toString(), kafkaTopicPrefix: stack.config.KAFKA_TOPIC_PREFIX, pool, cache: stack.cache, kafka: stack.kafka,
      log: createLogger('scheduler-test', 'silent'), clock,
    });
    const entries = async () => (await pool.query<{ kind: string; amount: bigint; key: string }>(
      'SELECT kind, amount, idempotency_key AS key FROM ledger_entries WHERE account_id = $1 ORDER BY idempotency_key', [account])).rows;
    // pg-boss has nothing of the queue left to run (its cron may add runs of its own meanwhile: they change nothing).
    const settled = (queue: string) => waitFor(`${queue} to run`, async () =>
      (await pool.query<{ n: bigint }>(`SELECT count(*) AS n FROM pgboss.job WHERE name = $1 AND state < 'completed'`, [queue])).rows[0]!.n === 0n);
    try {
      // Twice for the same month: one grant. (false: a run is waiting already, e.g. the cron's.)
      await scheduler.trigger('allowances');
      await scheduler.trigger('allowances');
      await settled('ledger.allowances');
      expect(await entries()).toEqual([{ kind: 'grant', amount: toMicros('10'), key: 'allowance:2031-01' }]);
      // Rollover 0: January's allowance expires on February 1st 00:00 UTC, when February's arrives.
      clock.set('2031-02-01T00:00:00Z');
      await scheduler.trigger('expiries');
      await scheduler.trigger('allowances');
      await settled('ledger.expiries');
      await settled('ledger.allowances');
    } finally {
      await scheduler.stop();
    }
    expect(await entries()).toEqual([
      { kind: 'grant', amount: toMicros('10'), key: 'allowance:2031-01' },
      { kind: 'grant', amount: toMicros('10'), key: 'allowance:2031-02' },
      { kind: 'expiry', amount: -toMicros('10'), key: expect.stringMatching(/^expiry:/) },
    ]);
    expect((await stack.cache.read(account))?.grants.map((g) => [g.kind, g.remaining])).toEqual([['allowance', toMicros('10')]]);
  });
});
