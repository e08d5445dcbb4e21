import { Partitioners } from 'kafkajs';
import { describe, expect, test } from './support/test.js';
import { readTopic } from './support/fixtures.js';

// The real local stack answers: Kafka, Postgres, Redis and ClickHouse (chDB or CLICKHOUSE_URL).
describe('smoke: the real services', () => {
  test('produces to and consumes from Kafka', async ({ stack }) => {
    const producer = stack.kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await producer.send({ topic: stack.topics.dlq, acks: -1, messages: [{ key: 'k', value: 'hello kafka' }] });
    await producer.disconnect();
    expect(await readTopic(stack, stack.topics.dlq)).toEqual(['hello kafka']);
  });

  test('writes and reads Postgres, with the migrations applied', async ({ services }) => {
    await services.pool.query(`INSERT INTO prices (product, currency, unit, unit_price, per) VALUES ('smoke', 'EUR', 'request', 1500, 1)
      ON CONFLICT (product, currency) DO UPDATE SET unit_price = 1500`);
    const r = await services.pool.query<{ unit_price: bigint }>(`SELECT unit_price FROM prices WHERE product = 'smoke' AND currency = 'EUR'`);
    expect(r.rows[0]!.unit_price).toBe(1500n);
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
