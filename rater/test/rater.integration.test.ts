import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { createAccount, ledgerCount, produceEvents, setPrices, usageEvent, waitRaterIdle, readTopic, readTopicMessages } from '../../tests/support/fixtures.js';
import { expectBooksBalance } from '../../tests/support/books.js';
import { startService, waitFor, type ServiceProcess } from '../../tests/support/processes.js';
import { waitGroupStable } from '../../tests/support/kafka-groups.js';
import type { Admin } from 'kafkajs';
import { encodeUsageEvent, type UsageEvent } from '@meterstream/schemas';
import { SERIAL_PRODUCER_CONFIG } from '@meterstream/platform/kafka';
import { CRASH_POINTS } from '@meterstream/ledger/write-order';

const PRODUCT_QTY: [string, () => string][] = [
  ['voice', () => String(1 + Math.floor(Math.random() * 300))],
  ['chat', () => String(Math.floor(Math.random() * 5000))],
  ['image', () => String(1 + Math.floor(Math.random() * 4))],
  ['text', () => String(Math.floor(Math.random() * 800))],
  ['call', () => '1'],
];

function workload(accounts: string[], n: number, startMs: number, spanMs: number): UsageEvent[] {
  const out: UsageEvent[] = [];
  for (let i = 0; i < n; i++) {
    const [product, qty] = PRODUCT_QTY[i % PRODUCT_QTY.length]!;
    out.push(usageEvent(accounts[i % accounts.length]!, product, qty(), `ev-${i}`, new Date(startMs + Math.floor((i / n) * spanMs))));
  }
  return out;
}

async function makeAccounts(stack: TestStack, n: number): Promise<string[]> {
  const soon = new Date(Date.now() - 60_000).toISOString(); // expires in the middle of the workload's timestamps
  const later = new Date(Date.now() + 30 * 86_400_000).toISOString();
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    ids.push(await createAccount(stack, { billing_mode: i % 3 === 0 ? 'postpaid' : 'prepaid' }, [
      { kind: 'gift', amount: '5', expires_at: soon },
      { kind: 'allowance', amount: '3', expires_at: later },
      { kind: 'purchased', amount: i % 2 ? '20' : '1' },
    ]));
  }
  return ids;
}

/** How often each event id of `accounts` is on usage.rated. */
async function ratedCounts(stack: TestStack, accounts: string[]): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (const v of await readTopic(stack, stack.topics.rated)) {
    const r = JSON.parse(v) as { account_id: string; event_id: string };
    if (accounts.includes(r.account_id)) counts.set(r.event_id, (counts.get(r.event_id) ?? 0) + 1);
  }
  return counts;
}

describe('rater against real Kafka, Postgres and Redis', () => {
  let stack: TestStack;
  let admin: Admin;
  const procs: ServiceProcess[] = [];
  const rater = (extra: Record<string, string> = {}) => {
    const p = startService('rater/src/main.ts', { ...stack.env, LOG_LEVEL: 'info', RATER_SESSION_TIMEOUT_MS: '6000', RATER_MAX_BYTES_PER_PARTITION: '65536', ...extra });
    procs.push(p);
    onTestFailed(() => console.error(`rater ${procs.indexOf(p)} output:\n${p.output().slice(-6000)}`));
    return p;
  };

  beforeAll(async () => {
    stack = await openStack('rater');
    admin = stack.kafka.admin();
    await admin.connect();
    await setPrices(stack);
  });
  afterEach(async () => {
    await Promise.all(procs.splice(0).map((p) => p.kill('SIGTERM')));
  });
  afterAll(async () => {
    await admin?.disconnect();
    await stack.close();
  });

  it('charges every event once, burns grants in order, and keeps Redis equal to Postgres', async () => {
    const accounts = await makeAccounts(stack, 12);
    const events = workload(accounts, 3000, Date.now() - 120_000, 120_000);
    // a producer retry and an HTTP retry: the same events again, at new offsets
    const resent = [...events.slice(100, 400), ...events.slice(2000, 2100)];
    const r = rater();
    await produceEvents(stack, events);
    await produceEvents(stack, resent);
    await waitFor('all events rated', async () => (await ledgerCount(stack, accounts)) === events.length);
    await waitRaterIdle(stack);
    await expectBooksBalance(stack, [...events, ...resent], accounts);
    // The gift expired a minute ago: no event stamped after that burned it.
    const late = await stack.pool.query(
      `SELECT count(*) AS n FROM usage_ledger l, jsonb_array_elements(l.grant_split) s
        JOIN grants g ON g.id = s->>'grant_id'
        WHERE l.account_id = ANY($1) AND g.kind = 'gift' AND l.event_time >= g.expires_at`, [accounts]);
    expect(late.rows[0]!.n).toBe(0n);
    await r.kill('SIGTERM');
    expect(await r.exited).toBe(0);
    // A clean stop leaves the group at once (a crash would hold its partitions for the session timeout).
    const [group] = (await admin.describeGroups([stack.env.RATER_GROUP_ID!])).groups;
    expect({ state: group?.state, members: group?.members.length }).toEqual({ state: 'Empty', members: 0 });
  });

  // Every point between two steps of the write order (commit, publish, cache, offsets).
  for (const point of CRASH_POINTS) {
    it(`loses nothing and charges nothing twice when killed ${point.replaceAll('-', ' ')}`, async () => {
      const accounts = await makeAccounts(stack, 6);
      const events = workload(accounts, 1500, Date.now() - 60_000, 60_000).map((e) => ({ ...e, id: `${point}-${e.id}` }));
      await produceEvents(stack, events);
      const doomed = rater({ RATER_CRASH_AT: point, RATER_CRASH_ON_BATCH: '2' });
      expect(await doomed.exited).toBe('SIGKILL');
      // What the doomed rater committed, and whether its partition's published watermark passed it.
      const committed = await stack.pool.query<{ event_id: string; published: boolean }>(
        `SELECT l.event_id, l.src_offset < o.published_offset AS published
           FROM usage_ledger l JOIN consumer_offsets o ON o.group_id = $1 AND o.topic = l.src_topic AND o.partition = l.src_partition
          WHERE l.account_id = ANY($2)`, [stack.env.RATER_GROUP_ID, accounts]);
      const markedPublished = new Set(committed.rows.filter((r) => r.published).map((r) => r.event_id));
      // Committed before the kill, the crashed batch's watermark never moved.
      if (point !== 'before-pg-commit') expect(committed.rows.length - markedPublished.size).toBeGreaterThan(0);
      const ratedBefore = await ratedCounts(stack, accounts);
      rater();
      await waitRaterIdle(stack);
      await expectBooksBalance(stack, events, accounts);
      // The successor published exactly what Postgres did not hold as published: each unrated event
      // once, each committed but unmarked one (again), nothing below the watermark.
      const ratedAfter = await ratedCounts(stack, accounts);
      expect(new Map(events.map((e) => [e.id, (ratedAfter.get(e.id) ?? 0) - (ratedBefore.get(e.id) ?? 0)])))
        .toEqual(new Map(events.map((e) => [e.id, markedPublished.has(e.id) ? 0 : 1])));
    });
  }

  it('charges each event once while a second rater joins and the first leaves mid-stream', async () => {
    const accounts = await makeAccounts(stack, 10);
    const events = workload(accounts, 6000, Date.now() - 60_000, 60_000).map((e) => ({ ...e, id: `rb-${e.id}` }));
    const groupId = stack.env.RATER_GROUP_ID!;
    const all = Array.from({ length: stack.config.KAFKA_EVENTS_PARTITIONS }, (_, p) => p);
    const partitionsOf = (members: { assignment: Record<string, number[]> }[]) =>
      members.flatMap((m) => m.assignment[stack.topics.events] ?? []).sort((a, b) => a - b);
    const first = rater();
    const [alone] = await waitGroupStable(admin, groupId, 1);
    expect(partitionsOf([alone!])).toEqual(all);
    let pair: Awaited<ReturnType<typeof waitGroupStable>> = [];
    for (let i = 0; i < 6; i++) {
      await produceEvents(stack, events.slice(i * 1000, (i + 1) * 1000));
      if (i === 1) rater();
      if (i === 2) {
        // The second rater joined: each holds some of the partitions, none twice.
        pair = await waitGroupStable(admin, groupId, 2);
        expect(partitionsOf(pair)).toEqual(all);
      }
      if (i === 3) expect(await first.kill('SIGTERM')).toBe(0);
      // The next slice goes out while this one is being rated: rating has reached it.
      await waitFor(`rating reached slice ${i}`, async () => (await ledgerCount(stack, accounts)) > i * 1000);
    }
    // The first rater left; the second, a member since the join, holds every partition.
    const [survivor] = await waitGroupStable(admin, groupId, 1);
    expect(partitionsOf([survivor!])).toEqual(all);
    expect(pair.map((m) => m.memberId)).toEqual(expect.arrayContaining([alone!.memberId, survivor!.memberId]));
    expect(survivor!.memberId).not.toBe(alone!.memberId);
    await waitRaterIdle(stack);
    await expectBooksBalance(stack, events, accounts);
  });

  it('rebuilds balances from Postgres when Redis loses its data mid-stream', async () => {
    const accounts = await makeAccounts(stack, 8);
    const events = workload(accounts, 4000, Date.now() - 60_000, 60_000).map((e) => ({ ...e, id: `fl-${e.id}` }));
    rater();
    await produceEvents(stack, events.slice(0, 2000));
    await waitFor('half rated', async () => (await ledgerCount(stack, accounts)) >= 1000);
    const keys = await stack.redis.keys(`${stack.env.REDIS_PREFIX}*`);
    if (keys.length) await stack.redis.del(...keys);
    await produceEvents(stack, events.slice(2000));
    await waitRaterIdle(stack);
    await expectBooksBalance(stack, events, accounts);
  });

  it('sends unknown accounts, unknown products and unreadable payloads to the dead-letter topic, and rates the rest', async () => {
    const [account] = await makeAccounts(stack, 1);
    const good = workload([account!], 50, Date.now() - 10_000, 10_000).map((e) => ({ ...e, id: `dlq-${e.id}` }));
    const producer = stack.kafka.producer(SERIAL_PRODUCER_CONFIG);
    await producer.connect();
    await producer.send({
      topic: stack.topics.events,
      acks: -1,
      messages: [
        { key: account!, value: '{not json' },
        { key: account!, value: JSON.stringify({ id: 'x1', account_id: account, product: 'chat', quantity: -1, timestamp: new Date().toISOString() }) },
        { key: 'nobody', value: encodeUsageEvent(usageEvent('acct-nobody', 'chat', '10', 'x2')) },
        { key: account!, value: encodeUsageEvent(usageEvent(account!, 'teleport', '1', 'x3')) },
      ],
    });
    await producer.disconnect();
    await produceEvents(stack, good);
    rater();
    await waitRaterIdle(stack);
    await expectBooksBalance(stack, good, [account!]);
    const dead = await readTopicMessages(stack, stack.topics.dlq);
    const byCode = new Map(dead.map((m) => [m.headers['error-code'], m]));
    expect([...byCode.keys()].sort()).toEqual(['INVALID_EVENT', 'INVALID_JSON', 'UNKNOWN_ACCOUNT', 'UNKNOWN_PRODUCT']);
    expect(byCode.get('INVALID_JSON')!.value).toBe('{not json'); // the original bytes
    expect(byCode.get('INVALID_EVENT')!.headers['error-reason']).toContain('quantity');
    expect(byCode.get('UNKNOWN_PRODUCT')!.headers['error-reason']).toContain('teleport');
  });

  it('prices with the price book as changed while running', async () => {
    const [account] = await makeAccounts(stack, 1);
    // a product of its own: other test files share the price table
    await setPrices(stack, { portrait: { unit: 'image', unit_price: '0.04', per: 1, currency: 'USD' } });
    rater();
    const rate = async (id: string) => {
      await produceEvents(stack, [usageEvent(account!, 'portrait', '2', id)]);
      await waitRaterIdle(stack);
    };
    const ledger = async () => (await stack.pool.query<{ event_id: string; amount: bigint }>(
      'SELECT event_id, amount FROM usage_ledger WHERE account_id = $1 ORDER BY seq', [account])).rows.map((r) => [r.event_id, r.amount]);
    await rate('pc-1');
    await setPrices(stack, { portrait: { unit: 'image', unit_price: '0.05', per: 1, currency: 'USD' } });
    // The NOTIFY reaches the rater asynchronously: probe until an event is priced anew.
    const probes: string[] = [];
    await waitFor('an event priced at the new price', async () => {
      probes.push(`pc-probe-${probes.length + 1}`);
      await rate(probes.at(-1)!);
      return (await ledger()).at(-1)?.[1] === 100_000n;
    });
    await rate('pc-2');
    // The old price up to the reload, the new one from then on, never back.
    expect(await ledger()).toEqual([
      ['pc-1', 80_000n],
      ...probes.map((id, i) => [id, i < probes.length - 1 ? 80_000n : 100_000n]),
      ['pc-2', 100_000n],
    ]);
  });
});
