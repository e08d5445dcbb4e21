import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka, Message, Producer } from 'kafkajs';
import { encodeUsageEvent, toMicros, type UsageEvent, type UsageEventInput } from '@meterstream/schemas';
import { SERIAL_PRODUCER_CONFIG } from '@meterstream/platform/kafka';

/** Wall clock with sub-millisecond resolution, epoch ms. */
export const now = (): number => performance.timeOrigin + performance.now();

/** The bytes a producer puts on usage.events: keyed by account, quantity in canonical decimal text. */
export function toMessage(e: UsageEventInput): Message {
  const event = { ...e, quantity: toMicros(e.quantity) } as UsageEvent;
  return { key: e.account_id, value: encodeUsageEvent(event) };
}

/** The project's producer settings (idempotent, acks=all, murmur2 by account): per-account order holds. */
export async function openProducer(kafka: Kafka): Promise<Producer> {
  const producer = kafka.producer(SERIAL_PRODUCER_CONFIG);
  await producer.connect();
  return producer;
}

/** Sends pre-encoded messages as fast as the broker takes them; returns first-send and last-ack times. */
export async function produceAll(
  producer: Producer, topic: string, messages: readonly Message[], chunk = 5_000,
): Promise<{ startedAt: number; endedAt: number }> {
  const startedAt = now();
  for (let i = 0; i < messages.length; i += chunk) {
    await producer.send({ topic, acks: -1, messages: messages.slice(i, i + chunk) as Message[] });
  }
  return { startedAt, endedAt: now() };
}

export interface PacedResult {
  startedAt: number;
  endedAt: number;
  sent: number;
  /** largest number of messages handed to one send (the producer's catch-up after a slow ack) */
  maxBatch: number;
  sends: number;
}

/**
 * Open-loop producer: message i is due at scheduledAt(i) = start + i / rate, whatever happened to the
 * earlier ones. Each send takes everything due by then (one send in flight, so a slow ack turns into a
 * bigger next batch, never into a lower offered load). onSend sees each batch before it leaves.
 */
export async function producePaced(
  producer: Producer, topic: string, messages: readonly Message[], startMs: number, scheduledAt: (i: number) => number,
  onSend: (from: number, to: number) => void, maxBatch = 20_000,
): Promise<PacedResult> {
  const wait = startMs - now();
  if (wait > 0) await sleep(wait);
  const startedAt = now();
  let sent = 0;
  let biggest = 0;
  let sends = 0;
  while (sent < messages.length) {
    const t = now();
    let due = sent;
    while (due < messages.length && due - sent < maxBatch && scheduledAt(due) <= t) due++;
    if (due === sent) {
      await sleep(Math.max(1, Math.min(5, scheduledAt(sent) - t)));
      continue;
    }
    onSend(sent, due);
    await producer.send({ topic, acks: -1, messages: messages.slice(sent, due) as Message[] });
    biggest = Math.max(biggest, due - sent);
    sends++;
    sent = due;
  }
  return { startedAt, endedAt: now(), sent, maxBatch: biggest, sends };
}
