import { defineConfig } from 'vitest/config';

// Two projects, chosen by file name so that a new file needs no edit here:
// - integration: `*.integration.test.ts`, on the real Kafka, Postgres, Redis and ClickHouse (chDB);
// - unit: every other `*.test.ts`; no service at all, so it runs in seconds on a bare checkout.
const INTEGRATION = '**/*.integration.test.ts';
const exclude = ['**/node_modules/**', 'deploy/.stack/**'];

/** Nothing listens on port 9 (discard): a unit test that reaches for a service fails at once. */
const NO_SERVICES = {
  MS_TEST_PROJECT: 'unit',
  DATABASE_URL: 'postgres://unit-tests-have-no-postgres@127.0.0.1:9/none',
  REDIS_URL: 'redis://127.0.0.1:9',
  KAFKA_BROKERS: '127.0.0.1:9',
  CLICKHOUSE_URL: '',
};

export default defineConfig({
  test: {
    reporters: ['default'],
    // Worker limits are the run's, not a project's: two forks whichever projects run.
    poolOptions: { forks: { maxForks: 2, minForks: 1 } },
    projects: [
      {
        test: {
          name: 'unit',
          include: ['**/*.test.ts'],
          exclude: [...exclude, INTEGRATION],
          env: NO_SERVICES,
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'integration',
          include: [INTEGRATION],
          exclude,
          env: { MS_TEST_PROJECT: 'integration' },
          // chDB allows one data directory per process and crashes in worker threads: forks only.
          pool: 'forks',
          globalSetup: ['tests/support/global-setup.ts'],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          // One retry for tests on real services under a loaded 2-core machine (Kafka rebalances,
          // pg notices racing a query). The reporter marks a retried test; each one seen is a
          // lead to follow (two such flakes this far were real races, now fixed), not noise.
          retry: 1,
        },
      },
    ],
  },
});
