import { basename } from 'node:path';
import { test as base } from 'vitest';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { isolate, openClickHouse, openServices, type Services, type TestStack } from './stack.js';

/** What a worker opens once: the clients every test of the worker shares. */
export interface WorkerFixtures {
  services: Services;
  /** chDB of this process (or CLICKHOUSE_URL) with one migrated database. */
  clickhouse: { ch: ClickHouseClient; database: string };
}

export interface TestFixtures {
  /** Topics, Redis prefix and consumer groups of this test alone, on the worker's clients. */
  stack: TestStack;
}

/** A test's file, shortened to a name that can tag its topics and groups. */
const fileTag = (file: string) => basename(file).replace(/(\.integration)?\.test\.ts$/, '');

/**
 * vitest's `test` with the real services as fixtures: clients boot once per worker, and each test
 * that asks for `stack` gets names of its own, deleted after it.
 */
export const test = base.extend<TestFixtures & WorkerFixtures>({
  services: [
    // eslint-disable-next-line no-empty-pattern -- vitest reads the fixtures a function uses from its first parameter
    async ({}, use) => {
      const services = await openServices(`worker-${process.pid}`);
      await use(services);
      await services.close();
    },
    { scope: 'worker' },
  ],
  clickhouse: [
    // eslint-disable-next-line no-empty-pattern -- as above
    async ({}, use) => {
      const clickhouse = await openClickHouse(`worker_${process.pid}`);
      await use(clickhouse);
      await clickhouse.ch.close();
    },
    { scope: 'worker' },
  ],
  stack: async ({ services, task }, use) => {
    const stack = await isolate(services, fileTag(task.file.name));
    await use(stack);
    await stack.close();
  },
});

export { expect, describe } from 'vitest';
