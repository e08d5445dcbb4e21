import { describe, expect, it } from 'vitest';
import type { AccountState, GrantState } from '@meterstream/ledger/account-state';
import { toBalance } from '../src/routes/balance.js';

const NOW = Date.parse('2031-01-10T12:00:00Z');
const HOUR = 3_600_000;
const grant = (id: string, kind: GrantState['kind'], expiresAt: number | null): GrantState =>
  ({ id, kind, amount: 1_000_000n, remaining: 1_000_000n, expiresAt, priority: 100, createdSeq: 1n });

describe('balance: expiring_soon', () => {
  it('flags gifts expiring within 24 hours, and nothing else', () => {
    const state: AccountState = {
      id: 'a1', currency: 'USD', billingMode: 'prepaid', overdraft: 0n, ledgerSeq: 4n, postpaidMonth: '2031-01', postpaidAmount: 0n,
      grants: [
        grant('gift-in-24h', 'gift', NOW + 24 * HOUR),
        grant('promo-in-1h', 'promotional', NOW + HOUR),
        grant('gift-in-25h', 'gift', NOW + 25 * HOUR),
        grant('purchased', 'purchased', null),
      ],
    };
    expect(toBalance(state, 'redis', NOW).grants.map((g) => [g.id, g.expiring_soon])).toEqual([
      ['gift-in-24h', true], ['promo-in-1h', false], ['gift-in-25h', false], ['purchased', false],
    ]);
  });
});
