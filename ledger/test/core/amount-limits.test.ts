import { describe, expect, it } from 'vitest';
import { INT64_MAX, MAX_MONEY_MICROS, toMicros } from '@meterstream/schemas';
import type { AccountState } from '@meterstream/ledger/account-state';
import { rateBatch, type SourceEvent } from '@meterstream/ledger/core/rate';
import type { PriceEntry } from '@meterstream/ledger/core/price';

const T0 = Date.parse('2026-11-10T00:00:00Z');
const PRICE: PriceEntry = { model: 'per_unit', unit: 'image', unitPrice: toMicros('0.04'), per: 1n };
const lookup = () => PRICE;

function account(billingMode: AccountState['billingMode'], over: Partial<AccountState> = {}): AccountState {
  return { id: 'a1', currency: 'USD', billingMode, overdraft: 0n, ledgerSeq: 0n, grants: [], postpaidMonth: '2026-11', postpaidAmount: 0n, ...over };
}
function ev(i: number, quantity: string, atMs = T0): SourceEvent {
  return { offset: String(i), event: { id: `e${i}`, account_id: 'a1', product: 'image', quantity: toMicros(quantity), timestamp: new Date(atMs).toISOString() }, eventMs: atMs };
}
const rate = (events: SourceEvent[], state: AccountState) => rateBatch(events, new Map([[state.id, state]]), lookup, new Set());

describe('amounts that would leave int8 are refused event by event', () => {
  it('refuses an event costing more than MAX_MONEY_MICROS and charges the next one', () => {
    const state = account('prepaid');
    const r = rate([ev(1, '999999999999'), ev(2, '1')], state); // $40 billion, then $0.04
    expect(r.rejected).toEqual([{ offset: '1', code: 'AMOUNT_OUT_OF_RANGE', message: expect.stringContaining('more than one event may cost') }]);
    expect(r.rows.map((x) => [x.eventId, x.amount])).toEqual([['e2', 40_000n]]);
    expect(r.changed.get('a1')!.overdraft).toBe(40_000n);
  });

  it('charges exactly MAX_MONEY_MICROS', () => {
    const price: PriceEntry = { model: 'per_unit', unit: 'image', unitPrice: MAX_MONEY_MICROS, per: 1n };
    const r = rateBatch([ev(1, '1')], new Map([['a1', account('prepaid')]]), () => price, new Set());
    expect(r.rows.map((x) => x.amount)).toEqual([MAX_MONEY_MICROS]);
  });

  it('refuses what would take a prepaid overdraft past int8, not what grants cover', () => {
    const state = account('prepaid', {
      overdraft: INT64_MAX - 50_000n,
      grants: [{ id: 'g', kind: 'purchased', amount: 40_000n, remaining: 40_000n, expiresAt: null, priority: 100, createdSeq: 1n }],
    });
    // 0.04 covered by the grant; then 0.04 uncovered fits (10,000 left); then 0.04 more does not.
    const r = rate([ev(1, '1'), ev(2, '1'), ev(3, '1')], state);
    expect(r.rows.map((x) => x.eventId)).toEqual(['e1', 'e2']);
    expect(r.rejected.map((x) => [x.offset, x.code])).toEqual([['3', 'AMOUNT_OUT_OF_RANGE']]);
    expect(r.changed.get('a1')!.overdraft).toBe(INT64_MAX - 10_000n);
  });

  it('charges an event its grants cover however close to int8 the overdraft stands', () => {
    const state = account('prepaid', {
      overdraft: INT64_MAX - 10_000n,
      grants: [{ id: 'g', kind: 'purchased', amount: 40_000n, remaining: 40_000n, expiresAt: null, priority: 100, createdSeq: 1n }],
    });
    const r = rate([ev(1, '1'), ev(2, '1')], state); // the first is covered in full; the second not at all
    expect(r.rows.map((x) => [x.eventId, x.fromGrants, x.overdraft])).toEqual([['e1', 40_000n, 0n]]);
    expect(r.rejected.map((x) => [x.offset, x.code])).toEqual([['2', 'AMOUNT_OUT_OF_RANGE']]);
    expect(r.changed.get('a1')!.overdraft).toBe(INT64_MAX - 10_000n);
  });

  it('refuses what would take a month of postpaid usage past int8', () => {
    const state = account('postpaid', { postpaidAmount: INT64_MAX - 60_000n });
    const r = rate([ev(1, '1'), ev(2, '1')], state);
    expect(r.rows.map((x) => x.eventId)).toEqual(['e1']);
    expect(r.rejected).toEqual([{ offset: '2', code: 'AMOUNT_OUT_OF_RANGE', message: expect.stringContaining('postpaid usage for 2026-11') }]);
    expect(r.changed.get('a1')!.postpaidAmount).toBe(INT64_MAX - 20_000n);
  });
});
