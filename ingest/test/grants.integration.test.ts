import { describe, expect } from 'vitest';
import { readTopicMessages } from '../../tests/support/fixtures.js';
import { admin, createAccount, ingestTest, injector, uid, type TestIngest } from './support.js';

// POST /v1/accounts/{id}/grants is idempotent by its Idempotency-Key header: an admin or a payment
// webhook that retries after a timeout must not add the credits twice.
const test = ingestTest();

const post = (t: TestIngest, accountId: string, body: unknown, key?: string) =>
  injector(t.app)('POST', `/v1/accounts/${accountId}/grants`, key === undefined ? admin : { ...admin, 'idempotency-key': key }, body);

async function books(t: TestIngest, accountId: string) {
  const balance = (await injector(t.app)('GET', `/v1/accounts/${accountId}/balance`, admin)).json<{ balance: string; ledger_seq: number }>();
  const grants = await t.stack.pool.query<{ n: bigint }>('SELECT count(*) AS n FROM grants WHERE account_id = $1', [accountId]);
  const entries = await t.stack.pool.query<{ n: bigint }>('SELECT count(*) AS n FROM ledger_entries WHERE account_id = $1', [accountId]);
  return { balance: balance.balance, ledgerSeq: balance.ledger_seq, grants: grants.rows[0]!.n, entries: entries.rows[0]!.n };
}

describe('POST /v1/accounts/{id}/grants with an Idempotency-Key', () => {
  test('adds the credits once when the same grant is posted twice, and answers the same both times', async ({ ingest: t }) => {
    const acct = await createAccount(t.app);
    const body = { kind: 'purchased', amount: '12.5', expires_at: '2099-01-01T00:00:00.000Z', priority: 7 };
    const key = uid('pay');
    const first = await post(t, acct.id, body, key);
    const again = await post(t, acct.id, body, key);
    expect(first.statusCode).toBe(201);
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await books(t, acct.id)).toEqual({ balance: '12.500000', ledgerSeq: 1, grants: 1n, entries: 1n });
    // Another key is another grant.
    expect((await post(t, acct.id, body, uid('pay'))).statusCode).toBe(201);
    expect(await books(t, acct.id)).toEqual({ balance: '25.000000', ledgerSeq: 2, grants: 2n, entries: 2n });
  });

  test('answers a replay with the grant as it was added, though usage burned it since', async ({ ingest: t }) => {
    const acct = await createAccount(t.app);
    const key = uid('pay');
    const first = await post(t, acct.id, { kind: 'gift', amount: '3' }, key);
    await t.stack.pool.query('UPDATE grants SET remaining = 1000000 WHERE account_id = $1', [acct.id]);
    const again = await post(t, acct.id, { kind: 'gift', amount: '3.000000', priority: 100 }, key); // the same terms, spelled otherwise
    expect(again.statusCode).toBe(201);
    expect(again.json()).toEqual(first.json());
    expect(again.json()).toMatchObject({ amount: '3.000000', remaining: '3.000000' });
  });

  test('answers 409 IDEMPOTENCY_KEY_REUSED for the same key with another body, and adds nothing', async ({ ingest: t }) => {
    const acct = await createAccount(t.app);
    const key = uid('pay');
    expect((await post(t, acct.id, { kind: 'purchased', amount: '5' }, key)).statusCode).toBe(201);
    for (const other of [{ kind: 'purchased', amount: '6' }, { kind: 'gift', amount: '5' }, { kind: 'purchased', amount: '5', priority: 1 },
      { kind: 'purchased', amount: '5', expires_at: '2099-01-01T00:00:00Z' }]) {
      const res = await post(t, acct.id, other, key);
      expect({ body: other, status: res.statusCode, code: res.json().error.code }).toEqual({ body: other, status: 409, code: 'IDEMPOTENCY_KEY_REUSED' });
      expect(res.json().error.message).toContain(key);
    }
    expect(await books(t, acct.id)).toEqual({ balance: '5.000000', ledgerSeq: 1, grants: 1n, entries: 1n });
    // A key belongs to its account: the same key elsewhere is a grant of its own.
    const stranger = await createAccount(t.app);
    expect((await post(t, stranger.id, { kind: 'purchased', amount: '6' }, key)).statusCode).toBe(201);
  });

  test('answers 400 IDEMPOTENCY_KEY_REQUIRED without the header, and 400 for a key it cannot store', async ({ ingest: t }) => {
    const acct = await createAccount(t.app);
    const missing = await post(t, acct.id, { kind: 'purchased', amount: '5' });
    expect(missing.statusCode).toBe(400);
    expect(missing.json()).toEqual({ error: { code: 'IDEMPOTENCY_KEY_REQUIRED', message: expect.stringContaining('Idempotency-Key') } });
    for (const key of ['', 'x'.repeat(256)]) {
      const res = await post(t, acct.id, { kind: 'purchased', amount: '5' }, key);
      expect({ key, status: res.statusCode, code: res.json().error.code }).toEqual({ key, status: 400, code: 'VALIDATION_ERROR' });
    }
    expect(await books(t, acct.id)).toEqual({ balance: '0.000000', ledgerSeq: 0, grants: 0n, entries: 0n });
  });

  test('adds one grant when ten identical requests race', async ({ ingest: t }) => {
    const acct = await createAccount(t.app);
    const key = uid('webhook');
    const answers = await Promise.all(Array.from({ length: 10 }, () => post(t, acct.id, { kind: 'purchased', amount: '7' }, key)));
    expect(answers.map((a) => a.statusCode)).toEqual(Array(10).fill(201));
    expect(new Set(answers.map((a) => a.body)).size).toBe(1);
    expect(answers.filter((a) => a.headers['idempotent-replayed'] === 'true')).toHaveLength(9);
    expect(await books(t, acct.id)).toEqual({ balance: '7.000000', ledgerSeq: 1, grants: 1n, entries: 1n });
  });

  test('publishes the grant on ledger.entries once Postgres committed it', async ({ ingest: t }) => {
    const acct = await createAccount(t.app);
    const grant = (await post(t, acct.id, { kind: 'promotional', amount: '2.25' }, uid('promo'))).json<{ id: string }>();
    const published = await t.stack.pool.query<{ published: boolean }>(
      'SELECT published_at IS NOT NULL AS published FROM ledger_entries WHERE account_id = $1', [acct.id]);
    expect(published.rows).toEqual([{ published: true }]);
    const onTopic = (await readTopicMessages(t.stack, t.stack.topics.entries)).filter((m) => m.key === acct.id).map((m) => JSON.parse(m.value) as unknown);
    expect(onTopic).toEqual([expect.objectContaining({ account_id: acct.id, kind: 'grant', amount: '2.250000', grant_id: grant.id, seq: 1, balance_after: '2.250000' })]);
  });

  test('documents the header as required in the OpenAPI document', async ({ ingest: t }) => {
    const doc = (await injector(t.app)('GET', '/openapi.json')).json<{ paths: Record<string, Record<string, { parameters: { name: string; in: string; required: boolean }[]; responses: Record<string, unknown> }>> }>();
    const route = doc.paths['/v1/accounts/{id}/grants']!.post!;
    expect(route.parameters).toContainEqual(expect.objectContaining({ name: 'idempotency-key', in: 'header', required: true }));
    expect(Object.keys(route.responses)).toContain('409');
  });
});
