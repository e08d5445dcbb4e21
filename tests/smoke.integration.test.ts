import { Partitioners } from 'kafkajs';
import { describe, expect, test } from './support/test.js';
import { searchPrices, upsertPrice } from '@meterstream/platform/stores/prices';
import { readTopic } from './support/fixtures.js';
import { waitGroupStable } from './support/kafka-groups.js';

// The real local stack answers: Kafka, Postgres, Redis and ClickHouse (chDB or CLICKHOUSE_URL).
describe('smoke: the real services', () => {
  test('produces to and consumes from Kafka', async ({ stack }) => {
    const producer = stack.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({ topic: stack.topics.dlq, acks: -1, messages: [{ key: 'k', value: 'hello kafka' }] });
    await producer.disconnect();
    expect(await readTopic(stack, stack.topics.dlq)).toEqual(['hello kafka']);
  });

  test('shows a consumer in its group, with every partition, once it joined', async ({ services, stack }) => {
    const groupId = `${stack.env.SINK_GROUP_ID}-smoke`;
    const consumer = stack.kafka.consumer({ groupId, maxWaitTimeInMs: 100 });
    const joined = new Promise<string>((resolve) => consumer.on(consumer.events.GROUP_JOIN, (e) => resolve(e.payload.memberId)));
    await consumer.connect();
    await consumer.subscribe({ topic: stack.topics.events, fromBeginning: true });
    await consumer.run({ eachMessage: async () => undefined });
    const members = await waitGroupStable(services.admin, groupId, 1);
    const partitions = Array.from({ length: stack.config.KAFKA_EVENTS_PARTITIONS }, (_, p) => p);
    expect(members.map((m) => [m.memberId, m.assignment])).toEqual([[await joined, { [stack.topics.events]: partitions }]]);
    await consumer.disconnect();
  });

  test('writes and reads Postgres, with the migrations applied', async ({ services }) => {
    const set = await upsertPrice(services.pool, 'smoke', { currency: 'EUR', unit: 'request', unitPrice: 1500n, per: 1n });
    expect(set).toMatchObject({ product: 'smoke', currency: 'EUR', unit: 'request', unitPrice: 1500n, per: 1n });
    expect((await searchPrices(services.pool, { q: 'smoke', currency: 'EUR' })).filter((p) => p.product === 'smoke')).toEqual([set]);
  });

  test('writes and reads Redis', async ({ stack }) => {
    const key = `${stack.env.REDIS_PREFIX}smoke`;
    await stack.redis.set(key, '42', 'EX', 60);
    expect(await stack.redis.get(key)).toBe('42');
  });

  test('inserts into and queries ClickHouse through @clickhouse/client', async ({ clickhouse: { ch, database } }) => {
    await ch.insert({
      table: `${database}.rated_events`,
      format: 'JSONEachRow',
      values: [{ account_id: 'a', event_id: 'e1', product: 'chat', currency: 'USD', unit: 'token', quantity: '1000000', unit_price: '2000', per: '1000', amount: '2', from_grants: '2', postpaid: '0', overdraft: '0', balance_after: '0', ledger_seq: '1', grants: '[]', properties: {}, event_time: '2026-11-01 00:00:00.000', rated_at: '2026-11-01 00:00:00.000' }],
    });
    const rows = await (await ch.query({ query: `SELECT toString(sum(amount)) AS s, toString(sum(events)) AS n FROM ${database}.usage_monthly`, format: 'JSONEachRow' })).json();
    expect(rows).toEqual([{ s: '2', n: '1' }]);
  });
});
