import { randomUUID } from 'node:crypto';
import { toMicros, encodeUsageEvent, type UsageEvent, type PriceInput, type GrantInput, type AccountInput } from '@meterstream/schemas';
import { SERIAL_PRODUCER_CONFIG } from '@meterstream/platform/kafka';
import { createAccount as insertAccount } from '@meterstream/platform/stores/accounts';
import { usageTotals } from '@meterstream/platform/stores/usage-ledger';
import { addGrant } from '@meterstream/ledger/commands/add-grant';
import { setPrices as upsertPrices } from '@meterstream/bench/setup';
import { PRICE_LIST } from '@meterstream/bench/workload';
import type { TestStack } from './stack.js';

export { PRICE_LIST as PRODUCTS };

export async function setPrices(stack: TestStack, prices: Record<string, PriceInput> = PRICE_LIST): Promise<void> {
  await upsertPrices(stack.pool, prices);
}

export async function createAccount(stack: TestStack, input: Partial<AccountInput> = {}, grants: Partial<GrantInput>[] = []): Promise<string> {
  const id = `acct-${randomUUID()}`;
  await insertAccount(stack.pool, { id, email: input.email ?? `${id}@example.com`, currency: input.currency ?? 'USD', billingMode: input.billing_mode ?? 'prepaid' });
  for (const [i, g] of grants.entries()) {
    const grant = { kind: g.kind ?? 'purchased', amount: g.amount ?? '10', priority: g.priority ?? 100, ...(g.expires_at ? { expires_at: g.expires_at } : {}) };
    await addGrant(stack.ledger, { accountId: id, input: grant, idempotencyKey: `fixture-grant-${i}` });
  }
  return id;
}

export function usageEvent(accountId: string, product: string, quantity: string, id: string = randomUUID(), at = new Date()): UsageEvent {
  return { id, account_id: accountId, product, quantity: toMicros(quantity), timestamp: at.toISOString() };
}

/** Produces straight to usage.events as a service would, keyed by account. */
export async function produceEvents(stack: TestStack, events: UsageEvent[]): Promise<void> {
  const producer = stack.kafka.producer(SERIAL_PRODUCER_CONFIG);
  await producer.connect();
  try {
    for (let i = 0; i < events.length; i += 2000) {
      await producer.send({
        topic: stack.topics.events,
        acks: -1,
        messages: events.slice(i, i + 2000).map((e) => ({ key: e.account_id, value: encodeUsageEvent(e) })),
      });
    }
  } finally {
    await producer.disconnect();
  }
}

export async function ledgerCount(stack: TestStack, accounts: string[]): Promise<number> {
  return Number((await usageTotals(stack.pool, accounts)).events);
}

/**
 * Quiescence: every message on usage.events is rated, published and cached, i.e. the rater's
 * published offset reached the end of each partition.
 */
export async function waitRaterIdle(stack: TestStack, timeoutMs = 90_000): Promise<void> {
  const admin = stack.kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(stack.topics.events);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = await stack.pool.query<{ partition: number; next_offset: bigint; published_offset: bigint }>(
        'SELECT partition, next_offset, published_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
        [stack.env.RATER_GROUP_ID, stack.topics.events],
      );
      const published = new Map(r.rows.map((x) => [x.partition, x.published_offset]));
      const behind = ends.filter((p) => p.high !== '0' && published.get(p.partition) !== BigInt(p.high));
      if (behind.length === 0) return;
      if (Date.now() > deadline) {
        const rows = r.rows.map((x) => `p${x.partition} next=${x.next_offset} published=${x.published_offset}`).join(', ');
        throw new Error(`rater not idle: Kafka ends ${JSON.stringify(behind)}; Postgres ${rows}`);
      }
      await new Promise((res) => setTimeout(res, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

export interface TopicMessage {
  key: string;
  value: string;
  headers: Record<string, string>;
}

/** Reads a whole topic, from the beginning to its current end (a throwaway group). */
export async function readTopicMessages(stack: Pick<TestStack, 'kafka'>, topic: string, timeoutMs = 60_000): Promise<TopicMessage[]> {
  const admin = stack.kafka.admin();
  await admin.connect();
  const ends = new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
  await admin.disconnect();
  const pending = new Set([...ends].filter(([, high]) => high > 0n).map(([p]) => p));
  const consumer = stack.kafka.consumer({ groupId: `reader-${randomUUID()}` });
  const out: TopicMessage[] = [];
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const done = new Promise<void>((resolve) => {
    if (pending.size === 0) resolve();
    void consumer.run({
      eachBatch: async ({ batch }) => {
        for (const m of batch.messages) {
          const headers = Object.fromEntries(Object.entries(m.headers ?? {}).map(([k, v]) => [k, String(v)]));
          out.push({ key: m.key?.toString() ?? '', value: m.value?.toString() ?? '', headers });
        }
        if (BigInt(batch.lastOffset()) + 1n >= (ends.get(batch.partition) ?? 0n)) pending.delete(batch.partition);
        if (pending.size === 0) resolve();
      },
    });
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([done, new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`reading ${topic} timed out`)), timeoutMs)))]);
  clearTimeout(timer);
  await consumer.disconnect();
  return out;
}

/** The values of a whole topic. */
export async function readTopic(stack: TestStack, topic: string, timeoutMs = 60_000): Promise<string[]> {
  return (await readTopicMessages(stack, topic, timeoutMs)).map((m) => m.value);
}
