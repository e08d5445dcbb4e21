import { randomBytes } from 'node:crypto';
import { describe, expect } from 'vitest';
import { LedgerEntry, type Currency } from '@meterstream/schemas';
import { createPool, inTransaction, type Pool } from '@meterstream/platform/postgres';
import { ensureDatabase, migratePostgres } from '@meterstream/platform/migrate';
import { SERIAL_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import { addGrant } from '@meterstream/ledger/commands/add-grant';
import {
  findEntry, IdempotencyConflictError, recordEntries, sweepUnpublishedEntries, unpublishedEntries, type NewLedgerEntry,
} from '@meterstream/ledger/entries';
import { test } from '../../tests/support/test.js';
import type { TestStack } from '../../tests/support/stack.js';
import { createAccount, readTopicMessages } from '../../tests/support/fixtures.js';

const grantEntry = (accountId: string, key: string, over: Partial<NewLedgerEntry> = {}): NewLedgerEntry => ({
  account_id: accountId, kind: 'grant', amount: 5_000_000n, currency: 'USD' as Currency, grant_id: null, overdraft_paid: 0n,
  balance_after: 5_000_000n, idempotency_key: key, request_hash: `hash-of-${key}`, ...over,
});

const ledgerSeq = async (pool: Pool, id: string) =>
  (await pool.query<{ ledger_seq: bigint }>('SELECT ledger_seq FROM accounts WHERE id = $1', [id])).rows[0]!.ledger_seq;

const published = async (pool: Pool, id: string) =>
  (await pool.query<{ entry_id: string; published: boolean }>(
    'SELECT entry_id, published_at IS NOT NULL AS published FROM ledger_entries WHERE account_id = $1 ORDER BY seq', [id])).rows;

/** The entries on the stack's ledger.entries, parsed with the contract. */
const onTopic = async (stack: TestStack) =>
  (await readTopicMessages(stack, stack.topics.entries)).map((m) => ({ key: m.key, entry: LedgerEntry.parse(JSON.parse(m.value)) }));

describe('ledger entries in Postgres', () => {
  test('take the next seqs of the account, after its usage, and a retried key returns its entry without a new seq', async ({ stack }) => {
    const id = await createAccount(stack);
    // Three usage rows rated already: the rater moved the account's ledger seq to 3.
    await stack.pool.query('UPDATE accounts SET ledger_seq = 3 WHERE id = $1', [id]);

    const first = await inTransaction(stack.pool, (c) => recordEntries(c, [grantEntry(id, 'k1'), grantEntry(id, 'k2', { amount: 7_000_000n })]));
    expect(first.map((e) => [e.seq, e.idempotency_key, e.amount])).toEqual([[4, 'k1', '5.000000'], [5, 'k2', '7.000000']]);
    expect(await ledgerSeq(stack.pool, id)).toBe(5n);

    const again = await inTransaction(stack.pool, (c) => recordEntries(c, [grantEntry(id, 'k1'), grantEntry(id, 'k3')]));
    expect(again[0]).toEqual(first[0]);
    expect(again[1]).toMatchObject({ seq: 6, idempotency_key: 'k3' });
    expect(await ledgerSeq(stack.pool, id)).toBe(6n);
    expect(await findEntry(stack.pool, id, 'k2')).toEqual(first[1]);

    // The same key for another request moves nothing.
    await expect(inTransaction(stack.pool, (c) => recordEntries(c, [grantEntry(id, 'k4'), grantEntry(id, 'k1', { request_hash: 'other' })])))
      .rejects.toBeInstanceOf(IdempotencyConflictError);
    expect(await findEntry(stack.pool, id, 'k4')).toBeUndefined();
    expect(await ledgerSeq(stack.pool, id)).toBe(6n);
  });

  test('a grant is an entry: published on ledger.entries after its commit, with what paid the overdraft off', async ({ stack }) => {
    const id = await createAccount(stack);
    await stack.pool.query('UPDATE accounts SET overdraft = 2500000 WHERE id = $1', [id]);
    const { grant } = await addGrant(stack.ledger, { accountId: id, input: { kind: 'purchased', amount: '10', priority: 100 }, idempotencyKey: 'pay-1' });

    const stored = await findEntry(stack.pool, id, 'pay-1');
    expect(stored).toMatchObject({
      account_id: id, seq: 1, kind: 'grant', amount: '10.000000', currency: 'USD', grant_id: grant.id, overdraft_paid: '2.500000',
      balance_after: '7.500000', reason: null, idempotency_key: 'pay-1',
    });
    expect(await onTopic(stack)).toEqual([{ key: id, entry: stored }]);
    expect(await published(stack.pool, id)).toEqual([{ entry_id: stored!.entry_id, published: true }]);
  });
});

describe('the sweep', () => {
  // On a database of its own: a sweep publishes every unpublished entry it finds, and other test
  // files' entries must not go to this test's topic.
  test('publishes what a crash left between commit and publish, once', async ({ stack }) => {
    const url = new URL(stack.config.DATABASE_URL);
    url.pathname = `${url.pathname}_sweep_${randomBytes(3).toString('hex')}`;
    await ensureDatabase(url.toString());
    await migratePostgres(url.toString());
    const pool = createPool(url.toString(), 2);
    const producer = stack.kafka.producer(SERIAL_PRODUCER_CONFIG);
    await producer.connect();
    try {
      await pool.query(`INSERT INTO accounts (id, email, currency, billing_mode) VALUES ('acct-s', 's@example.com', 'EUR', 'prepaid')`);
      // Committed, then the process died before publishing.
      const [left] = await inTransaction(pool, (c) => recordEntries(c, [grantEntry('acct-s', 'crashed', { currency: 'EUR' })]));
      expect(await unpublishedEntries(pool, 60_000, 10)).toEqual([]); // its command may still be publishing it
      expect(await unpublishedEntries(pool, 0, 10)).toEqual([left]);

      const send = serialSender(producer);
      expect(await sweepUnpublishedEntries(pool, send, stack.topics.entries, { olderThanMs: 0, limit: 10 })).toBe(1);
      expect(await unpublishedEntries(pool, 0, 10)).toEqual([]);
      expect(await sweepUnpublishedEntries(pool, send, stack.topics.entries, { olderThanMs: 0, limit: 10 })).toBe(0);
      expect(await onTopic(stack)).toEqual([{ key: 'acct-s', entry: left }]);
    } finally {
      await producer.disconnect();
      await pool.end();
      const admin = new URL(url);
      admin.pathname = '/postgres';
      const c = createPool(admin.toString(), 1);
      await c.query(`DROP DATABASE IF EXISTS "${url.pathname.slice(1)}" WITH (FORCE)`);
      await c.end();
    }
  });
});
