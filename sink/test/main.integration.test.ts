import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Admin } from 'kafkajs';
import { createClickHouse } from '@meterstream/platform/clickhouse';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { expectedTotals, ratedEvents } from './support/rated-events.js';
import { caughtUp, countRated, produceRated, totalsIn, waitFor } from './support/harness.js';

const ROOT = resolve(import.meta.dirname, '../..');

describe('sink/src/main.ts as its own process', () => {
  let stack: TestStack;
  let admin: Admin;

  beforeAll(async () => {
    stack = await openStack('sink-main');
    admin = stack.kafka.admin();
    await admin.connect();
  });
  afterAll(async () => {
    await admin.disconnect();
    await stack.close();
  });

  it('migrates, writes, and on SIGTERM finishes its batch, commits and leaves the group', async () => {
    // The child owns this chDB directory; this test process opens it only after the child exits.
    const chdbPath = resolve(ROOT, `.chdb/test-${process.env.MS_TEST_RUN ?? 'local'}/main-${process.pid}`);
    const database = `sink_main_${randomBytes(3).toString('hex')}`;
    const group = stack.env.SINK_GROUP_ID!;
    const events = ratedEvents(0, 1500, ['acct-1', 'acct-2', 'acct-3', 'acct-4']);
    await produceRated(stack, [...events, ...events.slice(0, 100)]);

    const child = spawn(process.execPath, ['--import', 'tsx', 'sink/src/main.ts'], {
      cwd: ROOT,
      env: { ...stack.env, CHDB_PATH: chdbPath, CLICKHOUSE_DATABASE: database, SINK_FETCH_MAX_WAIT_MS: '100', LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = once(child, 'exit');
    try {
      await waitFor('the sink process to commit the whole topic', () => caughtUp(admin, group, stack.topics.rated));
    } finally {
      child.kill('SIGTERM');
    }
    expect((await exited)[0], output).toBe(0);
    expect(output).toContain('"msg":"sink stopped"');
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
