import { afterAll, beforeAll, expect, it } from 'vitest';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { openClickHouse, openStack, type TestStack } from '../../tests/support/stack.js';
import { buildApp } from '../src/app.js';
import { IngestConfig } from '../src/config.js';
import { UsageEventProducer } from '../src/producer-client.js';
import { admin, ADMIN_KEY, collectTopic, uid } from './support.js';

let stack: TestStack;
beforeAll(async () => {
  stack = await openStack('ingest-ack-timeout');
});
afterAll(async () => {
  await stack?.close();
});

it('answers 503 when Kafka does not acknowledge in time; the event still lands once Kafka recovers', async () => {
  // A topic that does not exist yet stands in for an unavailable Kafka: sends retry, unacknowledged.
  const late = `${stack.config.KAFKA_TOPIC_PREFIX}late.events`;
  const config = loadConfig(IngestConfig, { ...stack.env, ADMIN_API_KEY: ADMIN_KEY, INGEST_ACK_TIMEOUT_MS: '300' });
  const producer = await UsageEventProducer.connect(stack.kafka, { topic: late, lingerMs: 0 });
  const { ch, database } = await openClickHouse('ack-timeout');
  const app = await buildApp({
    config, pool: stack.pool, cache: stack.cache, producer, ch, chDatabase: database, log: createLogger('ack-timeout', 'silent'),
  });
  const e = { id: uid(), account_id: 'acct-late', product: 'tts', quantity: 1, timestamp: new Date().toISOString() };
  const res = await app.inject({ method: 'POST', url: '/v1/events', headers: admin, payload: e });
  expect(res.statusCode).toBe(503);
  expect(res.json()).toEqual({ error: { code: 'KAFKA_TIMEOUT', message: expect.stringContaining('retry it with the same event ids') } });

  const kafkaAdmin = stack.kafka.admin();
  await kafkaAdmin.connect();
  await kafkaAdmin.createTopics({ topics: [{ topic: late, numPartitions: 1 }], waitForLeaders: true });
  const topic = await collectTopic(stack.kafka, late);
  await topic.waitFor([e.id], 60_000);
  await topic.stop();
  await app.close();
  await producer.close();
  await ch.close();
  await kafkaAdmin.deleteTopics({ topics: [late] });
  await kafkaAdmin.disconnect();
});
