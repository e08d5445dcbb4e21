import { Partitioners } from 'kafkajs';
import { SERIAL_PRODUCER_CONFIG } from '@meterstream/platform/kafka';
import { describe, expect } from 'vitest';
import { encodeUsageEvent, UsageEvent, type UsageEventInput } from '@meterstream/schemas';
import { test as base } from '../../tests/support/test.js';
import type { TestStack } from '../../tests/support/stack.js';
import {
  InvalidUsageEventError, ProducerClosedError, UsageEventProducer, type UsageEventProducerOptions,
} from '../src/producer-client.js';
import { collectTopic, uid, type TopicCollector } from './support.js';

/** Each test on topics of its own, with `topic` reading its usage.events from the start. */
const test = base.extend<{ topic: TopicCollector }>({
  topic: async ({ stack }, use) => {
    const topic = await collectTopic(stack.kafka, stack.topics.events);
    await use(topic);
    await topic.stop();
  },
});

const event = (over: Partial<UsageEventInput> = {}): UsageEventInput => ({
  id: uid(), account_id: 'acct-pc', product: 'tts', quantity: '2.25', timestamp: new Date().toISOString(), ...over,
});

/** A client over a producer whose Produce requests are counted, to see how sends were batched. */
async function countedProducer(stack: TestStack, opts: Partial<UsageEventProducerOptions> = {}) {
  const kp = stack.kafka.producer(SERIAL_PRODUCER_CONFIG);
  const counts = { produceRequests: 0 };
  kp.on(kp.events.REQUEST, (e) => {
    if (e.payload.apiName === 'Produce') counts.produceRequests++;
  });
  await kp.connect();
  return { producer: new UsageEventProducer(kp, { topic: stack.topics.events, ...opts }), counts };
}

describe('UsageEventProducer', () => {
  test('resolves once the event is on the topic, keyed by account, quantity canonical', async ({ stack, topic }) => {
    const p = await UsageEventProducer.connect(stack.kafka, { topic: stack.topics.events });
    const e = event({ quantity: 3 });
    await p.send(e);
    expect(p.bufferedMessages).toBe(0);
    const [m] = await topic.waitFor([e.id!]);
    expect(m).toMatchObject({ key: 'acct-pc', value: { ...e, quantity: '3.000000' } });
    await p.close();
  });

  test("puts each account on the partition kafkajs's default partitioner picks (murmur2, as the Java client)", async ({ stack, topic }) => {
    const p = await UsageEventProducer.connect(stack.kafka, { topic: stack.topics.events });
    const events = Array.from({ length: 12 }, (_, i) => event({ account_id: `acct-part-${i}` }));
    await p.publish(events.map((e) => UsageEvent.parse(e)));
    const got = await topic.waitFor(events.map((e) => e.id!));
    const byDefault = Partitioners.DefaultPartitioner();
    const partitionMetadata = Array.from({ length: stack.config.KAFKA_EVENTS_PARTITIONS }, (_, partitionId) => ({
      partitionId, leader: 1, partitionErrorCode: 0, replicas: [1], isr: [1],
    }));
    expect(got.map((m) => m.partition)).toEqual(events.map((e) => byDefault({ topic: stack.topics.events, partitionMetadata, message: { key: e.account_id, value: null } })));
    await p.close();
  });

  test('rejects what the HTTP ingest would reject, without buffering it', async ({ stack }) => {
    const p = await UsageEventProducer.connect(stack.kafka, { topic: stack.topics.events });
    const negative = p.send(event({ quantity: '-1' }));
    await expect(negative).rejects.toThrow(InvalidUsageEventError);
    await expect(negative).rejects.toMatchObject({ code: 'VALIDATION_ERROR', message: 'quantity: quantity must not be negative' });
    const old = p.send(event({ timestamp: '2001-01-01T00:00:00Z' }));
    await expect(old).rejects.toMatchObject({ code: 'TIMESTAMP_TOO_OLD' });
    expect(p.bufferedMessages).toBe(0);
    await p.close();
  });

  test('batches sends that arrive within the linger into one produce request, in order', async ({ stack, topic }) => {
    const { producer, counts } = await countedProducer(stack, { lingerMs: 50 });
    const before = counts.produceRequests;
    const events = Array.from({ length: 200 }, () => event({ account_id: 'acct-batch' }));
    await Promise.all(events.map((e) => producer.send(e)));
    expect(counts.produceRequests - before).toBe(1);
    const got = await topic.waitFor(events.map((e) => e.id!));
    const onPartition = topic.messages.filter((m) => m.key === 'acct-batch').map((m) => m.value.id);
    expect(onPartition).toEqual(events.map((e) => e.id));
    expect(new Set(got.map((m) => m.partition)).size).toBe(1);
    await producer.close();
  });

  test('splits a batch into produce requests of at most maxSendBytes, in order', async ({ stack, topic }) => {
    const { producer, counts } = await countedProducer(stack, { lingerMs: 50, maxSendBytes: 2_000 });
    const before = counts.produceRequests;
    const events = Array.from({ length: 25 }, () => event({ account_id: 'acct-split' }));
    await Promise.all(events.map((e) => producer.send(e)));
    // Every message is as long as the others; each counts 64 bytes of overhead on top of its key and value.
    const [messageBytes] = new Set(events.map((e) => Buffer.byteLength(e.account_id) + Buffer.byteLength(encodeUsageEvent(UsageEvent.parse(e))) + 64));
    expect(counts.produceRequests - before).toBe(Math.ceil(events.length / Math.floor(2_000 / messageBytes!)));
    await topic.waitFor(events.map((e) => e.id!));
    expect(topic.messages.filter((m) => m.key === 'acct-split').map((m) => m.value.id)).toEqual(events.map((e) => e.id));
    await producer.close();
  });

  test('lands a publish far above the 1 MiB a partition takes per request: one account, ~2.5 MB', async ({ stack, topic }) => {
    const p = await UsageEventProducer.connect(stack.kafka, { topic: stack.topics.events, maxBufferedMessages: 20_000 });
    const note = 'x'.repeat(200);
    const events = Array.from({ length: 10_000 }, () => event({ account_id: 'acct-big', properties: { note } }));
    const parsed = events.map((e) => UsageEvent.parse(e));
    await p.publish(parsed);
    const got = await topic.waitFor(events.map((e) => e.id!), 60_000);
    expect(new Set(got.map((m) => m.partition)).size).toBe(1);
    expect(topic.messages.filter((m) => m.key === 'acct-big').map((m) => m.value.id)).toEqual(events.map((e) => e.id));
    await p.close();
  });

  test('applies backpressure: never holds more than maxBufferedMessages, later sends wait their turn', async ({ stack }) => {
    const p = await UsageEventProducer.connect(stack.kafka, { topic: stack.topics.events, maxBufferedMessages: 5, lingerMs: 1 });
    let maxSeen = 0;
    const settled: number[] = [];
    const sends = Array.from({ length: 30 }, (_, i) =>
      p.send(event()).then(() => {
        maxSeen = Math.max(maxSeen, p.bufferedMessages);
        settled.push(i);
      }),
    );
    await Promise.resolve();
    expect(p.bufferedMessages).toBe(5);
    await Promise.all(sends);
    expect(maxSeen).toBeLessThanOrEqual(5);
    expect(settled).toEqual([...settled].sort((a, b) => a - b));
    expect(p.bufferedMessages).toBe(0);
    await p.close();
  });

  test('lets a waiting send give up through its signal; that event is never produced', async ({ stack, topic }) => {
    const p = await UsageEventProducer.connect(stack.kafka, { topic: stack.topics.events, maxBufferedMessages: 1, lingerMs: 200 });
    const [first, dropped, last] = [event({ account_id: 'acct-abort' }), event({ account_id: 'acct-abort' }), event({ account_id: 'acct-abort' })];
    const sent = p.send(first);
    const ctl = new AbortController();
    const waiting = p.send(dropped, ctl.signal);
    ctl.abort(new Error('caller gave up'));
    await expect(waiting).rejects.toThrow('caller gave up');
    await sent;
    await p.send(last);
    await topic.waitFor([first.id!, last.id!]);
    expect(topic.messages.filter((m) => m.key === 'acct-abort').map((m) => m.value.id)).toEqual([first.id, last.id]);
    await p.close();
  });

  test('flush() sends without waiting out the linger; close() flushes, then refuses new events', async ({ stack, topic }) => {
    const p = await UsageEventProducer.connect(stack.kafka, { topic: stack.topics.events, lingerMs: 60_000 });
    const events = [event(), event(), event()];
    const acked = events.map((e) => p.send(e));
    const started = Date.now();
    await p.flush();
    expect(Date.now() - started).toBeLessThan(10_000);
    await Promise.all(acked);

    const last = event();
    const pending = p.send(last);
    await p.close();
    await pending;
    await topic.waitFor([...events, last].map((e) => e.id!));
    await expect(p.send(event())).rejects.toThrow(ProducerClosedError);
  });
});
