import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toMicros, type UsageEvent } from '@meterstream/schemas';
import { balanceAt, compareBurnOrder, monthOf, type AccountState, type GrantState } from '@meterstream/ledger/account-state';
import { eventKey, rateBatch, type LedgerRow, type RatedBatch, type SourceEvent } from '@meterstream/ledger/core/rate';
import { price, type PriceEntry } from '@meterstream/ledger/core/price';
import { arbEvents, arbStates, deepFreeze, lookup as randomLookup, unexpiredAt } from './arbitraries.js';

const PRICES: Record<string, PriceEntry> = {
  voice: { model: 'per_unit', unit: 'second', unitPrice: toMicros('0.60'), per: 60n }, // listed per minute, billed per second
  chat: { model: 'per_unit', unit: 'token', unitPrice: toMicros('0.002'), per: 1000n },
  image: { model: 'per_unit', unit: 'image', unitPrice: toMicros('0.04'), per: 1n },
  text: { model: 'per_unit', unit: 'word', unitPrice: toMicros('0.000333'), per: 1n },
  call: { model: 'per_unit', unit: 'request', unitPrice: toMicros('0.0015'), per: 1n },
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
    expect(r1.changed.get('a1')!.postpaidAmount).toBe(30_000n);
    expect(r1.postpaid).toEqual(new Map([['a1\u00002026-11', 30_000n]]));
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

/** Rates `events` in pieces cut at `cuts`, each piece from the states and rated keys the previous ones left. */
function rateInPieces(events: SourceEvent[], states: ReadonlyMap<string, AccountState>, cuts: number[]) {
  const bounds = [0, ...[...new Set(cuts)].filter((c) => c < events.length).sort((a, b) => a - b), events.length];
  const current = new Map(states);
  const rated = new Set<string>();
  const out = { rows: [] as LedgerRow[], rejected: [] as RatedBatch['rejected'], duplicates: 0, grantRemaining: new Map<string, bigint>(), postpaid: new Map<string, bigint>() };
  for (let i = 0; i + 1 < bounds.length; i++) {
    const part = rateBatch(events.slice(bounds[i], bounds[i + 1]), current, randomLookup, rated);
    out.rows.push(...part.rows);
    out.rejected.push(...part.rejected);
    out.duplicates += part.duplicates;
    for (const [id, remaining] of part.grantRemaining) out.grantRemaining.set(id, remaining);
    for (const [k, amount] of part.postpaid) out.postpaid.set(k, (out.postpaid.get(k) ?? 0n) + amount);
    for (const [id, next] of part.changed) current.set(id, next);
    for (const row of part.rows) rated.add(eventKey(row.accountId, row.eventId));
  }
  return { ...out, states: current };
}

const after = (states: ReadonlyMap<string, AccountState>, batch: RatedBatch) => new Map([...states, ...batch.changed]);
const sum = (xs: bigint[]) => xs.reduce((a, b) => a + b, 0n);

describe('rating, for random account states and events', () => {
  it('gives the same rows, refusals and states whether a batch is rated whole or in pieces', () => {
    fc.assert(fc.property(arbStates, arbEvents(), fc.array(fc.nat(60), { maxLength: 6 }), (states, events, cuts) => {
      const whole = rateBatch(events, states, randomLookup, new Set());
      const pieces = rateInPieces(events, states, cuts);
      expect(pieces.rows).toEqual(whole.rows);
      expect(pieces.rejected).toEqual(whole.rejected);
      expect(pieces.duplicates).toBe(whole.duplicates);
      expect(pieces.grantRemaining).toEqual(whole.grantRemaining);
      expect(pieces.postpaid).toEqual(whole.postpaid);
      expect(pieces.states).toEqual(after(states, whole));
    }), { numRuns: 300 });
  });

  it('never takes from a grant expired at the event\'s time, nor more than a grant had', () => {
    fc.assert(fc.property(arbStates, arbEvents(), (states, events) => {
      const r = rateBatch(events, states, randomLookup, new Set());
      const grants = new Map([...states.values()].flatMap((s) => s.grants.map((g) => [g.id, g] as const)));
      const taken = new Map<string, bigint>();
      for (const row of r.rows) {
        for (const t of row.takes) {
          expect(unexpiredAt(grants.get(t.grantId)!, row.eventMs)).toBe(true);
          taken.set(t.grantId, (taken.get(t.grantId) ?? 0n) + t.amount);
        }
      }
      const final = after(states, r);
      for (const [id, amount] of taken) {
        const g = grants.get(id)!;
        expect(amount <= g.remaining).toBe(true);
        expect(r.grantRemaining.get(id)).toBe(g.remaining - amount);
        expect(final.get(g.id.split('-')[0]!)!.grants.find((x) => x.id === id)?.remaining ?? 0n).toBe(g.remaining - amount);
      }
      expect(new Set(r.grantRemaining.keys())).toEqual(new Set(taken.keys()));
    }), { numRuns: 300 });
  });

  it('takes each event\'s grants in burn order', () => {
    fc.assert(fc.property(arbStates, arbEvents(), (states, events) => {
      const r = rateBatch(events, states, randomLookup, new Set());
      const grants = new Map([...states.values()].flatMap((s) => s.grants.map((g) => [g.id, g] as const)));
      for (const row of r.rows) {
        for (let i = 1; i < row.takes.length; i++) {
          expect(compareBurnOrder(grants.get(row.takes[i - 1]!.grantId)!, grants.get(row.takes[i]!.grantId)!)).toBeLessThanOrEqual(0);
        }
      }
    }), { numRuns: 300 });
  });

  it('accounts for every micro-unit priced: per event and in total, grants + postpaid + overdraft = price', () => {
    fc.assert(fc.property(arbStates, arbEvents(), (states, events) => {
      const r = rateBatch(events, states, randomLookup, new Set());
      for (const row of r.rows) {
        expect(row.amount).toBe(price(row.quantity, randomLookup(row.product, row.currency)!));
        expect(sum(row.takes.map((t) => t.amount))).toBe(row.fromGrants);
        expect(row.fromGrants + row.postpaid + row.overdraft).toBe(row.amount);
      }
      const final = after(states, r);
      for (const [id, before] of states) {
        const rows = r.rows.filter((x) => x.accountId === id);
        const now = final.get(id)!;
        const remaining = (s: AccountState) => sum(s.grants.map((g) => g.remaining));
        expect(sum(rows.map((x) => x.fromGrants))).toBe(remaining(before) - remaining(now));
        expect(sum(rows.map((x) => x.overdraft))).toBe(now.overdraft - before.overdraft);
        expect(sum(rows.filter((x) => monthOf(x.eventMs) === before.postpaidMonth).map((x) => x.postpaid))).toBe(now.postpaidAmount - before.postpaidAmount);
        for (const month of new Set(rows.map((x) => monthOf(x.eventMs)))) {
          expect(sum(rows.filter((x) => monthOf(x.eventMs) === month).map((x) => x.postpaid))).toBe(r.postpaid.get(`${id}\u0000${month}`) ?? 0n);
        }
        // One ledger entry per rated event, numbered on from the account's sequence.
        expect(rows.map((x) => x.seq)).toEqual(rows.map((_, i) => before.ledgerSeq + BigInt(i) + 1n));
        expect(now.ledgerSeq).toBe(before.ledgerSeq + BigInt(rows.length));
        if (rows.length > 0) expect(rows.at(-1)!.balanceAfter).toBe(balanceAt(now, rows.at(-1)!.eventMs));
      }
      expect(r.rows.length + r.rejected.length + r.duplicates).toBe(events.length);
    }), { numRuns: 300 });
  });

  it('leaves the given states, events and rated keys untouched', () => {
    fc.assert(fc.property(arbStates, arbEvents(), (states, events) => {
      for (const s of states.values()) deepFreeze(s); // a write to a state or grant would throw
      const rated = new Set(events.slice(0, 3).map((e) => eventKey(e.event.account_id, e.event.id)));
      const before = structuredClone({ states, events, rated });
      const r = rateBatch(events, states, randomLookup, rated);
      expect({ states, events, rated }).toEqual(before);
      for (const [id, next] of r.changed) expect(next).not.toBe(states.get(id));
    }), { numRuns: 300 });
  });
});
