import { Writable } from 'node:stream';
import { pino } from 'pino';
import { describe, expect } from 'vitest';
import { freePort } from '@meterstream/bench/http';
import { loadConfig } from '@meterstream/platform/config';
import { test } from '../../tests/support/test.js';
import type { TestStack } from '../../tests/support/stack.js';
import { startService, waitFor, waitServing } from '../../tests/support/processes.js';
import { IngestConfig } from '../src/config.js';
import { start } from '../src/start.js';
import { ADMIN_KEY, bearer } from './support.js';

/** The stack's environment with the embedded ClickHouse default, whatever the test run uses. */
function embeddedEnv(stack: TestStack, extra: Record<string, string>): Record<string, string> {
  const { CLICKHOUSE_URL: _server, ...env } = stack.env;
  return { ...env, ADMIN_API_KEY: ADMIN_KEY, INGEST_PORT: '0', ...extra };
}

async function call<T>(url: string, method: string, path: string, body?: unknown, key = ADMIN_KEY): Promise<{ status: number; json: T }> {
  const res = await fetch(`${url}${path}`, {
    method,
    headers: { ...bearer(key), ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: (await res.json()) as T };
}

describe('ingest started alone on the embedded default', () => {
  test('says at start-up that usage summaries need the sink, and answers them 503 with how to fix it', async ({ stack }) => {
    const lines: { level: number; msg: string }[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as { level: number; msg: string });
        done();
      },
    });
    const ingest = await start({ config: loadConfig(IngestConfig, embeddedEnv(stack, {})), log: pino({ level: 'info' }, sink) });
    try {
      const account = await call<{ id: string; api_key: string }>(ingest.url, 'POST', '/v1/accounts', {
        email: 'alone@example.com', currency: 'USD', billing_mode: 'prepaid',
      });
      const res = await call<{ error: { code: string; message: string } }>(
        ingest.url, 'POST', '/v1/credits/projections/usage-summary', { account_id: account.json.id }, account.json.api_key,
      );
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe('CLICKHOUSE_NOT_CONFIGURED');
      expect(res.json.error.message).toMatch(/set CLICKHOUSE_URL .* or run every service in one process with `npm start`/);
      const warnings = lines.filter((l) => l.level === 40 && l.msg.includes('usage-summary'));
      expect(warnings.map((l) => l.msg)).toEqual([expect.stringMatching(/^usage-summary disabled \(answers 503\): CLICKHOUSE_URL is unset/)]);
    } finally {
      await ingest.close();
    }
  });
});

describe('npm start', () => {
  test('runs ingest, rater and sink in one process: an event posted over HTTP shows in its usage summary; SIGTERM exits 0', async ({ stack }) => {
    const port = await freePort();
    // A database of its own: the process runs the scheduler too (allowances, expiries), which
    // must not touch the accounts of the other test files in the run's shared database.
    const database = new URL(stack.env.DATABASE_URL!);
    database.pathname = `${database.pathname}_npm_start_${process.pid}`;
    const service = startService('deploy/start.ts', embeddedEnv(stack, {
      DATABASE_URL: database.toString(),
      INGEST_HOST: '127.0.0.1',
      INGEST_PORT: String(port),
      CHDB_PATH: `.chdb/test-${process.env.MS_TEST_RUN ?? 'local'}/npm-start-${process.pid}`,
      SINK_FETCH_MAX_WAIT_MS: '100',
    }));
    try {
      const url = `http://127.0.0.1:${port}`;
      await waitServing(service, url);

      const product = `tts-${process.pid}`;
      expect((await call(url, 'PUT', `/v1/prices/${product}`, { unit: 'word', unit_price: '0.0025', per: 1, currency: 'USD' })).status).toBe(200);
      const account = (await call<{ id: string; api_key: string }>(url, 'POST', '/v1/accounts', {
        email: 'npm-start@example.com', currency: 'USD', billing_mode: 'postpaid',
      })).json;
      const event = { id: `evt-${process.pid}`, account_id: account.id, product, quantity: '120', timestamp: new Date().toISOString() };
      const posted = await call<{ accepted: string[] }>(url, 'POST', '/v1/events', [event], account.api_key);
      expect(posted).toEqual({ status: 202, json: { accepted: [event.id], rejected: [] } });

      const summary = await waitFor('the event in the usage summary', async () => {
        const res = await call<{ totals: { events: number; amount: string }; products: unknown[] }>(
          url, 'POST', '/v1/credits/projections/usage-summary', { account_id: account.id }, account.api_key,
        );
        expect(res.status).toBe(200);
        return res.json.totals.events === 1 && res.json;
      }, 60_000);
      expect(summary.totals).toEqual({ events: 1, amount: '0.300000' });
      expect(summary.products).toEqual([{ product, events: 1, quantity: '120.000000', amount: '0.300000' }]);

      expect(await service.kill('SIGTERM'), service.output()).toBe(0);
    } finally {
      await service.kill('SIGKILL');
      await stack.pool.query(`DROP DATABASE IF EXISTS "${database.pathname.slice(1)}" WITH (FORCE)`);
    }
  });
});
