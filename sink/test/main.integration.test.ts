import { randomBytes } from 'node:crypto';
import { resolve } from 'node:path';
import { describe, expect, onTestFinished } from 'vitest';
import { createClickHouse } from '@meterstream/platform/clickhouse';
import { test } from '../../tests/support/test.js';
import { startService } from '../../tests/support/processes.js';
import { expectedTotals, ratedEvents } from './support/rated-events.js';
import { caughtUp, countRated, produceRated, totalsIn, waitFor } from './support/harness.js';

const ROOT = resolve(import.meta.dirname, '../..');

describe('sink/src/main.ts as its own process', () => {
  test('migrates, writes, and on SIGTERM finishes its batch, commits and leaves the group', async ({ services: { admin }, stack }) => {
    // The child owns this chDB directory; this test process opens it only after the child exits.
    const chdbPath = resolve(ROOT, `.chdb/test-${process.env.MS_TEST_RUN ?? 'local'}/main-${process.pid}`);
    const database = `sink_main_${randomBytes(3).toString('hex')}`;
    const group = stack.env.SINK_GROUP_ID!;
    const events = ratedEvents(0, 1500, ['acct-1', 'acct-2', 'acct-3', 'acct-4']);
    await produceRated(stack, [...events, ...events.slice(0, 100)]);

    const sink = startService('sink/src/main.ts', {
      ...stack.env, CHDB_PATH: chdbPath, CLICKHOUSE_DATABASE: database, SINK_FETCH_MAX_WAIT_MS: '100',
    });
    onTestFinished(async () => void (await sink.kill('SIGKILL')));
    await waitFor('the sink process to commit the whole topic', () => caughtUp(admin, group, stack.topics.rated));
    expect(await sink.kill('SIGTERM'), sink.output()).toBe(0);
    const [described] = (await admin.describeGroups([group])).groups;
    expect(described?.state).toBe('Empty');

    const ch = await createClickHouse({ url: process.env.CLICKHOUSE_URL, chdbPath });
    try {
      expect(await countRated(ch, database)).toBe(events.length);
      expect(await totalsIn(ch, database, 'month')).toEqual(expectedTotals(events, 'month'));
    } finally {
      await ch.close();
    }
  });
});
