import { describe, expect } from 'vitest';
import { inTransaction } from '@meterstream/platform/postgres';
import { findEntry } from '@meterstream/ledger/entries';
import { admin, bearer, createAccount, ingestTest, injector, uid } from './support.js';
import type { TestIngest } from './support.js';
import { CSV_CHUNK_ROWS } from '../src/routes/transactions.js';

// The history as one list: usage rows and ledger entries (grants) by the ledger seq they share.
const test = ingestTest();

/**
 * A usage row as the rater commits it (in short: one grant or the overdraft pays): the account's
 * next ledger seq, which the row takes and the account keeps, so that the next grant follows it.
 */
async function rateUsage(t: TestIngest, accountId: string, amount: bigint, at: string, product = 'voice'): Promise<string> {
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
       SELECT a.id, $2, a.ledger_seq, $6, 60000000, 'second', 600000, 60, $3, $4, 0, $3::bigint - $4::bigint, '[]',
              (SELECT coalesce(sum(remaining), 0) FROM grants WHERE account_id = a.id) - a.overdraft, $5, $5, 'usage.events', 0, a.ledger_seq
         FROM accounts a WHERE a.id = $1`,
      [accountId, eventId, amount, paid.rowCount ? amount : 0n, at, product]);
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

/** An RFC 4180 file's records, for reading an export back as a user's spreadsheet would. */
function parseCsv(text: string): string[][] {
  const records: string[][] = [];
  let record: string[] = [];
  let field = '';
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"' && text[i + 1] === '"') { field += '"'; i++; } else if (ch === '"') quoted = false; else field += ch;
    } else if (ch === '"') quoted = true;
    else if (ch === ',') { record.push(field); field = ''; } else if (ch === '\r' && text[i + 1] === '\n') {
      record.push(field); records.push(record); record = []; field = ''; i++;
    } else field += ch;
  }
  expect(field === '' && record.length === 0, 'the file ends with CRLF').toBe(true);
  return records;
}

describe('GET /v1/accounts/{id}/transactions by date range, and as CSV', () => {
  type Row = { kind: string; seq: number; event_id?: string; entry_id?: string };
  const ids = (page: { transactions: Row[] }) => page.transactions.map((x) => x.event_id ?? x.entry_id);

  test('filters by date range (from inclusive, to exclusive) with kind, and pages with a cursor that stays put under the filter', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const grant = async () => {
      const res = await inject('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('grant') }, { kind: 'gift', amount: '1' });
      expect(res.statusCode).toBe(201);
      return res.json() as { id: string; created_at: string };
    };
    await grant();
    const u1 = await rateUsage(t, acct.id, 100_000n, '2025-03-01T10:00:00Z');
    const u2 = await rateUsage(t, acct.id, 100_000n, '2025-03-02T10:00:00Z');
    const g2 = await grant();
    const u3 = await rateUsage(t, acct.id, 100_000n, '2025-03-03T10:00:00Z');
    const u4 = await rateUsage(t, acct.id, 100_000n, '2025-03-04T10:00:00Z');
    const g3 = await grant();
    await rateUsage(t, acct.id, 100_000n, '2025-03-05T10:00:00Z');

    const url = `/v1/accounts/${acct.id}/transactions`;
    const march = 'from=2025-03-02T10:00:00Z&to=2025-03-05T10:00:00Z';
    // The grants are committed now, outside March 2025; u2 sits on `from`, u5 on `to`.
    expect(ids((await inject('GET', `${url}?${march}`, bearer(acct.api_key))).json())).toEqual([u4, u3, u2]);
    expect(ids((await inject('GET', `${url}?from=2025-03-01T11:00:00%2B01:00&to=2025-03-02T10:00:00.001Z`, admin)).json())).toEqual([u2, u1]);

    const p1 = (await inject('GET', `${url}?kind=usage&${march}&limit=2`, admin)).json();
    expect(ids(p1)).toEqual([u4, u3]);
    // A row inside the range arriving meanwhile is newer than the cursor: the next page does not shift.
    const late = await rateUsage(t, acct.id, 100_000n, '2025-03-03T12:00:00Z');
    const p2 = (await inject('GET', `${url}?kind=usage&${march}&limit=2&cursor=${p1.next_cursor}`, admin)).json();
    expect({ ids: ids(p2), next_cursor: p2.next_cursor }).toEqual({ ids: [u2], next_cursor: null });
    expect(ids((await inject('GET', `${url}?kind=usage&${march}&limit=1`, admin)).json())).toEqual([late]);

    const grants = (await inject('GET', `${url}?kind=grant&from=${encodeURIComponent(g2.created_at)}&to=${encodeURIComponent(g3.created_at)}`, admin)).json();
    expect(grants.transactions.map((x: { grant_id: string }) => x.grant_id)).toEqual([g2.id]);
  });

  test.for([
    ['from after to', 'from=2025-03-02T00:00:00Z&to=2025-03-01T00:00:00Z'],
    ['from equal to to', 'from=2025-03-01T00:00:00Z&to=2025-03-01T00:00:00Z'],
    ['a date that is not a timestamp', 'from=yesterday'],
    ['a timestamp without its offset', 'to=2025-03-01T00:00:00'],
  ])('answers 400 with the envelope for %s, on the list and the export', async ([, query], { ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    for (const path of ['transactions', 'transactions.csv']) {
      const res = await inject('GET', `/v1/accounts/${acct.id}/${path}?${query}`, admin);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toEqual({ error: { code: 'VALIDATION_ERROR', message: expect.stringMatching(/from|to/) } });
    }
  });

  test('exports every matching row as CSV, in more than one internal chunk, with the figures of the list and quoted values', async ({ ingest: t }) => {
    const inject = injector(t.app);
    const acct = await createAccount(t.app);
    const res = await inject('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('grant') }, { kind: 'purchased', amount: '0.5' });
    expect(res.statusCode).toBe(201);
    const odd = await rateUsage(t, acct.id, 1_234_567n, '2025-04-01T00:00:00Z', 'say "hi", then\nhang up');
    // Enough usage rows for several repository pages, inserted in one statement.
    const bulk = CSV_CHUNK_ROWS + 20;
    await t.stack.pool.query(
      `WITH a AS (UPDATE accounts SET ledger_seq = ledger_seq + $2, overdraft = overdraft + $2 * 1000 WHERE id = $1 RETURNING ledger_seq, overdraft)
       INSERT INTO usage_ledger (account_id, event_id, seq, product, quantity, unit, unit_price, per, amount, from_grants,
                                 postpaid, overdraft, grant_split, balance_after, event_time, rated_at, src_topic, src_partition, src_offset)
       SELECT $1, 'bulk-' || i, a.ledger_seq - $2 + i, 'voice', 1000000, 'second', 1000, 1, 1000, 0, 0, 1000, '[]',
              -(a.overdraft - ($2 - i) * 1000), timestamptz '2025-05-01T00:00:00Z' + i * interval '1 second', now(), 'usage.events', 0, i
         FROM a, generate_series(1, $2::int) i`, [acct.id, bulk]);

    const url = `/v1/accounts/${acct.id}/transactions`;
    const list: Record<string, unknown>[] = [];
    for (let cursor: string | null = ''; cursor !== null;) {
      const page: { transactions: Record<string, unknown>[]; next_cursor: string | null } =
        (await inject('GET', `${url}?limit=200${cursor ? `&cursor=${cursor}` : ''}`, admin)).json();
      list.push(...page.transactions);
      cursor = page.next_cursor;
    }
    expect(list).toHaveLength(bulk + 2);

    const csv = await inject('GET', `${url}.csv`, bearer(acct.api_key));
    expect(csv.statusCode).toBe(200);
    expect(csv.headers['content-type']).toBe('text/csv; charset=utf-8');
    expect(csv.headers['content-disposition']).toBe(`attachment; filename="transactions-${acct.id}.csv"`);
    const [header, ...records] = parseCsv(csv.body);
    const asStrings = (tx: Record<string, unknown>) => Object.fromEntries(header!.map((c) => [c, tx[c] === undefined || tx[c] === null ? '' : String(tx[c])]));
    expect(records.map((r) => Object.fromEntries(header!.map((c, i) => [c, r[i]])))).toEqual(list.map(asStrings));
    const oddRecord = records.find((r) => r.includes(odd))!;
    expect(oddRecord[header!.indexOf('action')]).toBe('say "hi", then\nhang up');
    expect(oddRecord[header!.indexOf('amount')]).toBe('1.234567');
    expect(csv.body).toContain('"say ""hi"", then\nhang up"');

    // The export takes the list's filters.
    const filtered = parseCsv((await inject('GET', `${url}.csv?kind=usage&from=2025-04-01T00:00:00Z&to=2025-05-01T00:00:03Z`, admin)).body);
    expect(filtered.slice(1).map((r) => r[header!.indexOf('event_id')])).toEqual(['bulk-2', 'bulk-1', odd]);
  });
});
