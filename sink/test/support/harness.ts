import type { Admin, KafkaMessage } from 'kafkajs';
import { loadConfig } from '@meterstream/platform/config';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { createLogger } from '@meterstream/platform/logger';
import type { RatedEvent } from '@meterstream/schemas';
import type { TestStack } from '../../../tests/support/stack.js';
import { SinkConfig } from '../../src/config.js';
import { startSink, type Sink } from '../../src/sink.js';
import { byKey, type Totals } from './rated-events.js';

export const log = createLogger('sink-test', process.env.LOG_LEVEL ?? 'warn');

/** Fast fetches and retries, so that tests do not wait on production-sized timers. */
export function sinkConfig(stack: TestStack, extra: Record<string, string> = {}): SinkConfig {
  return loadConfig(SinkConfig, {
    ...stack.env, SINK_FETCH_MAX_WAIT_MS: '100', SINK_RETRY_INITIAL_MS: '50', SINK_RETRY_MAX_MS: '500', ...extra,
  });
}

export function runSink(stack: TestStack, ch: ClickHouseClient, database: string, extra: Record<string, string> = {}): Promise<Sink> {
  return startSink({ config: sinkConfig(stack, extra), ch, database, kafka: stack.kafka, log });
}

export type RawMessage = { key: string | null; value: string | Buffer | null };

/** Produces to usage.rated as the rater does: keyed by account, one JSON event per message. */
export async function produceRated(stack: TestStack, messages: readonly (RatedEvent | RawMessage)[]): Promise<void> {
  const producer = stack.kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (let i = 0; i < messages.length; i += 2000) {
      await producer.send({
        topic: stack.topics.rated,
        acks: -1,
        messages: messages.slice(i, i + 2000).map((m) => ('event_id' in m ? { key: m.account_id, value: JSON.stringify(m) } : m)),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

export async function waitFor<T>(what: string, check: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The group's committed offsets, per partition ('-1' for none). */
export async function committed(admin: Admin, groupId: string, topic: string): Promise<Record<number, string>> {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return Object.fromEntries((t?.partitions ?? []).map((p) => [p.partition, p.offset]));
}

/** True once the group has committed everything the topic holds: the sink has caught up. */
export async function caughtUp(admin: Admin, groupId: string, topic: string): Promise<boolean> {
  const [ends, done] = await Promise.all([admin.fetchTopicOffsets(topic), committed(admin, groupId, topic)]);
  return ends.every((p) => p.high === '0' || done[p.partition] === p.high);
}

export async function rows<T>(ch: ClickHouseClient, query: string): Promise<T[]> {
  return (await ch.query({ query, format: 'JSONEachRow' })).json<T>();
}

export async function countRated(ch: ClickHouseClient, database: string): Promise<number> {
  const [r] = await rows<{ n: string }>(ch, `SELECT toString(count()) AS n FROM ${database}.rated_events`);
  return Number(r!.n);
}

/**
 * A view's totals per (account, period, product, currency), the sums read as text so that no
 * Int64 goes through a JS number.
 */
export async function totalsIn(ch: ClickHouseClient, database: string, period: 'day' | 'month'): Promise<Totals[]> {
  const totals = await rows<Totals>(ch, `
    SELECT concat(account_id, '|', toString(${period}), '|', product, '|', currency) AS key,
           toString(sum(events)) AS events, toString(sum(quantity)) AS quantity, toString(sum(amount)) AS amount,
           toString(sum(from_grants)) AS from_grants, toString(sum(postpaid)) AS postpaid, toString(sum(overdraft)) AS overdraft
    FROM ${database}.usage_${period === 'day' ? 'daily' : 'monthly'}
    GROUP BY account_id, ${period}, product, currency`);
  return totals.sort(byKey);
}

/** Reads the first n messages of a topic through a throwaway consumer group. */
export async function readTopic(stack: TestStack, topic: string, n: number): Promise<KafkaMessage[]> {
  const consumer = stack.kafka.consumer({ groupId: `reader-${topic}-${Date.now()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    const got: KafkaMessage[] = [];
    await consumer.run({ eachMessage: async ({ message }) => void got.push(message) });
    await waitFor(`${n} messages on ${topic}`, async () => got.length >= n);
    return got;
  } finally {
    await consumer.disconnect();
  }
}
