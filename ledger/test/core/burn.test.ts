import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toMicros } from '@meterstream/schemas';
import { compareBurnOrder, monthOf, type AccountState, type GrantState } from '@meterstream/ledger/account-state';
import { burn } from '@meterstream/ledger/core/burn';
import { arbAccount, deepFreeze, STATE_MONTH, T0, unexpiredAt } from './arbitraries.js';

const MINUTE = 60_000;

function grant(id: string, kind: GrantState['kind'], amount: string, expiresAt: number | null, createdSeq: bigint): GrantState {
  return { id, kind, amount: toMicros(amount), remaining: toMicros(amount), expiresAt, priority: 100, createdSeq };
}
function account(grants: GrantState[], billingMode: AccountState['billingMode'] = 'prepaid'): AccountState {
  return deepFreeze({ id: 'a1', currency: 'USD', billingMode, overdraft: 0n, ledgerSeq: 7n, grants: grants.sort(compareBurnOrder), postpaidMonth: STATE_MONTH, postpaidAmount: 0n });
}

describe('burn', () => {
  it('takes in burn order, skips an expired grant, drops an emptied one and shares the untouched', () => {
    const expired = grant('old', 'promotional', '9', T0 - 1, 4n);
    const gift = grant('gift', 'gift', '1', T0 + 7 * 86_400_000, 2n);
    const bought = grant('bought', 'purchased', '5', null, 1n);
    const state = account([bought, expired, gift]);
    const r = burn(state, toMicros('1.5'), T0);
    expect(r.takes).toEqual([{ grantId: 'gift', kind: 'gift', amount: 1_000_000n }, { grantId: 'bought', kind: 'purchased', amount: 500_000n }]);
    expect([r.postpaid, r.overdraft]).toEqual([0n, 0n]);
    expect(r.next.grants.map((g) => [g.id, g.remaining])).toEqual([['old', 9_000_000n], ['bought', 4_500_000n]]);
    expect(r.next.grants[0]).toBe(expired); // not copied: the charge did not touch it
    expect(r.next.ledgerSeq).toBe(8n);
    expect(bought.remaining).toBe(5_000_000n);
  });

  it('leaves the grants array itself shared when no grant pays', () => {
    const state = account([grant('old', 'gift', '1', T0 - 1, 1n)]);
    const r = burn(state, 30_000n, T0);
    expect(r.takes).toEqual([]);
    expect(r.overdraft).toBe(30_000n);
    expect(r.next.grants).toBe(state.grants);
    expect(r.next.overdraft).toBe(30_000n);
  });

  it('accrues the uncovered rest to the state\'s month only when the charge falls in it', () => {
    const state = account([grant('g', 'gift', '0.05', null, 1n)], 'postpaid');
    const inMonth = burn(state, 80_000n, T0);
    expect([inMonth.postpaid, inMonth.overdraft, inMonth.next.postpaidAmount, inMonth.next.overdraft]).toEqual([30_000n, 0n, 30_000n, 0n]);
    const nextMonth = burn(state, 80_000n, T0 + 2 * 60 * MINUTE);
    expect(monthOf(T0 + 2 * 60 * MINUTE)).not.toBe(STATE_MONTH);
    expect([nextMonth.postpaid, nextMonth.next.postpaidAmount]).toEqual([30_000n, 0n]);
  });

  it('records a free event as a ledger entry all the same', () => {
    const state = account([]);
    const r = burn(state, 0n, T0);
    expect([r.takes, r.postpaid, r.overdraft, r.next.ledgerSeq]).toEqual([[], 0n, 0n, 8n]);
  });
});

describe('burn, for random states, amounts and times', () => {
  const arbCase = fc.record({
    state: arbAccount('a1').map(deepFreeze),
    amount: fc.bigInt({ min: 0n, max: 20_000_000n }),
    at: fc.integer({ min: -150, max: 150 }).map((m) => T0 + m * MINUTE),
  });

  it('splits the amount exactly: sum(takes) + postpaid + overdraft = amount, each to its billing mode', () => {
    fc.assert(fc.property(arbCase, ({ state, amount, at }) => {
      const r = burn(state, amount, at);
      expect(r.takes.reduce((s, t) => s + t.amount, 0n) + r.postpaid + r.overdraft).toBe(amount);
      if (state.billingMode === 'postpaid') expect(r.overdraft).toBe(0n);
      else expect(r.postpaid).toBe(0n);
      expect(r.next.overdraft - state.overdraft).toBe(r.overdraft);
      expect(r.next.postpaidAmount - state.postpaidAmount).toBe(monthOf(at) === state.postpaidMonth ? r.postpaid : 0n);
      expect(r.next.ledgerSeq).toBe(state.ledgerSeq + 1n);
    }), { numRuns: 500 });
  });

  it('never takes from a grant expired at the charge\'s time, nor more than a grant has', () => {
    fc.assert(fc.property(arbCase, ({ state, amount, at }) => {
      const r = burn(state, amount, at);
      const byId = new Map(state.grants.map((g) => [g.id, g]));
      for (const t of r.takes) {
        const g = byId.get(t.grantId)!;
        expect(unexpiredAt(g, at)).toBe(true);
        expect(t.amount > 0n && t.amount <= g.remaining).toBe(true);
      }
      expect(new Set(r.takes.map((t) => t.grantId)).size).toBe(r.takes.length);
    }), { numRuns: 500 });
  });

  it('takes the usable grants in burn order, each emptied before the next is touched, and only then accrues', () => {
    fc.assert(fc.property(arbCase, ({ state, amount, at }) => {
      const r = burn(state, amount, at);
      const usable = state.grants.filter((g) => unexpiredAt(g, at));
      // The takes are a prefix of the usable grants in burn order ...
      expect(r.takes.map((t) => t.grantId)).toEqual(usable.slice(0, r.takes.length).map((g) => g.id));
      for (let i = 1; i < r.takes.length; i++) expect(compareBurnOrder(usable[i - 1]!, usable[i]!)).toBeLessThanOrEqual(0);
      // ... all but the last emptying its grant ...
      r.takes.slice(0, -1).forEach((t, i) => expect(t.amount).toBe(usable[i]!.remaining));
      // ... and nothing accrues while a usable grant has something left.
      if (r.postpaid + r.overdraft > 0n) {
        expect(r.takes.length).toBe(usable.length);
        r.takes.forEach((t, i) => expect(t.amount).toBe(usable[i]!.remaining));
      }
    }), { numRuns: 500 });
  });

  it('leaves the state alone; the next state keeps the order, drops emptied grants and shares the untouched', () => {
    fc.assert(fc.property(arbCase, ({ state, amount, at }) => {
      const before = structuredClone(state);
      const r = burn(state, amount, at); // state is frozen: a write would throw
      expect(state).toEqual(before);
      const taken = new Map(r.takes.map((t) => [t.grantId, t.amount]));
      const expected = state.grants.map((g) => ({ ...g, remaining: g.remaining - (taken.get(g.id) ?? 0n) })).filter((g) => g.remaining > 0n);
      expect(r.next.grants).toEqual(expected);
      for (const g of r.next.grants) if (!taken.has(g.id)) expect(state.grants).toContain(g);
      expect({ ...r.next, grants: [], overdraft: 0n, postpaidAmount: 0n, ledgerSeq: 0n }).toEqual({ ...state, grants: [], overdraft: 0n, postpaidAmount: 0n, ledgerSeq: 0n });
    }), { numRuns: 500 });
  });
});
