import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openStack, type TestStack } from '../../tests/support/stack.js';
import { createAccount, produceEvents, setPrices, usageEvent, waitRaterIdle } from '../../tests/support/fixtures.js';
import { expectBooksBalance } from '../../tests/support/books.js';
import { encodeUsageEvent, type UsageEvent } from '@meterstream/schemas';
import { murmur2, Murmur2Partitioner } from '@meterstream/platform/partitioner';
import { startInProcessRater, type InProcessRater } from './in-process-rater.js';

describe('the rater follows Kafka\'s offsets', () => {
  let stack: TestStack;
  const raters: InProcessRater[] = [];
  const startRater = async () => {
    const r = await startInProcessRater(stack);
    raters.push(r);
    return r;
  };
  const partitionOf = (account: string) => (murmur2(Buffer.from(account)) & 0x7fffffff) % stack.config.KAFKA_EVENTS_PARTITIONS;
  const events = (account: string, prefix: string, n: number): UsageEvent[] =>
    Array.from({ length: n }, (_, i) => usageEvent(account, 'image', String(1 + (i % 3)), `${prefix}-${i}`));
  async function partitionEnd(partition: number): Promise<{ low: bigint; high: bigint }> {
    const admin = stack.kafka.admin();
    await admin.connect();
    try {
      const p = (await admin.fetchTopicOffsets(stack.topics.events)).find((o) => o.partition === partition)!;
      return { low: BigInt(p.low), high: BigInt(p.high) };
    } finally {
      await admin.disconnect();
    }
  }

  beforeAll(async () => {
    stack = await openStack('offsets');
    await setPrices(stack);
  });
  afterEach(async () => {
    await Promise.all(raters.splice(0).map((r) => r.stop()));
  });
  afterAll(async () => {
    await stack.close();
  });

  it('rates every committed transaction once, no aborted one, reaches lag 0 and never spins', async () => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    const partition = partitionOf(account);
    const producer = stack.kafka.producer({ transactionalId: `tx-${stack.env.RATER_GROUP_ID}`, idempotent: true, maxInFlightRequests: 1, createPartitioner: Murmur2Partitioner });
    await producer.connect();
    const inTransaction = async (batch: UsageEvent[], outcome: 'commit' | 'abort') => {
      const tx = await producer.transaction();
      await tx.send({ topic: stack.topics.events, acks: -1, messages: batch.map((e) => ({ key: account, value: encodeUsageEvent(e) })) });
      await (outcome === 'commit' ? tx.commit() : tx.abort());
    };
    const committed = [events(account, 'c1', 5), events(account, 'c2', 4), events(account, 'c3', 3)];
    try {
      // Two transactions committed around an aborted one, fetched together.
      await inTransaction(committed[0]!, 'commit');
      await inTransaction(events(account, 'a1', 4), 'abort');
      await inTransaction(committed[1]!, 'commit');
      const rater = await startRater();
      await waitRaterIdle(stack);
      // A partition that ends in aborted records and their marker: a fetch with nothing to rate.
      await inTransaction(events(account, 'a2', 3), 'abort');
      await waitRaterIdle(stack);
      // Later events, transactional and not, on the same partition.
      await inTransaction(committed[2]!, 'commit');
      const plain = events(account, 'p', 2);
      await produceEvents(stack, plain);
      await waitRaterIdle(stack);

      await expectBooksBalance(stack, [...committed.flat(), ...plain], [account]);
      const { high } = await partitionEnd(partition);
      const admin = stack.kafka.admin();
      await admin.connect();
      const [group] = await admin.fetchOffsets({ groupId: stack.env.RATER_GROUP_ID!, topics: [stack.topics.events] });
      await admin.disconnect();
      expect(group!.partitions.find((p) => p.partition === partition)!.offset).toBe(String(high)); // Kafka's lag is 0 too
      expect(rater.stats.resumeSeeks).toBe(0);
      expect(rater.stats.lostRanges).toEqual([]);
      // Each rating transaction moves the fence forward, so there are at most as many as offsets.
      expect(rater.stats.transactions).toBeLessThanOrEqual(Number(high));
    } finally {
      await producer.disconnect();
    }
  });

  it('reports offsets deleted by retention before they were rated once, and rates what follows', async () => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    const partition = partitionOf(account);
    const before = events(account, 'r-before', 3);
    const first = await startRater();
    await produceEvents(stack, before);
    await waitRaterIdle(stack);
    await first.stop();

    const unrated = events(account, 'r-after', 5);
    await produceEvents(stack, unrated);
    const { high } = await partitionEnd(partition);
    const admin = stack.kafka.admin();
    await admin.connect();
    await admin.fetchTopicMetadata({ topics: [stack.topics.events] }); // deleteTopicRecords needs it loaded
    await admin.deleteTopicRecords({ topic: stack.topics.events, partitions: [{ partition, offset: String(high - 2n) }] });
    await admin.disconnect();

    const second = await startRater();
    await waitRaterIdle(stack);
    await expectBooksBalance(stack, [...before, ...unrated.slice(3)], [account]);
    expect(second.stats.lostRanges).toEqual([{ partition, from: String(high - 5n), to: String(high - 2n) }]);
    expect(second.stats.resumeSeeks).toBe(0);
  });

  it('rates from Postgres\'s position when Kafka\'s committed offset ran ahead of it', async () => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    const partition = partitionOf(account);
    const rated = events(account, 'k-before', 3);
    const first = await startRater();
    await produceEvents(stack, rated);
    await waitRaterIdle(stack);
    await first.stop();

    // As after restoring an older database: Kafka says these were consumed, Postgres does not.
    const skipped = events(account, 'k-after', 4);
    await produceEvents(stack, skipped);
    const { high } = await partitionEnd(partition);
    const admin = stack.kafka.admin();
    await admin.connect();
    await admin.setOffsets({ groupId: stack.env.RATER_GROUP_ID!, topic: stack.topics.events, partitions: [{ partition, offset: String(high) }] });
    await admin.disconnect();

    await startRater();
    await waitRaterIdle(stack);
    await expectBooksBalance(stack, [...rated, ...skipped], [account]);
  });
});
