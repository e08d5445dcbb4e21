import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Admin } from 'kafkajs';
import type { RatedEvent } from '@meterstream/schemas';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { openClickHouse, openStack, type TestStack } from '../../tests/support/stack.js';
import type { Sink } from '../src/sink.js';
import { expectedTotals, ratedEvents } from './support/rated-events.js';
import { caughtUp, committed, countRated, produceRated, runSink, totalsIn, waitFor } from './support/harness.js';

const accounts = ['acct-x', 'acct-y', 'acct-z'];

describe('sink while ClickHouse fails', () => {
  let stack: TestStack;
  let ch: ClickHouseClient;
  let database: string;
  let admin: Admin;
  let group: string;
  const running = new Set<Sink>();
  const start = async () => {
    // A short session timeout: only the sink's heartbeats during its retries keep it in the group.
    const sink = await runSink(stack, ch, database, { SINK_SESSION_TIMEOUT_MS: '6000', SINK_RETRY_MAX_MS: '400' });
    running.add(sink);
    return sink;
  };
  const stop = async (sink: Sink) => {
    running.delete(sink);
    await sink.stop();
  };
  const offsets = () => committed(admin, group, stack.topics.rated);
  const settle = () => waitFor('the sink to commit the whole topic', () => caughtUp(admin, group, stack.topics.rated));
  const expectExactly = async (events: RatedEvent[]) => {
    expect(await countRated(ch, database)).toBe(events.length);
    expect(await totalsIn(ch, database, 'day')).toEqual(expectedTotals(events, 'day'));
    expect(await totalsIn(ch, database, 'month')).toEqual(expectedTotals(events, 'month'));
  };

  beforeAll(async () => {
    stack = await openStack('sink-outage');
    ({ ch, database } = await openClickHouse('sink_outage'));
    await ch.command({ query: `SYSTEM STOP MERGES ${database}.rated_events` });
    admin = stack.kafka.admin();
    await admin.connect();
    group = stack.env.SINK_GROUP_ID!;
  });
  afterAll(async () => {
    await Promise.all([...running].map((s) => s.stop().catch(() => undefined)));
    await admin.disconnect();
    await stack.close();
    await ch.close();
  });

  const before = ratedEvents(0, 500, accounts);
  const during = ratedEvents(500, 1200, accounts);
  const afterStop = ratedEvents(1200, 1500, accounts);

  it('keeps its offsets and group membership while rated_events is gone, then catches up exactly', async () => {
    await produceRated(stack, before);
    const sink = await start();
    await settle();
    await expectExactly(before);
    const written = await offsets();

    await ch.command({ query: `RENAME TABLE ${database}.rated_events TO ${database}.rated_events_away` });
    await produceRated(stack, [...during, ...before.slice(0, 50)]);
    await waitFor('retries', async () => sink.stats.retries >= 3);
    await sleep(8_000); // longer than the session timeout
    expect(await offsets()).toEqual(written);
    await ch.command({ query: `RENAME TABLE ${database}.rated_events_away TO ${database}.rated_events` });

    await settle();
    await expectExactly([...before, ...during]);
    expect(sink.stats).toMatchObject({ rows: before.length + during.length, duplicates: 50, groupJoins: 1 });
    await stop(sink);
  });

  it('stop() while inserts fail returns promptly without committing; the next start catches up', async () => {
    const sink = await start();
    const written = await offsets();
    // The duplicate check still reads the table; the insert itself is refused.
    await ch.command({ query: `ALTER TABLE ${database}.rated_events ADD CONSTRAINT refuse_all CHECK event_id = ''` });
    await produceRated(stack, afterStop);
    await waitFor('retries', async () => sink.stats.retries >= 2);
    const t0 = Date.now();
    await stop(sink);
    expect(Date.now() - t0).toBeLessThan(5_000);
    expect(await offsets()).toEqual(written);
    expect(await countRated(ch, database)).toBe(before.length + during.length);

    await ch.command({ query: `ALTER TABLE ${database}.rated_events DROP CONSTRAINT refuse_all` });
    const again = await start();
    await settle();
    await expectExactly([...before, ...during, ...afterStop]);
    expect(again.stats).toMatchObject({ rows: afterStop.length, duplicates: 0 });
  });
});
