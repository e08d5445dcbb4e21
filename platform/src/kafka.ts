import { Murmur2Partitioner } from './partitioner.js';
import { Kafka, logLevel, type Admin, type Producer, type ProducerConfig, type ProducerRecord } from 'kafkajs';
import type { Logger } from 'pino';
import { topicNames } from '@meterstream/schemas';
import { CLIENT_TIMEOUT_DEFAULTS, type ClientTimeouts } from './config.js';

export type KafkaTimeouts = Partial<Pick<ClientTimeouts, 'KAFKA_CONNECTION_TIMEOUT_MS' | 'KAFKA_REQUEST_TIMEOUT_MS'>>;

/** timeouts: any of BaseConfig's KAFKA_* timeouts (a service passes its whole config); the rest default. */
export function createKafka(brokers: string, clientId: string, log?: Logger, timeouts: KafkaTimeouts = {}): Kafka {
  const t = { ...CLIENT_TIMEOUT_DEFAULTS, ...timeouts };
  return new Kafka({
    clientId,
    brokers: brokers.split(',').map((b) => b.trim()),
    connectionTimeout: t.KAFKA_CONNECTION_TIMEOUT_MS,
    // Also enforced on produce requests: an acks=all send to a stalled broker fails and is retried.
    requestTimeout: t.KAFKA_REQUEST_TIMEOUT_MS,
    enforceRequestTimeout: true,
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
    // Keyed by account like usage.rated, so one account's entries stay in order on one partition.
    { topic: t.entries, numPartitions: eventPartitions },
  ].filter((w) => !existing.has(w.topic));
  if (wanted.length === 0) return;
  try {
    await admin.createTopics({
      waitForLeaders: true,
      topics: wanted.map((w) => ({ ...w, replicationFactor: 1, configEntries: [{ name: 'min.insync.replicas', value: '1' }] })),
    });
  } catch (e) {
    // kafkajs waits for the leaders with a metadata request that it retries only on
    // LEADER_NOT_AVAILABLE; a broker busy deleting other topics may answer the created topics as
    // still unknown. They were created: wait until the broker knows them.
    if ((e as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION') throw e;
    await waitForTopics(admin, wanted.map((w) => w.topic));
  }
}

/** ensureTopics through an admin client of its own, for services that need no other admin work. */
export async function ensureTopicsOf(kafka: Kafka, prefix: string, eventPartitions: number): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    await ensureTopics(admin, prefix, eventPartitions);
  } finally {
    await admin.disconnect();
  }
}

async function waitForTopics(admin: Admin, topics: string[], timeoutMs = 30_000): Promise<void> {
  const expired = AbortSignal.timeout(timeoutMs);
  for (;;) {
    try {
      const { topics: found } = await admin.fetchTopicMetadata({ topics });
      if (found.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
    } catch (e) {
      if ((e as { type?: string }).type !== 'UNKNOWN_TOPIC_OR_PARTITION' || expired.aborted) throw e;
    }
    if (expired.aborted) throw new Error(`topics ${topics.join(', ')} have no leaders after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export const SERIAL_PRODUCER_CONFIG: ProducerConfig = {
  // Not kafkajs's idempotence: it rolls back the sequence numbers of every partition of a produce
  // request when any partition fails, even of those that landed; the next request then reuses
  // them and the broker drops its records as duplicates of the landed ones while acking them. A
  // chaos run lost a confirmed event that way after a broker restart (OUT_OF_ORDER_SEQUENCE_NUMBER
  // is not retriable, so the callers sent again; tulios/kafkajs#598). Every consumer deduplicates
  // by event or entry id, so a retry's duplicate costs nothing; a lost record is money.
  idempotent: false,
  // One request at a time, so that a retried request cannot land after a later one.
  maxInFlightRequests: 1,
  // Unlimited, never the client-wide count the producer would otherwise inherit; waits stay
  // short so sends resume soon after the broker is back.
  retry: { retries: Number.MAX_SAFE_INTEGER, maxRetryTime: 5_000 },
  allowAutoTopicCreation: false,
  // murmur2 like the Java client (kafkajs's default, in integer maths), so an account lands on
  // the same partition whoever produces it.
  createPartitioner: Murmur2Partitioner,
};

// Kafka refuses a record batch over the broker's message.max.bytes (1 MiB by default), and
// kafkajs puts all of a send's messages for one partition into one record batch.
export const MAX_SEND_BYTES = 768 * 1024;

const size = (v: unknown) => (v == null ? 0 : typeof v === 'string' ? Buffer.byteLength(v) : (v as Buffer).length);

function messageBytes(m: ProducerRecord['messages'][number]): number {
  let headers = 0;
  for (const [k, v] of Object.entries(m.headers ?? {})) headers += k.length + size(v);
  return size(m.key) + size(m.value) + headers + 64;
}

/**
 * Sends through one producer strictly one request at a time, each request split to what the
 * broker accepts, and coalesces whatever callers queued meanwhile into the next request: with
 * many partitions publishing at once, that is one round trip for all of them instead of one each.
 * Serial so that records reach each partition in the order they were sent, a retried request
 * included. Always acks=all.
 */
export function serialSender(producer: Producer, maxBytes = MAX_SEND_BYTES): (record: ProducerRecord) => Promise<void> {
  interface Pending { record: ProducerRecord; resolve(): void; reject(e: unknown): void }
  const queue: Pending[] = [];
  let draining = false;

  async function sendRecords(records: ProducerRecord[]): Promise<void> {
    let request = new Map<string, ProducerRecord['messages']>();
    let bytes = 0;
    const flush = async () => {
      if (request.size === 0) return;
      await producer.sendBatch({ acks: -1, topicMessages: [...request].map(([topic, messages]) => ({ topic, messages })) });
      request = new Map();
      bytes = 0;
    };
    for (const { topic, messages } of records) {
      for (const m of messages) {
        const b = messageBytes(m);
        if (bytes > 0 && bytes + b > maxBytes) await flush();
        let list = request.get(topic);
        if (!list) request.set(topic, (list = []));
        list.push(m);
        bytes += b;
      }
    }
    await flush();
  }

  async function drain(): Promise<void> {
    draining = true;
    while (queue.length > 0) {
      const round = queue.splice(0);
      try {
        await sendRecords(round.map((p) => p.record));
        for (const p of round) p.resolve();
      } catch (e) {
        for (const p of round) p.reject(e);
      }
    }
    draining = false;
  }

  return (record) =>
    new Promise<void>((resolve, reject) => {
      queue.push({ record, resolve, reject });
      if (!draining) void drain();
    });
}
