import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toMicros, type UsageEvent } from '@meterstream/schemas';
import { compareBurnOrder, type AccountState, type GrantState } from '@meterstream/ledger/account-state';
import { rateBatch, type SourceEvent } from '../src/rate-batch.js';
import type { PriceEntry } from '../src/price-book.js';

const PRICES: Record<string, PriceEntry> = {
  voice: { unit: 'second', unitPrice: toMicros('0.60'), per: 60n }, // listed per minute, billed per second
  chat: { unit: 'token', unitPrice: toMicros('0.002'), per: 1000n },
  image: { unit: 'image', unitPrice: toMicros('0.04'), per: 1n },
  text: { unit: 'word', unitPrice: toMicros('0.000333'), per: 1n },
  call: { unit: 'request', unitPrice: toMicros('0.0015'), per: 1n },
};
const lookup = (product: string) => PRICES[product];
const T0 = Date.parse('2026-11-01T00:00:00Z');

function grant(id: string, kind: GrantState['kind'], amount: string, expiresAt: number | null, createdSeq: bigint, priority = 100): GrantState {
  return { id, kind, amount: toMicros(amount), remaining: toMicros(amount), expiresAt, priority, createdSeq };
}
function account(grants: GrantState[], billingMode: AccountState['billingMode'] = 'prepaid'): AccountState {
  return { id: 'a1', currency: 'USD', billingMode, overdraft: 0n, ledgerSeq: 0n, grants, postpaidMonth: '2026-11', postpaidAmount: 0n };
}
function ev(i: number, product: string, quantity: string, atMs = T0 + i * 1000): SourceEvent {
  const event: UsageEvent = { id: `e${i}`, account_id: 'a1', product, quantity: toMicros(quantity), timestamp: new Date(atMs).toISOString() };
  return { offset: String(i), event, eventMs: atMs };
}
const rate = (events: SourceEvent[], state: AccountState) => rateBatch(events, new Map([[state.id, state]]), lookup, new Set());

describe('pricing', () => {
  it('prices each unit as quantity x unit_price / per, half up at the micro-unit', () => {
    const r = rate([ev(1, 'voice', '61'), ev(2, 'chat', '1500'), ev(3, 'image', '3'), ev(4, 'text', '3'), ev(5, 'call', '1'), ev(6, 'chat', '0.25')], account([]));
    expect(r.rows.map((x) => x.amount)).toEqual([
      610_000n, // 61 s of a $0.60/minute price: per second, $0.61
      3_000n, // 1500 tokens at $0.002 / 1000
      120_000n,
      999n,
      1_500n,
      1n, // 0.25 tokens -> 0.0000005 -> rounds half up to 1 micro
    ]);
  });

  it('bills a per-minute price per second, not per started minute', () => {
    const r = rate([ev(1, 'voice', '1')], account([]));
    expect(r.rows[0]!.amount).toBe(10_000n); // $0.01, not $0.60
  });
});

describe('burn order', () => {
  it('burns soonest-expiring first, purchased (no expiry) last, and never an expired grant', () => {
    const gift = grant('gift', 'gift', '1', T0 + 7 * 86_400_000, 2n);
    const allowance = grant('allow', 'allowance', '2', T0 + 30 * 86_400_000, 3n);
    const purchased = grant('bought', 'purchased', '5', null, 1n);
    const expired = grant('old', 'promotional', '9', T0 - 1, 4n);
    const r = rate([ev(1, 'image', '100')], account([purchased, allowance, expired, gift].sort(compareBurnOrder))); // $4.00
    expect(r.rows[0]!.takes.map((t) => [t.grantId, t.amount])).toEqual([
      ['gift', 1_000_000n],
      ['allow', 2_000_000n],
      ['bought', 1_000_000n],
    ]);
    expect(r.rows[0]!.balanceAfter).toBe(4_000_000n); // what is left of the purchased credits
  });

  it('stops burning a grant that expires mid-stream', () => {
    const gift = grant('gift', 'gift', '10', T0 + 2500, 1n);
    const purchased = grant('bought', 'purchased', '10', null, 2n);
    const r = rate([ev(1, 'image', '1'), ev(2, 'image', '1'), ev(3, 'image', '1')], account([gift, purchased]));
    expect(r.rows.map((x) => x.takes[0]!.grantId)).toEqual(['gift', 'gift', 'bought']);
  });

  it('accrues what grants do not cover as postpaid usage, or as prepaid overdraft', () => {
    const post = account([grant('g', 'gift', '0.05', null, 1n)], 'postpaid');
    const r1 = rate([ev(1, 'image', '2')], post);
    expect([r1.rows[0]!.fromGrants, r1.rows[0]!.postpaid, r1.rows[0]!.overdraft]).toEqual([50_000n, 30_000n, 0n]);
    expect(post.postpaidAmount).toBe(30_000n);
    const pre = account([grant('g', 'gift', '0.05', null, 1n)]);
    const r2 = rate([ev(1, 'image', '2')], pre);
    expect([r2.rows[0]!.fromGrants, r2.rows[0]!.postpaid, r2.rows[0]!.overdraft]).toEqual([50_000n, 0n, 30_000n]);
    expect(r2.rows[0]!.balanceAfter).toBe(-30_000n);
  });

  it('charges a repeated event id once', () => {
    const r = rateBatch([ev(1, 'image', '1'), ev(1, 'image', '1'), ev(2, 'image', '1')], new Map([['a1', account([])]]), lookup, new Set(['a1\u0000e2']));
    expect(r.rows.map((x) => x.eventId)).toEqual(['e1']);
    expect(r.duplicates).toBe(2);
  });
});

describe('rating split into batches', () => {
  it('gives the same charges, splits and balances as rating in one batch', () => {
    const products = Object.keys(PRICES);
    const arbEvent = fc.record({ product: fc.constantFrom(...products), micros: fc.bigInt({ min: 0n, max: 5_000_000_000n }), dup: fc.nat(9) });
    fc.assert(
      fc.property(fc.array(arbEvent, { minLength: 1, maxLength: 60 }), fc.array(fc.nat(60), { maxLength: 6 }), fc.constantFrom<'prepaid' | 'postpaid'>('prepaid', 'postpaid'), (spec, cuts, mode) => {
        const events = spec.map((s, i) => {
          const e = ev(s.dup === 0 && i > 0 ? i - 1 : i, s.product, '0', T0 + i * 60_000);
          e.event.quantity = s.micros;
          e.offset = String(i);
          return e;
        });
        const fresh = () => account([
          grant('g1', 'gift', '3', T0 + 20 * 60_000, 1n),
          grant('g2', 'allowance', '7.5', T0 + 40 * 60_000, 2n),
          grant('g3', 'purchased', '12', null, 3n),
        ], mode);
        const whole = rate(events, fresh());
        const state = fresh();
        const bounds = [0, ...[...new Set(cuts)].filter((c) => c < events.length).sort((a, b) => a - b), events.length];
        const pieces = [];
        const seen = new Set<string>();
        for (let i = 0; i + 1 < bounds.length; i++) {
          const part = rateBatch(events.slice(bounds[i], bounds[i + 1]), new Map([[state.id, state]]), lookup, seen);
          for (const row of part.rows) seen.add(`a1\u0000${row.eventId}`);
          pieces.push(...part.rows);
        }
        expect(pieces).toEqual(whole.rows);
        for (const row of whole.rows) expect(row.fromGrants + row.postpaid + row.overdraft).toBe(row.amount);
      }),
      { numRuns: 200 },
    );
  });
});
