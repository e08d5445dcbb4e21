import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { toMicros, type UsageEvent, type UsageEventInput } from '@meterstream/schemas';
import { usageTotalsByProduct } from '@meterstream/platform/stores/usage-ledger';
import { start, IngestConfig, type RunningIngest } from '@meterstream/ingest';
import { startSink, SinkConfig, type Sink } from '@meterstream/sink';
import { PRICE_LIST, workload } from '@meterstream/bench/workload';
import { openClickHouse, openStack, type TestStack } from '../support/stack.js';
import { startService, waitFor, type ServiceProcess } from '../support/processes.js';
import { produceEvents, waitRaterIdle } from '../support/fixtures.js';
import { expectBooksBalance } from '../support/books.js';

const ADMIN = 'e2e-admin-key-0123456789abcdef';

describe('end to end: HTTP -> Kafka -> rater -> Postgres/Redis -> usage.rated -> sink -> ClickHouse', () => {
  let stack: TestStack;
  let ch: Awaited<ReturnType<typeof openClickHouse>>;
  let ingest: RunningIngest;
  let sink: Sink;
  const raters: ServiceProcess[] = [];
  const rater = (extra: Record<string, string> = {}) => {
    const p = startService('rater/src/main.ts', { ...stack.env, RATER_SESSION_TIMEOUT_MS: '6000', RATER_MAX_BYTES_PER_PARTITION: '65536', ...extra });
    raters.push(p);
    onTestFailed(() => console.error(`rater ${raters.indexOf(p)} output:\n${p.output().slice(-20_000)}`));
    return p;
  };
  const api = async (method: string, path: string, body?: unknown, key = ADMIN, headers: Record<string, string> = {}) => {
    const res = await fetch(`${ingest.url}${path}`, {
      method,
      headers: { authorization: `Bearer ${key}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };

  async function newAccounts(n: number): Promise<{ id: string; key: string }[]> {
    const out = [];
    for (let i = 0; i < n; i++) {
      const acct = await api('POST', '/v1/accounts', { email: `u${i}-${Date.now()}@example.com`, currency: 'USD', billing_mode: i % 4 === 0 ? 'postpaid' : 'prepaid' });
      expect(acct.status).toBe(201);
      const id = acct.body.id as string;
      const grant = (body: unknown, key: string) => api('POST', `/v1/accounts/${id}/grants`, body, ADMIN, { 'idempotency-key': key });
      // The $10 signup gift comes with the account (its default plan).
      expect(acct.body.signup_gift).toMatchObject({ kind: 'gift', amount: '10.000000' });
      expect((await grant({ kind: 'purchased', amount: i % 2 ? '25' : '2' }, 'first-purchase')).status).toBe(201);
      out.push({ id, key: acct.body.api_key as string });
    }
    return out;
  }

  /** ClickHouse's monthly totals per account and product, next to the Postgres ledger's. */
  async function expectClickHouseEqualsLedger(accounts: string[]): Promise<void> {
    const ledger = await usageTotalsByProduct(stack.pool, accounts);
    const want = new Map(ledger.map((r) => [`${r.accountId}/${r.product}`, `${r.events}/${r.amount}`]));
    const total = ledger.reduce((s, r) => s + r.events, 0n);
    const query = async (sql: string) => (await (await ch.ch.query({ query: sql, format: 'JSONEachRow', query_params: { accounts } })).json<{ k: string; v: string }>());
    await waitFor('ClickHouse caught up', async () => {
      const [row] = await query(`SELECT 'n' AS k, toString(count()) AS v FROM ${ch.database}.rated_events WHERE account_id IN {accounts:Array(String)}`);
      return row?.v === total.toString();
    });
    const monthly = await query(
      `SELECT concat(account_id, '/', product) AS k, concat(toString(sum(events)), '/', toString(sum(amount))) AS v
         FROM ${ch.database}.usage_monthly WHERE account_id IN {accounts:Array(String)} GROUP BY account_id, product`);
    expect(new Map(monthly.map((r) => [r.k, r.v]))).toEqual(want);
  }

  beforeAll(async () => {
    stack = await openStack('e2e');
    ch = await openClickHouse('e2e');
    const env = { ...stack.env, ADMIN_API_KEY: ADMIN, INGEST_PORT: '0', CLICKHOUSE_DATABASE: ch.database, SINK_FETCH_MAX_WAIT_MS: '100' };
    ingest = await start({ config: loadConfig(IngestConfig, env), ch: ch.ch });
    sink = await startSink({ config: loadConfig(SinkConfig, env), ch: ch.ch, database: ch.database, kafka: stack.kafka, log: createLogger('sink', 'warn') });
    for (const [product, price] of Object.entries(PRICE_LIST)) expect((await api('PUT', `/v1/prices/${product}`, price)).status).toBe(200);
  });
  afterEach(async () => {
    await Promise.all(raters.splice(0).map((p) => p.kill('SIGTERM')));
  });
  afterAll(async () => {
    await sink?.stop();
    await ingest?.close();
    await ch?.ch.close();
    await stack?.close();
  });

  it('rates what the API accepted exactly once, and ClickHouse agrees with the ledger', async () => {
    const accounts = await newAccounts(8);
    const events = [...workload({ accounts: accounts.map((a) => a.id), events: 4000, seed: 7, duplicateFraction: 0.02, idPrefix: 'http' })];
    rater();
    const accepted: string[] = [];
    for (let i = 0; i < events.length; i += 500) {
      const res = await api('POST', '/v1/events', events.slice(i, i + 500));
      expect(res.status).toBe(202);
      accepted.push(...(res.body.accepted as string[]));
      if (i === 1000) await api('POST', '/v1/events', events.slice(i, i + 500)); // the client retried the request
    }
    expect(accepted).toHaveLength(events.length);
    await waitRaterIdle(stack);
    const parsed: UsageEvent[] = events.map((e: UsageEventInput) => ({ ...e, quantity: toMicros(e.quantity) }) as UsageEvent);
    await expectBooksBalance(stack, parsed, accounts.map((a) => a.id));
    await expectClickHouseEqualsLedger(accounts.map((a) => a.id));

    // What the customer sees through the API is what Postgres holds.
    const { id, key } = accounts[0]!;
    const balance = await api('GET', `/v1/accounts/${id}/balance`, undefined, key);
    const pg = await stack.pool.query<{ v: bigint }>(
      `SELECT ((SELECT coalesce(sum(remaining), 0) FROM grants WHERE account_id = $1 AND (expires_at IS NULL OR expires_at > now()))
              - (SELECT overdraft FROM accounts WHERE id = $1))::bigint AS v`, [id]);
    expect(toMicros(balance.body.balance as string)).toBe(pg.rows[0]!.v);
    const history = await api('GET', `/v1/accounts/${id}/transactions?limit=5`, undefined, key);
    const newest = await stack.pool.query<{ event_id: string; amount: bigint; balance_after: bigint }>(
      'SELECT event_id, amount, balance_after FROM usage_ledger WHERE account_id = $1 ORDER BY seq DESC LIMIT 5', [id]);
    expect(newest.rows).toHaveLength(5);
    expect((history.body.transactions as { event_id: string; amount: string; balance_after: string }[])
      .map((x) => ({ event_id: x.event_id, amount: toMicros(x.amount), balance_after: toMicros(x.balance_after) }))).toEqual(newest.rows);
  });

  it('keeps ClickHouse equal to the ledger when the rater is killed between the Postgres and the Kafka commit', async () => {
    const accounts = await newAccounts(4);
    const events = [...workload({ accounts: accounts.map((a) => a.id), events: 3000, seed: 11, idPrefix: 'crash' })]
      .map((e) => ({ ...e, quantity: toMicros(e.quantity) }) as UsageEvent);
    await produceEvents(stack, events);
    const doomed = rater({ RATER_CRASH_AT: 'after-pg-commit', RATER_CRASH_ON_BATCH: '2' });
    expect(await doomed.exited).toBe('SIGKILL');
    rater();
    await waitRaterIdle(stack);
    await expectBooksBalance(stack, events, accounts.map((a) => a.id));
    await expectClickHouseEqualsLedger(accounts.map((a) => a.id));
  });
});
