import type { Kafka } from 'kafkajs';
import { now } from './produce.js';
import type { Offsets } from './progress.js';

export interface CeilingResult {
  events: number;
  seconds: number;
  eventsPerSecond: number;
  /** group join excluded: from the moment the consumer held its partitions */
  joinMs: number;
}

/**
 * The ceiling: a bare kafkajs consumer that reads usage.events from the beginning up to `ends` and
 * JSON-decodes every value, nothing else. Same fetch sizes and partition concurrency as the rater,
 * so the difference to the rater is the rating, not the consumer configuration.
 */
export async function runCeiling(
  kafka: Kafka, topic: string, groupId: string, ends: Offsets,
  fetch: { maxBytesPerPartition: number; partitionsConsumedConcurrently: number },
  timeoutMs: number,
): Promise<CeilingResult> {
  const consumer = kafka.consumer({
    groupId,
    maxBytesPerPartition: fetch.maxBytesPerPartition,
    maxBytes: 4 * fetch.maxBytesPerPartition,
  });
  const pending = new Set([...ends].filter(([, high]) => high > 0n).map(([p]) => p));
  const target = Number([...ends.values()].reduce((a, b) => a + b, 0n));
  let events = 0;
  let decodedBytes = 0;
  const t0 = now();
  let joinedAt = 0;
  consumer.on(consumer.events.GROUP_JOIN, () => {
    joinedAt ||= now();
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    const endedAt = await new Promise<number>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`ceiling consumer read ${events}/${target} events in ${timeoutMs} ms`)), timeoutMs);
      if (pending.size === 0) resolve(now());
      void consumer.run({
        partitionsConsumedConcurrently: fetch.partitionsConsumedConcurrently,
        eachBatch: async ({ batch }) => {
          const high = ends.get(batch.partition) ?? 0n;
          for (const m of batch.messages) {
            if (BigInt(m.offset) >= high) break; // later phases' events: not part of this measurement
            const v = JSON.parse(m.value!.toString('utf8')) as { id: string };
            decodedBytes += v.id.length; // keep the decode observable
            events++;
          }
          if (BigInt(batch.lastOffset()) + 1n >= high) pending.delete(batch.partition);
          if (pending.size === 0) resolve(now());
        },
      }).catch(reject);
    });
    const from = joinedAt || t0;
    const seconds = (endedAt - from) / 1000;
    if (events !== target) throw new Error(`ceiling consumer decoded ${events} events, the topic holds ${target} (${decodedBytes})`);
    return { events, seconds, eventsPerSecond: events / seconds, joinMs: Math.round(from - t0) };
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
}
