import { Kafka, logLevel, type Admin } from 'kafkajs';
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
