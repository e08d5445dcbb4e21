import { describe, expect, it } from 'vitest';
import { IDEMPOTENCY_KEY_MAX_LENGTH, LedgerEntry, LedgerEntryKind, Transaction, TransactionKind } from '@meterstream/schemas';

const grant: LedgerEntry = {
  entry_id: '6f1c2d3e-0000-4000-8000-000000000001', account_id: 'acct_1', seq: 7, kind: 'grant', amount: '10.000000', currency: 'USD',
  grant_id: 'g-1', overdraft_paid: '2.500000', balance_after: '7.500000', reason: null, idempotency_key: 'payment:pi_123',
  created_at: '2025-03-01T10:00:00.000Z',
};
const verdict = (over: Record<string, unknown>) => {
  const r = LedgerEntry.safeParse({ ...grant, ...over });
  return r.success ? 'ok' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
};

describe('ledger entry contract', () => {
  it('round-trips an entry through its JSON unchanged', () => {
    expect(LedgerEntry.parse(JSON.parse(JSON.stringify(grant)))).toEqual(grant);
  });

  it('carries signed amounts and balances, unsigned overdraft payments', () => {
    expect(verdict({ amount: '-3.000000', balance_after: '-0.000001' })).toBe('ok');
    expect(verdict({ amount: '10' })).toMatch(/^amount: /); // six places, as formatMicros writes
    expect(verdict({ overdraft_paid: '-1.000000' })).toMatch(/^overdraft_paid: /);
  });

  it('refuses a kind nothing produces yet, a seq below 1 and ids outside the contract', () => {
    expect(verdict({ kind: 'teleport' })).toMatch(/^kind: /);
    expect(verdict({ kind: 'expiry', amount: '-10.000000' })).toBe('ok');
    expect(verdict({ seq: 0 })).toMatch(/^seq: /);
    expect(verdict({ seq: 1.5 })).toMatch(/^seq: /);
    expect(verdict({ grant_id: null })).toBe('ok');
    expect(verdict({ grant_id: 'has space' })).toMatch(/^grant_id: /);
    expect(verdict({ account_id: '' })).toMatch(/^account_id: /);
  });

  it('takes idempotency keys of 1 to 255 storable characters and reasons of at most 500', () => {
    expect(verdict({ idempotency_key: 'k'.repeat(IDEMPOTENCY_KEY_MAX_LENGTH) })).toBe('ok');
    expect(verdict({ idempotency_key: 'k'.repeat(IDEMPOTENCY_KEY_MAX_LENGTH + 1) })).toMatch(/^idempotency_key: /);
    expect(verdict({ idempotency_key: '' })).toMatch(/^idempotency_key: /);
    expect(verdict({ idempotency_key: 'a\u0000b' })).toMatch(/^idempotency_key: contains the NUL character/);
    expect(verdict({ reason: 'goodwill after outage #42' })).toBe('ok');
    expect(verdict({ reason: 'r'.repeat(501) })).toMatch(/^reason: /);
  });

  it('lets the transactions list filter by usage and by every entry kind', () => {
    expect(TransactionKind.options).toEqual(['usage', ...LedgerEntryKind.options]);
    const row = {
      kind: 'grant', seq: 7, timestamp: grant.created_at, action: 'grant', amount: '10.000000', direction: 'credit',
      balance_after: '7.500000', entry_id: grant.entry_id, grant_id: 'g-1', overdraft_paid: '2.500000', reason: null,
    };
    expect(Transaction.parse(row)).toEqual(row);
    expect(Transaction.safeParse({ ...row, kind: 'usage' }).success).toBe(false); // a usage row needs its product and quantity
  });
});
