import { expect } from 'vitest';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { test } from '../../tests/support/test.js';
import { buildApp } from '../src/app.js';
import { IngestConfig } from '../src/config.js';
import { UsageEventProducer } from '../src/producer-client.js';
import { admin, ADMIN_KEY, collectTopic, uid } from './support.js';

test('answers 503 when Kafka does not acknowledge in time; the event still lands once Kafka recovers', async ({ services, stack, clickhouse }) => {
  // A topic that does not exist yet stands in for an unavailable Kafka: sends retry, unacknowledged.
  const late = `${stack.config.KAFKA_TOPIC_PREFIX}late.events`;
  const config = loadConfig(IngestConfig, { ...stack.env, ADMIN_API_KEY: ADMIN_KEY, INGEST_ACK_TIMEOUT_MS: '300' });
  const producer = await UsageEventProducer.connect(stack.kafka, { topic: late, lingerMs: 0 });
  const app = await buildApp({
    config, pool: stack.pool, cache: stack.cache, producer, ch: clickhouse.ch, chDatabase: clickhouse.database, log: createLogger('ack-timeout', 'silent'),
  });
  const e = { id: uid(), account_id: 'acct-late', product: 'tts', quantity: 1, timestamp: new Date().toISOString() };
  const res = await app.inject({ method: 'POST', url: '/v1/events', headers: admin, payload: e });
  expect(res.statusCode).toBe(503);
  expect(res.json()).toEqual({ error: { code: 'KAFKA_TIMEOUT', message: expect.stringContaining('retry it with the same event ids') } });

  await services.admin.createTopics({ topics: [{ topic: late, numPartitions: 1 }], waitForLeaders: true });
  const topic = await collectTopic(stack.kafka, late);
  const [m] = await topic.waitFor([e.id], 60_000);
  expect(m!.value).toEqual({ ...e, quantity: '1.000000' });
  await topic.stop();
  await app.close();
  await producer.close();
  await services.admin.deleteTopics({ topics: [late] });
});
