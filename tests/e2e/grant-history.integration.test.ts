import { describe, expect, onTestFinished } from 'vitest';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { LedgerEntry } from '@meterstream/schemas';
import { start, IngestConfig } from '@meterstream/ingest';
import { startSink, SinkConfig } from '@meterstream/sink';
import { test } from '../support/test.js';
import { waitFor } from '../support/processes.js';
import { readTopicMessages } from '../support/fixtures.js';

const ADMIN = 'e2e-admin-key-0123456789abcdef';

// Issue 8's "done when": a grant is a money movement like usage, seen by the credit history
// (the transactions list), by Kafka (ledger.entries) and by the analytics (ClickHouse).
describe('a grant through the API reaches the history, ledger.entries and ClickHouse', () => {
  test('with the same figures everywhere', async ({ stack, clickhouse: { ch, database } }) => {
    const env = { ...stack.env, ADMIN_API_KEY: ADMIN, INGEST_PORT: '0', CLICKHOUSE_DATABASE: database, SINK_FETCH_MAX_WAIT_MS: '100' };
    const ingest = await start({ config: loadConfig(IngestConfig, env), ch });
    onTestFinished(() => ingest.close());
    const sink = await startSink({ config: loadConfig(SinkConfig, env), ch, database, kafka: stack.kafka, log: createLogger('sink', 'warn') });
    onTestFinished(() => sink.stop());
    const api = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
      const res = await fetch(`${ingest.url}${path}`, {
        method,
        headers: { authorization: `Bearer ${ADMIN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    };

    // On a plan without a signup gift: the grant below is the account's only entry.
    const plan = { name: 'No gift', currency: 'EUR', billing_mode: 'prepaid', signup_gift: { amount: '0', validity_days: 7 } };
    expect((await api('PUT', '/v1/plans/e2e-no-gift-eur-prepaid', plan)).status).toBeLessThan(300);
    const account = await api('POST', '/v1/accounts', { email: 'grants@example.com', currency: 'EUR', billing_mode: 'prepaid', plan_id: 'e2e-no-gift-eur-prepaid' });
    const id = account.body.id as string;
    const posted = await api('POST', `/v1/accounts/${id}/grants`, { kind: 'promotional', amount: '12.345678' }, { 'idempotency-key': 'campaign-7' });
    expect(posted.status).toBe(201);
    const grantId = posted.body.id as string;

    const history = await api('GET', `/v1/accounts/${id}/transactions`);
    expect(history.body).toEqual({
      transactions: [{
        kind: 'grant', seq: 1, timestamp: posted.body.created_at, action: 'grant', amount: '12.345678', direction: 'credit',
        balance_after: '12.345678', entry_id: expect.any(String), grant_id: grantId, overdraft_paid: '0.000000', reason: null,
      }],
      next_cursor: null,
    });
    const entryId = (history.body.transactions as { entry_id: string }[])[0]!.entry_id;

    const published = (await readTopicMessages(stack, stack.topics.entries)).map((m) => ({ key: m.key, entry: LedgerEntry.parse(JSON.parse(m.value)) }));
    expect(published).toEqual([{
      key: id,
      entry: {
        entry_id: entryId, account_id: id, seq: 1, kind: 'grant', amount: '12.345678', currency: 'EUR', grant_id: grantId,
        overdraft_paid: '0.000000', balance_after: '12.345678', reason: null, idempotency_key: 'campaign-7', created_at: posted.body.created_at,
      },
    }]);

    const stored = await waitFor('the grant in ClickHouse', async () => {
      const rs = await ch.query({
        query: `SELECT entry_id, toString(seq) AS seq, kind, toString(amount) AS amount, currency, grant_id, toString(overdraft_paid) AS overdraft_paid,
                       toString(balance_after) AS balance_after FROM ${database}.ledger_entries FINAL WHERE account_id = {id:String}`,
        query_params: { id },
        format: 'JSONEachRow',
      });
      const found = await rs.json<Record<string, string>>();
      return found.length > 0 && found;
    });
    expect(stored).toEqual([{
      entry_id: entryId, seq: '1', kind: 'grant', amount: '12345678', currency: 'EUR', grant_id: grantId, overdraft_paid: '0', balance_after: '12345678',
    }]);
  });
});
