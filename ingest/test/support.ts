import { randomBytes } from 'node:crypto';
import { basename } from 'node:path';
import { expect } from 'vitest';
import type { FastifyInstance } from 'fastify';
import type { Kafka } from 'kafkajs';
import { loadConfig } from '@meterstream/platform/config';
import type { BalanceCache } from '@meterstream/ledger/balance-cache';
import { createLogger } from '@meterstream/platform/logger';
import { openClickHouse, openStack, type TestStack } from '../../tests/support/stack.js';
import { test } from '../../tests/support/test.js';
import { buildApp } from '../src/app.js';
import { IngestConfig } from '../src/config.js';
import { UsageEventProducer } from '../src/producer-client.js';

export const ADMIN_KEY = 'test-admin-key-0123456789abcdef';
export const admin = { authorization: `Bearer ${ADMIN_KEY}` };
export const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

export interface TestIngest {
  app: FastifyInstance;
  stack: TestStack;
  config: IngestConfig;
  ch: Awaited<ReturnType<typeof openClickHouse>>;
  close(): Promise<void>;
}

/**
 * The ingest app on the real services, with names private to the calling test file; `cache`
 * replaces the stack's balance cache (e.g. one on a Redis of the test's own, to break it); `now` is the ledger's clock.
 */
export async function openIngest(
  name: string, env: Record<string, string> = {}, deps: { cache?: BalanceCache; now?: () => number } = {},
): Promise<TestIngest> {
  const stack = await openStack(name);
  const ch = await openClickHouse(name);
  const config = loadConfig(IngestConfig, { ...stack.env, ADMIN_API_KEY: ADMIN_KEY, ...env });
  const producer = await UsageEventProducer.connect(stack.kafka, { topic: stack.topics.events, lingerMs: 0 });
  const app = await buildApp({
    config, pool: stack.pool, cache: deps.cache ?? stack.cache, producer, ch: ch.ch, chDatabase: ch.database,
    log: createLogger('ingest-test', config.LOG_LEVEL), now: deps.now,
  });
  return {
    app, stack, config, ch,
    async close() {
      await app.close();
      await producer.close();
      await ch.ch.close();
      await stack.close();
    },
  };
}

/**
 * `test` with a file-scoped `ingest`: one app per test file, with topics, Redis prefix and groups of
 * the file's own; tests isolate themselves by creating their own accounts. (It opens its own
 * clients: in vitest 3.2 a file fixture cannot use the worker's, its context holds file values only.)
 */
export function ingestTest(env: Record<string, string> = {}) {
  return test.extend<{ ingest: TestIngest }>({
    ingest: [
      // eslint-disable-next-line no-empty-pattern -- vitest reads the fixtures a function uses from its first parameter
      async ({}, use) => {
        const t = await openIngest(basename(expect.getState().testPath ?? 'ingest').replace(/\..*$/, ''), env);
        await use(t);
        await t.close();
      },
      { scope: 'file' },
    ],
  });
}

/**
 * An account with no money yet: on a plan without a signup gift (created here, idempotently), so
 * that the figures a test checks start at zero. signup-gift.integration.test.ts tests the gift.
 */
export async function createAccount(
  app: FastifyInstance,
  body: { email?: string; currency?: 'USD' | 'EUR'; billing_mode?: 'prepaid' | 'postpaid' } = {},
): Promise<{ id: string; api_key: string }> {
  const currency = body.currency ?? 'USD';
  const billingMode = body.billing_mode ?? 'prepaid';
  const planId = `test-no-gift-${currency.toLowerCase()}-${billingMode}`;
  const plan = await app.inject({
    method: 'PUT', url: `/v1/plans/${planId}`, headers: admin,
    payload: { name: 'Tests: no signup gift', currency, billing_mode: billingMode, signup_gift: { amount: '0', validity_days: 7 } },
  });
  if (plan.statusCode >= 300) throw new Error(`plan creation failed: ${plan.statusCode} ${plan.body}`);
  const res = await app.inject({
    method: 'POST', url: '/v1/accounts', headers: admin,
    payload: { email: `u${randomBytes(4).toString('hex')}@example.com`, currency, billing_mode: billingMode, plan_id: planId, ...body },
  });
  if (res.statusCode !== 201) throw new Error(`account creation failed: ${res.statusCode} ${res.body}`);
  return res.json();
}

export interface Consumed {
  key: string;
  partition: number;
  value: Record<string, unknown>;
}

/** Reads a topic from the beginning into memory, so tests can check what really landed on it. */
export async function collectTopic(kafka: Kafka, topic: string) {
  // Short fetches: stop() waits out the fetch in flight.
  const consumer = kafka.consumer({ groupId: `collect-${randomBytes(4).toString('hex')}`, maxWaitTimeInMs: 100 });
  const messages: Consumed[] = [];
  const byId = new Map<unknown, Consumed>();
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachMessage: async ({ message, partition }) => {
      const m: Consumed = { key: message.key?.toString() ?? '', partition, value: JSON.parse(message.value?.toString() ?? 'null') };
      messages.push(m);
      if (!byId.has(m.value.id)) byId.set(m.value.id, m);
    },
  });
  return {
    messages,
    /** The messages of these event ids, once all of them arrived. */
    async waitFor(ids: readonly string[], timeoutMs = 30_000): Promise<Consumed[]> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const found = ids.map((id) => byId.get(id));
        if (found.every(Boolean)) return found as Consumed[];
        if (Date.now() > deadline) throw new Error(`not on ${topic} after ${timeoutMs} ms: ${ids.filter((_, i) => !found[i]).join(', ')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    stop: () => consumer.disconnect(),
  };
}

export const uid = (prefix = 'evt') => `${prefix}-${randomBytes(6).toString('hex')}`;

export type TopicCollector = Awaited<ReturnType<typeof collectTopic>>;

/**
 * ingestTest with what the event routes' tests use: `topic`, the file's usage.events read from the
 * start, and `acct`, an account (and its key) of the test's own.
 */
export function eventsTest(env: Record<string, string> = {}) {
  return ingestTest(env).extend<{ topic: TopicCollector; acct: { id: string; api_key: string } }>({
    topic: [
      async ({ ingest }, use) => {
        const topic = await collectTopic(ingest.stack.kafka, ingest.stack.topics.events);
        await use(topic);
        await topic.stop();
      },
      { scope: 'file' },
    ],
    acct: async ({ ingest }, use) => use(await createAccount(ingest.app)),
  });
}

/** app.inject as a call: method, url, headers and an optional JSON payload. */
export const injector = (app: FastifyInstance) =>
  (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, headers: Record<string, string> = {}, payload?: unknown) =>
    app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as object }) });
