import { describe, expect, onTestFinished } from 'vitest';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { startSink, SinkConfig } from '@meterstream/sink';
import { readTopicMessages, setPrices, waitRaterIdle } from '../../tests/support/fixtures.js';
import { waitFor } from '../../tests/support/processes.js';
import { startInProcessRater } from '../../rater/test/in-process-rater.js';
import { admin, bearer, createAccount, ingestTest, injector, uid, type TestIngest } from './support.js';

// Workspaces share their account's balance; events name one for the usage summary's breakdown;
// deleting a workspace keeps its usage and the account's credits (issue 9, seeds 000 and 004).
const test = ingestTest();

/** Rates what was sent (rater) and writes it to ClickHouse (sink), as the pipeline does. */
async function rateAndSink(t: TestIngest): Promise<void> {
  await setPrices(t.stack);
  const rater = await startInProcessRater(t.stack);
  onTestFinished(() => rater.stop());
  const env = { ...t.stack.env, CLICKHOUSE_DATABASE: t.ch.database, SINK_FETCH_MAX_WAIT_MS: '100' };
  const sink = await startSink({ config: loadConfig(SinkConfig, env), ch: t.ch.ch, database: t.ch.database, kafka: t.stack.kafka, log: createLogger('sink', 'warn') });
  onTestFinished(() => sink.stop());
  await waitRaterIdle(t.stack);
}

/** What an account can spend, as Postgres holds it: unexpired grants remaining minus overdraft. */
async function credits(t: TestIngest, accountId: string): Promise<string> {
  const { rows } = await t.stack.pool.query<{ credits: string }>(
    `SELECT ((SELECT coalesce(sum(remaining), 0) FROM grants WHERE account_id = $1) - overdraft)::text AS credits FROM accounts WHERE id = $1`, [accountId]);
  return rows[0]!.credits;
}

describe('workspaces', () => {
  test('events name their workspace; the usage summary breaks the usage down per workspace; a deleted one keeps its usage and the credits', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const key = bearer(acct.api_key);
    expect((await inject('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': 'ws-test' }, { kind: 'purchased', amount: '50' })).statusCode).toBe(201);

    const research = await inject('POST', `/v1/accounts/${acct.id}/workspaces`, key, { name: ' Research ' });
    expect(research.statusCode).toBe(201);
    expect(research.json()).toEqual({ id: expect.stringMatching(/^ws_[0-9a-f]{24}$/), account_id: acct.id, name: 'Research', created_at: expect.any(String), deleted_at: null });
    const support = (await inject('POST', `/v1/accounts/${acct.id}/workspaces`, key, { name: 'Support' })).json();
    const rs = research.json().id as string;
    expect((await inject('GET', `/v1/accounts/${acct.id}/workspaces`, key)).json()).toEqual({ workspaces: [research.json(), support] });

    const at = new Date().toISOString();
    const ev = (id: string, quantity: string, workspace?: string) =>
      ({ id, account_id: acct.id, product: 'chat', quantity, timestamp: at, ...(workspace ? { workspace_id: workspace } : {}) });
    const sent = await inject('POST', '/v1/events', key, [
      ev('w1', '500000', rs), ev('w2', '500000', rs), ev('w3', '250000', support.id), ev('w4', '750000'), ev('w5', '1', 'research'),
    ]);
    expect(sent.json()).toMatchObject({ accepted: ['w1', 'w2', 'w3', 'w4'], rejected: [{ index: 4, id: 'w5', code: 'VALIDATION_ERROR' }] });
    await rateAndSink(t);

    // The ledger keeps the workspace (a republished row carries it) and usage.rated says it.
    const { rows } = await t.stack.pool.query('SELECT event_id, workspace_id FROM usage_ledger WHERE account_id = $1 ORDER BY event_id', [acct.id]);
    expect(rows).toEqual([{ event_id: 'w1', workspace_id: rs }, { event_id: 'w2', workspace_id: rs }, { event_id: 'w3', workspace_id: support.id }, { event_id: 'w4', workspace_id: null }]);
    const rated = (await readTopicMessages(t.stack, t.stack.topics.rated)).filter((m) => m.key === acct.id).map((m) => JSON.parse(m.value));
    expect(rated.map((e) => [e.event_id, e.workspace_id]).sort()).toEqual([['w1', rs], ['w2', rs], ['w3', support.id], ['w4', undefined]]);

    const summary = async () => (await inject('POST', '/v1/credits/projections/usage-summary', key, { account_id: acct.id })).json();
    await waitFor('the four events in ClickHouse', async () => (await summary()).totals.events === 4);
    const before = await summary();
    expect(before.totals).toEqual({ events: 4, amount: '4.000000' });
    expect(before.workspaces).toEqual([
      { workspace_id: rs, name: 'Research', deleted: false, events: 2, amount: '2.000000' },
      { workspace_id: null, name: null, deleted: false, events: 1, amount: '1.500000' },
      { workspace_id: support.id, name: 'Support', deleted: false, events: 1, amount: '0.500000' },
    ]);

    const creditsBefore = await credits(t, acct.id);
    expect(creditsBefore).toBe('46000000');
    const deleted = await inject('DELETE', `/v1/accounts/${acct.id}/workspaces/${rs}`, key);
    expect(deleted.json()).toEqual({ ...research.json(), deleted_at: expect.any(String) });
    // Idempotent, and gone from the list; the account's credits are untouched.
    expect((await inject('DELETE', `/v1/accounts/${acct.id}/workspaces/${rs}`, key)).json()).toEqual(deleted.json());
    expect((await inject('GET', `/v1/accounts/${acct.id}/workspaces`, key)).json()).toEqual({ workspaces: [support] });
    expect(await credits(t, acct.id)).toBe(creditsBefore);
    const after = await summary();
    expect(after.totals).toEqual(before.totals);
    expect(after.workspaces[0]).toEqual({ workspace_id: rs, name: 'Research', deleted: true, events: 2, amount: '2.000000' });
  });

  test('workspace routes: 404 for an unknown account or workspace, 403 for another account\'s key', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const other = await createAccount(t.app);
    const missing = await inject('POST', `/v1/accounts/${uid('nope')}/workspaces`, admin, { name: 'X' });
    expect([missing.statusCode, missing.json().error.code]).toEqual([404, 'ACCOUNT_NOT_FOUND']);
    const gone = await inject('DELETE', `/v1/accounts/${acct.id}/workspaces/ws_${'0'.repeat(24)}`, admin);
    expect([gone.statusCode, gone.json().error.code]).toEqual([404, 'WORKSPACE_NOT_FOUND']);
    const foreign = await inject('POST', `/v1/accounts/${acct.id}/workspaces`, bearer(other.api_key), { name: 'X' });
    expect([foreign.statusCode, foreign.json().error.code]).toEqual([403, 'FORBIDDEN']);
    const empty = await inject('POST', `/v1/accounts/${acct.id}/workspaces`, bearer(acct.api_key), { name: '  ' });
    expect([empty.statusCode, empty.json().error.code]).toEqual([400, 'VALIDATION_ERROR']);
  });
});
