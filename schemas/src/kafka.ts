import { Kafka, logLevel, Partitioners, type Admin, type Producer, type ProducerConfig, type ProducerRecord, type RecordMetadata } from 'kafkajs';
import type { Logger } from 'pino';
import { topicNames } from './topics.js';

export function createKafka(brokers: string, clientId: string, log?: Logger): Kafka {
  return new Kafka({
    clientId,
    brokers: brokers.split(',').map((b) => b.trim()),
    logLevel: logLevel.WARN,
    logCreator: () => ({ level, log: entry }) => {
      const { message, ...extra } = entry;
      if (!log) return;
      if (level <= logLevel.ERROR) log.error({ kafka: extra }, message);
      else log.warn({ kafka: extra }, message);
    },
    retry: { retries: 8, initialRetryTime: 200 },
  });
}

/** Creates the project's topics if missing; safe to call on every start. */
export async function ensureTopics(admin: Admin, prefix: string, eventPartitions: number): Promise<void> {
  const t = topicNames(prefix);
  const existing = new Set(await admin.listTopics());
  const wanted = [
    { topic: t.events, numPartitions: eventPartitions },
    { topic: t.rated, numPartitions: eventPartitions },
    { topic: t.dlq, numPartitions: 1 },
  ].filter((w) => !existing.has(w.topic));
  if (wanted.length === 0) return;
  await admin.createTopics({
    waitForLeaders: true,
    topics: wanted.map((w) => ({ ...w, replicationFactor: 1, configEntries: [{ name: 'min.insync.replicas', value: '1' }] })),
  });
}

export const IDEMPOTENT_PRODUCER_CONFIG: ProducerConfig = {
  idempotent: true,
  // Not 5 as in the Java client: kafkajs built its idempotence to KIP-98's original one request
  // in flight (tulios/kafkajs#200), assigns sequence numbers itself and rolls them back when a
  // request fails, and serializes produce requests per broker with a mutex regardless.
  maxInFlightRequests: 1,
  // Unlimited, never the client-wide count the producer would otherwise inherit: giving up on a
  // request that may have landed lets the next one reuse its sequence numbers and be dropped as
  // a duplicate. Waits stay short so sends resume soon after the broker is back.
  retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5_000 },
  allowAutoTopicCreation: false,
  // murmur2 like the Java client, so an account lands on the same partition whoever produces it.
  createPartitioner: Partitioners.DefaultPartitioner,
};

/**
 * Runs a producer's sends one after another. kafkajs rolls an idempotent producer's sequence
 * numbers back when a request fails; a concurrent send could then reuse them and, if the failed
 * request had in fact landed, be dropped by the broker as a duplicate while still acked.
 */
export function serialSender(producer: Producer): (record: ProducerRecord) => Promise<RecordMetadata[]> {
  let tail: Promise<unknown> = Promise.resolve();
  return (record) => {
    const sent = tail.then(() => producer.send(record));
    tail = sent.catch(() => undefined);
    return sent;
  };
}
