import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Admin } from 'kafkajs';
import type { RatedEvent } from '@meterstream/schemas';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { openClickHouse, openStack, type TestStack } from '../../tests/support/stack.js';
import { decodeRatedEvent } from '../src/rows.js';
import type { Sink } from '../src/sink.js';
import { expectedTotals, ratedEvent, ratedEvents } from './support/rated-events.js';
import { caughtUp, committed, countRated, produceRated, readTopic, runSink, totalsIn, waitFor, type RawMessage } from './support/harness.js';

const accounts = ['acct-a', 'acct-b', 'acct-c', 'acct-d', 'acct-e', 'acct-f', 'acct-g'];

describe('sink: usage.rated -> ClickHouse, on real Kafka and chDB', () => {
  let stack: TestStack;
  let ch: ClickHouseClient;
  let database: string;
  let admin: Admin;
  let group: string;
  const running: Sink[] = [];
  const start = async (extra: Record<string, string> = {}) => {
    const sink = await runSink(stack, ch, database, extra);
    running.push(sink);
    return sink;
  };
  const settle = (groupId = group) => waitFor(`${groupId} to commit the whole topic`, () => caughtUp(admin, groupId, stack.topics.rated));
  const expectExactly = async (events: RatedEvent[]) => {
    expect(await countRated(ch, database)).toBe(events.length);
    expect(await totalsIn(ch, database, 'day')).toEqual(expectedTotals(events, 'day'));
    expect(await totalsIn(ch, database, 'month')).toEqual(expectedTotals(events, 'month'));
  };

  beforeAll(async () => {
    stack = await openStack('sink');
    ({ ch, database } = await openClickHouse('sink'));
    // A merge could fold duplicate rows and hide them from count(): without merges, every row inserted stays visible.
    await ch.command({ query: `SYSTEM STOP MERGES ${database}.rated_events` });
    admin = stack.kafka.admin();
    await admin.connect();
    group = stack.env.SINK_GROUP_ID!;
  });
  afterAll(async () => {
    await Promise.all(running.map((s) => s.stop().catch(() => undefined)));
    await admin.disconnect();
    await stack.close();
    await ch.close();
  });

  const first = ratedEvents(0, 2400, accounts);
  const second = ratedEvents(2400, 2700, accounts);
  const invalid: RawMessage[] = [
    { key: 'acct-a', value: 'not json' },
    { key: 'acct-b', value: JSON.stringify({ event_id: 'half-an-event' }) },
    { key: 'acct-c', value: JSON.stringify(ratedEvent(9_999, accounts, { amount: '999999999999999.999999' })) },
    { key: 'acct-d', value: null },
  ];

  it('writes each valid event once, dead-letters the invalid ones, and the views add up exactly', async () => {
    // the rater republishing after a crash: the same events again, at later offsets of the same partitions
    const republished = first.filter((_, i) => i % 40 === 0);
    await produceRated(stack, [...first.slice(0, 1200), invalid[0]!, invalid[1]!, ...republished, ...first.slice(1200), invalid[2]!, invalid[3]!]);
    const sink = await start();
    await settle();

    await expectExactly(first);
    expect(sink.stats).toMatchObject({ rows: first.length, duplicates: republished.length, invalid: invalid.length, retries: 0 });
    const dead = await readTopic(stack, stack.topics.dlq, invalid.length);
    const letter = (code: string, value: string | null) => {
      const decoded = decodeRatedEvent(value === null ? null : Buffer.from(value));
      return { code, value, reason: decoded.ok ? 'decoded' : decoded.reason, source: stack.topics.rated };
    };
    const seen = dead.map((m) => ({
      code: m.headers!['error-code']!.toString(), value: m.value?.toString() ?? null,
      reason: m.headers!['error-reason']!.toString(), source: m.headers!['source-topic']!.toString(),
    }));
    const byCode = (a: { code: string; value: string | null }, b: { code: string; value: string | null }) =>
      `${a.code} ${a.value}`.localeCompare(`${b.code} ${b.value}`);
    expect(seen.sort(byCode)).toEqual([
      letter('INVALID_JSON', 'not json'),
      letter('INVALID_JSON', null),
      letter('INVALID_RATED_EVENT', invalid[1]!.value as string),
      letter('OUT_OF_RANGE', invalid[2]!.value as string),
    ].sort(byCode));
    expect(seen.map((l) => l.reason)).not.toContain('decoded');
  });

  it('drops events republished after they were written, and the next different batch still lands', async () => {
    const sink = running[0]!;
    const republished = first.filter((_, i) => i % 25 === 0);
    await produceRated(stack, [...republished, ...second]);
    await settle();
    await expectExactly([...first, ...second]);
    expect(sink.stats).toMatchObject({ rows: first.length + second.length, duplicates: first.length / 40 + republished.length });
  });

  it('re-reading the same offsets writes nothing: after an offset reset, and from a second group', async () => {
    const all = [...first, ...second];
    const valid = all.length + first.length / 40 + first.length / 25;
    const sink = running.shift()!;
    await sink.stop(); // the graceful stop commits what was written and leaves the group
    expect(await caughtUp(admin, group, stack.topics.rated)).toBe(true);

    const starts = (await admin.fetchTopicOffsets(stack.topics.rated)).map((p) => ({ partition: p.partition, offset: p.low }));
    await admin.setOffsets({ groupId: group, topic: stack.topics.rated, partitions: starts });
    expect(await committed(admin, group, stack.topics.rated)).toEqual(Object.fromEntries(starts.map((p) => [p.partition, p.offset])));
    const replay = await start();
    await settle();
    await expectExactly(all);
    expect(replay.stats).toMatchObject({ rows: 0, duplicates: valid, invalid: invalid.length });

    const other = await start({ SINK_GROUP_ID: `${group}-second` });
    await settle(`${group}-second`);
    await expectExactly(all);
    expect(other.stats).toMatchObject({ rows: 0, duplicates: valid });
  });
});
