import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Admin } from 'kafkajs';
import { createClickHouse, type ClickHouseClient } from '@meterstream/platform/clickhouse';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { startService, type ServiceProcess } from '../../tests/support/processes.js';
import { startClickHouseServer, type ClickHouseServer } from '../../tests/support/clickhouse-server.js';
import { expectedTotals, ratedEvents } from './support/rated-events.js';
import { caughtUp, countRated, produceRated, rows, totalsIn, waitFor } from './support/harness.js';

const ROOT = resolve(import.meta.dirname, '../..');
const accounts = ['acct-1', 'acct-2', 'acct-3', 'acct-4', 'acct-5', 'acct-6', 'acct-7', 'acct-8'];

describe('two sink processes on one ClickHouse server', () => {
  let stack: TestStack;
  let server: ClickHouseServer;
  let ch: ClickHouseClient;
  let admin: Admin;
  const database = `two_sinks_${randomBytes(3).toString('hex')}`;
  const sinks: ServiceProcess[] = [];
  const groups = () => [`${stack.env.SINK_GROUP_ID}-a`, `${stack.env.SINK_GROUP_ID}-b`];
  const countFinal = async () => {
    const [r] = await rows<{ n: string }>(ch, `SELECT toString(count()) AS n FROM ${database}.rated_events FINAL`);
    return Number(r!.n);
  };
  const settle = async () => {
    for (const group of groups()) {
      await waitFor(`${group} to commit the whole topic`, () => caughtUp(admin, group, stack.topics.rated), 90_000);
    }
  };

  beforeAll(async () => {
    stack = await openStack('two-sinks');
    server = await startClickHouseServer(resolve(ROOT, `.chdb/test-${process.env.MS_TEST_RUN ?? 'local'}/server-${process.pid}`));
    ch = await createClickHouse({ url: server.url, chdbPath: '' });
    admin = stack.kafka.admin();
    await admin.connect();
  });
  afterAll(async () => {
    // A sink waiting on a held insert would not finish its stop.
    await server?.setInserts('pass').catch(() => undefined);
    await Promise.all(sinks.map((s) => s.kill()));
    await admin?.disconnect();
    await ch?.close();
    await server?.stop();
    await stack?.close();
  });

  it('keep the daily and monthly views exact when both write the same events in different batches', async () => {
    const events = ratedEvents(0, 2000, accounts);
    await produceRated(stack, events);
    // What a rebalance does to two sinks: both look for the events in rated_events, find none, and
    // insert them, each cut into its own batches, so their deduplication tokens differ. Holding the
    // inserts until both are in flight makes that interleaving certain instead of likely.
    await server.setInserts('hold', { table: 'rated_events' });
    const insertRows = ['1', '1000000']; // one partition batch per insert / all of a fetch in one
    // Both start on an empty database: two migrators at once.
    groups().forEach((group, i) => sinks.push(startService('sink/src/main.ts', {
      ...stack.env, CLICKHOUSE_URL: server.url, CLICKHOUSE_DATABASE: database, SINK_GROUP_ID: group,
      SINK_MAX_INSERT_ROWS: insertRows[i]!, SINK_FETCH_MAX_WAIT_MS: '100', LOG_LEVEL: 'info',
    })));
    await waitFor('both sinks to have an insert in flight', async () => (await server.state()).counts.held >= 2);
    const migrations = await rows<{ name: string }>(ch, `SELECT DISTINCT name FROM ${database}.schema_migrations ORDER BY name`);
    expect(migrations.map((m) => m.name)).toEqual(['001_rated_events.sql', '002_usage_views_from_final.sql', '003_ledger_entries.sql', '004_workspace.sql']);
    // Without merges every row inserted stays visible to count(): the test can see the duplicate it made.
    await ch.command({ query: `SYSTEM STOP MERGES ${database}.rated_events` });
    await server.setInserts('pass');
    await settle();

    // The duplicate did reach ClickHouse (otherwise this test proves nothing) ...
    expect(await countRated(ch, database), sinks.map((s) => s.output()).join('\n')).toBeGreaterThan(events.length);
    // ... and rated_events read FINAL, the daily and the monthly figures count each event once.
    expect(await countFinal()).toBe(events.length);
    expect(await totalsIn(ch, database, 'day')).toEqual(expectedTotals(events, 'day'));
    expect(await totalsIn(ch, database, 'month')).toEqual(expectedTotals(events, 'month'));
  });

  it('stay exact when inserts land but their answers are lost, and the sinks retry', async () => {
    const all = ratedEvents(0, 2600, accounts);
    const { counts } = await server.setInserts('fail-after', { table: 'rated_events' });
    await produceRated(stack, all.slice(2000));
    await waitFor('writes that landed to be answered with an error', async () => (await server.state()).counts.failed >= counts.failed + 2);
    await server.setInserts('pass');
    await settle();
    expect(await countFinal()).toBe(all.length);
    expect(await totalsIn(ch, database, 'day')).toEqual(expectedTotals(all, 'day'));
    expect(await totalsIn(ch, database, 'month')).toEqual(expectedTotals(all, 'month'));
  });
});
