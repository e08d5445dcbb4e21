import { describe, expect, it } from 'vitest';
import type { LedgerEntry } from '@meterstream/schemas';
import { decodeLedgerEntry, ENTRY_COLUMNS } from '../src/ledger-entries.js';

const entry: LedgerEntry = {
  entry_id: 'e-1', account_id: 'acct-1', seq: 12, kind: 'grant', amount: '25.125000', currency: 'EUR', grant_id: 'g-1',
  overdraft_paid: '0.125000', balance_after: '-3.000001', reason: 'say "thanks" \\ \u00e9\u{1F600}', idempotency_key: 'key\n1',
  created_at: '2025-03-01T10:00:00.123456Z',
};
const decode = (v: unknown) => decodeLedgerEntry(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)));

describe('ledger entry -> ClickHouse row', () => {
  it('encodes money as exact Int64 micro-units, strings escaped, time to the millisecond', () => {
    const d = decode(entry);
    expect(d.ok).toBe(true);
    const line = JSON.parse((d as Extract<typeof d, { ok: true }>).row.line) as unknown[];
    expect(Object.fromEntries(ENTRY_COLUMNS.map((c, i) => [c, line[i]]))).toEqual({
      account_id: 'acct-1', entry_id: 'e-1', seq: 12, kind: 'grant', amount: 25_125_000, currency: 'EUR', grant_id: 'g-1',
      overdraft_paid: 125_000, balance_after: -3_000_001, reason: entry.reason, idempotency_key: 'key\n1',
      created_at: '2025-03-01 10:00:00.123',
    });
    expect(decode({ ...entry, grant_id: null, reason: null }).ok).toBe(true);
  });

  it('refuses what ClickHouse would store wrongly, with the reason for the dead-letter topic', () => {
    expect(decode('{not json')).toMatchObject({ ok: false, code: 'INVALID_JSON' });
    expect(decodeLedgerEntry(null)).toMatchObject({ ok: false, code: 'INVALID_JSON', reason: 'empty message' });
    expect(decode({ ...entry, kind: 'bonus' })).toMatchObject({ ok: false, code: 'INVALID_LEDGER_ENTRY', reason: expect.stringMatching(/^kind: /) });
    // 15 integer digits fit the contract but not an Int64 of micro-units: it would wrap silently.
    expect(decode({ ...entry, amount: '999999999999999.999999' })).toMatchObject({ ok: false, code: 'OUT_OF_RANGE', reason: 'amount does not fit Int64 micro-units' });
    expect(decode({ ...entry, created_at: '2400-01-01T00:00:00.000Z' })).toMatchObject({ ok: false, code: 'OUT_OF_RANGE' });
  });
});
