import { systemClock } from '@meterstream/platform/clock';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { createAccount, produceEvents, readTopicMessages, setPrices, usageEvent, waitRaterIdle } from '../../tests/support/fixtures.js';
import { expectBooksBalance, expectedCharges } from '../../tests/support/books.js';
import { startService, waitFor, type ServiceProcess } from '../../tests/support/processes.js';
import { startPrivateRedis, type PrivateRedis } from '../../tests/support/redis-server.js';
import { waitGroupStable } from '../../tests/support/kafka-groups.js';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { cachedPart, loadAccountStates } from '@meterstream/ledger/account-state';
import type { UsageEvent } from '@meterstream/schemas';
import { startInProcessRater, type InProcessRater } from './in-process-rater.js';

const PRODUCTS = ['image', 'chat', 'call'] as const;
const workload = (accounts: string[], prefix: string, n: number): UsageEvent[] =>
  Array.from({ length: n }, (_, i) => usageEvent(accounts[i % accounts.length]!, PRODUCTS[i % PRODUCTS.length]!, String(1 + (i % 7)), `${prefix}-${i}`));

describe('the rater through outages of its dependencies', () => {
  let stack: TestStack;
  const raters: InProcessRater[] = [];
  const procs: ServiceProcess[] = [];
  let redis: PrivateRedis | undefined;

  beforeAll(async () => {
    stack = await openStack('outages');
    await setPrices(stack);
  });
  afterEach(async () => {
    await Promise.all([...raters.splice(0).map((r) => r.stop()), ...procs.splice(0).map((p) => p.kill('SIGTERM'))]);
    await redis?.kill();
    redis = undefined;
  });
  afterAll(async () => {
    await stack.close();
  });

  it('rates and publishes each event once while Redis refuses writes, and repairs Redis from Postgres when it is back', async () => {
    redis = await startPrivateRedis();
    const accounts = [
      await createAccount(stack, {}, [{ kind: 'purchased', amount: '30' }]),
      await createAccount(stack, { billing_mode: 'postpaid' }),
      await createAccount(stack, {}, [{ kind: 'gift', amount: '1' }]),
    ];
    const rater = await startInProcessRater(stack, { REDIS_URL: redis.url });
    raters.push(rater);
    await redis.admin.config('SET', 'min-replicas-to-write', '1'); // every write now fails with NOREPLICAS
    const events = workload(accounts, 'redis-down', 90);
    await produceEvents(stack, events.slice(0, 45));
    await waitRaterIdle(stack);
    await produceEvents(stack, events.slice(45));
    await waitRaterIdle(stack); // the offsets moved on: rated, published and committed

    const ledger = await stack.pool.query<{ account_id: string; n: bigint; charged: bigint }>(
      'SELECT account_id, count(*) AS n, sum(amount)::bigint AS charged FROM usage_ledger WHERE account_id = ANY($1) GROUP BY 1', [accounts]);
    expect(new Map(ledger.rows.map((r) => [r.account_id, r.charged]))).toEqual(expectedCharges(events));
    const rated = (await readTopicMessages(stack, stack.topics.rated))
      .map((m) => JSON.parse(m.value) as { account_id: string; event_id: string })
      .filter((r) => accounts.includes(r.account_id));
    expect(rated.length).toBe(events.length); // each once: no batch was retried and republished
    expect(new Set(rated.map((r) => r.event_id))).toEqual(new Set(events.map((e) => e.id)));
    expect(rater.cachePending).toBe(accounts.length);

    await redis.admin.config('SET', 'min-replicas-to-write', '0');
    const cache = new BalanceCache(redis.admin, stack.env.REDIS_PREFIX!);
    await waitFor('Redis equal to Postgres again', async () => {
      const truth = await loadAccountStates(stack.pool, accounts, { forUpdate: false, nowMs: systemClock.now() });
      const cached = await cache.readMany(accounts);
      return accounts.every((a) => truth.has(a) && isDeepStrictEqual(cached.get(a), cachedPart(truth.get(a)!)));
    });
    expect(rater.cachePending).toBe(0);
  });

  it('survives the loss of a transaction\'s connection: that batch is retried and everything is charged once', async () => {
    const account = await createAccount(stack, {}, [{ kind: 'purchased', amount: '20' }]);
    const applicationName = `rater-outage-${stack.env.RATER_GROUP_ID}`;
    const url = new URL(stack.env.DATABASE_URL!);
    url.searchParams.set('application_name', applicationName);
    const rater = startService('rater/src/main.ts', { ...stack.env, DATABASE_URL: url.toString(), LOG_LEVEL: 'info', RATER_SESSION_TIMEOUT_MS: '6000' });
    procs.push(rater);
    onTestFailed(() => console.error(`rater output:\n${rater.output().slice(-6000)}`));
    const admin = stack.kafka.admin();
    await admin.connect();
    await waitGroupStable(admin, stack.env.RATER_GROUP_ID!, 1).finally(() => admin.disconnect());

    // Hold the account's row lock, so that the rater's batch waits inside its transaction ...
    const blocker = await stack.pool.connect();
    const events = workload([account], 'pg-drop', 40);
    try {
      await blocker.query('BEGIN');
      await blocker.query('SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE', [account]);
      await produceEvents(stack, events.slice(0, 20));
      const pid = await waitFor('the rater\'s transaction waiting on the lock', async () => (await stack.pool.query<{ pid: number }>(
        `SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1 AND wait_event_type = 'Lock'`,
        [applicationName])).rows[0]?.pid);
      // ... and drop that connection, as a Postgres restart or failover would.
      const killed = await stack.pool.query<{ ok: boolean }>('SELECT pg_terminate_backend($1) AS ok', [pid]);
      expect(killed.rows[0]!.ok).toBe(true);
    } finally {
      await blocker.query('COMMIT');
      blocker.release();
    }
    await produceEvents(stack, events.slice(20));
    await waitRaterIdle(stack);
    await expectBooksBalance(stack, events, [account]);
    expect(rater.child.exitCode).toBeNull();
    expect(rater.child.signalCode).toBeNull();
  });
});
