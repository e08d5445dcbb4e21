import { describe, expect } from 'vitest';
import { inTransaction } from '@meterstream/platform/postgres';
import { findEntry } from '@meterstream/ledger/entries';
import { admin, bearer, createAccount, ingestTest, injector, uid } from './support.js';
import type { TestIngest } from './support.js';

// The history as one list: usage rows and ledger entries (grants) by the ledger seq they share.
const test = ingestTest();

/**
 * A usage row as the rater commits it (in short: one grant or the overdraft pays): the account's
 * next ledger seq, which the row takes and the account keeps, so that the next grant follows it.
 */
async function rateUsage(t: TestIngest, accountId: string, amount: bigint, at: string): Promise<string> {
  const eventId = uid();
  await inTransaction(t.stack.pool, async (c) => {
    const paid = await c.query(
      `UPDATE grants SET remaining = remaining - $2
        WHERE id = (SELECT id FROM grants WHERE account_id = $1 AND remaining >= $2 ORDER BY created_seq LIMIT 1)`, [accountId, amount]);
    await c.query(
      `UPDATE accounts SET ledger_seq = ledger_seq + 1, overdraft = overdraft + $2 WHERE id = $1`, [accountId, paid.rowCount ? 0n : amount]);
    await c.query(
      `INSERT INTO usage_ledger (account_id, event_id, seq, product, quantity, unit, unit_price, per, amount, from_grants,
                                 postpaid, overdraft, grant_split, balance_after, event_time, rated_at, src_topic, src_partition, src_offset)
       SELECT a.id, $2, a.ledger_seq, 'voice', 60000000, 'second', 600000, 60, $3, $4, 0, $3::bigint - $4::bigint, '[]',
              (SELECT coalesce(sum(remaining), 0) FROM grants WHERE account_id = a.id) - a.overdraft, $5, $5, 'usage.events', 0, a.ledger_seq
         FROM accounts a WHERE a.id = $1`,
      [accountId, eventId, amount, paid.rowCount ? amount : 0n, at]);
  });
  return eventId;
}

describe('GET /v1/accounts/{id}/transactions with grants', () => {
  test('shows a grant posted through the API among the usage rows, in seq order, with its kind, amount and balance after', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const grant = async (amount: string, key = uid('grant')) => {
      const res = await inject('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': key }, { kind: 'purchased', amount });
      expect(res.statusCode).toBe(201);
      const entry = (await findEntry(t.stack.pool, acct.id, key))!;
      return { grant: res.json() as { id: string; created_at: string }, entry };
    };

    const u1 = await rateUsage(t, acct.id, 100_000n, '2025-03-01T10:00:00Z');
    const u2 = await rateUsage(t, acct.id, 200_000n, '2025-03-01T10:01:00Z');
    const g1 = await grant('10'); // pays the 0.3 overdraft off
    const u4 = await rateUsage(t, acct.id, 1_000_000n, '2025-03-01T10:03:00Z');
    const u5 = await rateUsage(t, acct.id, 700_000n, '2025-03-01T10:04:00Z');
    const g2 = await grant('2.5', 'payment-42');

    const url = `/v1/accounts/${acct.id}/transactions`;
    const first = await inject('GET', `${url}?limit=4`, bearer(acct.api_key));
    expect(first.statusCode).toBe(200);
    const p1 = first.json();
    expect(p1.transactions).toEqual([
      {
        kind: 'grant', seq: 6, timestamp: g2.grant.created_at, action: 'grant', amount: '2.500000', direction: 'credit',
        balance_after: '10.500000', entry_id: g2.entry.entry_id, grant_id: g2.grant.id, overdraft_paid: '0.000000', reason: null,
      },
      expect.objectContaining({ kind: 'usage', seq: 5, event_id: u5, amount: '0.700000', direction: 'debit', balance_after: '8.000000' }),
      expect.objectContaining({ kind: 'usage', seq: 4, event_id: u4, amount: '1.000000', direction: 'debit', balance_after: '8.700000' }),
      {
        kind: 'grant', seq: 3, timestamp: g1.grant.created_at, action: 'grant', amount: '10.000000', direction: 'credit',
        balance_after: '9.700000', entry_id: g1.entry.entry_id, grant_id: g1.grant.id, overdraft_paid: '0.300000', reason: null,
      },
    ]);

    // A grant arriving meanwhile moves nothing under the cursor.
    const g7 = await grant('1');
    const p2 = (await inject('GET', `${url}?limit=4&cursor=${p1.next_cursor}`, admin)).json();
    expect(p2).toEqual({
      transactions: [
        expect.objectContaining({ kind: 'usage', seq: 2, event_id: u2, balance_after: '-0.300000' }),
        expect.objectContaining({ kind: 'usage', seq: 1, event_id: u1, balance_after: '-0.100000' }),
      ],
      next_cursor: null,
    });
    const newest = (await inject('GET', `${url}?limit=1`, admin)).json();
    expect(newest.transactions).toEqual([expect.objectContaining({ kind: 'grant', seq: 7, entry_id: g7.entry.entry_id })]);
  });

  test('filters by kind, and pages through one kind with the same cursor', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const grantIds: string[] = [];
    const usage: string[] = [];
    for (let i = 0; i < 3; i++) {
      const res = await inject('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('grant') }, { kind: 'gift', amount: '1' });
      grantIds.push(res.json().id);
      usage.push(await rateUsage(t, acct.id, 100_000n, `2025-03-0${i + 1}T10:00:00Z`));
    }
    const url = `/v1/accounts/${acct.id}/transactions`;
    const grants = (await inject('GET', `${url}?kind=grant`, admin)).json();
    expect(grants.transactions.map((x: { kind: string; seq: number; grant_id: string }) => [x.kind, x.seq, x.grant_id])).toEqual([
      ['grant', 5, grantIds[2]], ['grant', 3, grantIds[1]], ['grant', 1, grantIds[0]],
    ]);
    const u1 = (await inject('GET', `${url}?kind=usage&limit=2`, admin)).json();
    expect(u1.transactions.map((x: { seq: number; event_id: string }) => [x.seq, x.event_id])).toEqual([[6, usage[2]], [4, usage[1]]]);
    const u2 = (await inject('GET', `${url}?kind=usage&limit=2&cursor=${u1.next_cursor}`, admin)).json();
    expect(u2).toEqual({ transactions: [expect.objectContaining({ seq: 2, event_id: usage[0] })], next_cursor: null });
    // A cursor of one listing is a position in the whole history: it serves the unfiltered list too.
    const rest = (await inject('GET', `${url}?cursor=${u1.next_cursor}`, admin)).json();
    expect(rest.transactions.map((x: { kind: string; seq: number }) => [x.kind, x.seq])).toEqual([['grant', 3], ['usage', 2], ['grant', 1]]);
  });
});
