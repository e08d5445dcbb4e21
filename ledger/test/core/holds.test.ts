import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { toMicros } from '@meterstream/schemas';
import { balanceAt, compareBurnOrder, type AccountState, type GrantState } from '@meterstream/ledger/account-state';
import { burn } from '@meterstream/ledger/core/burn';
import { captureCharge, decideHold, type GateLimits } from '@meterstream/ledger/core/holds';

const T0 = Date.parse('2026-11-01T00:00:00Z');
const MINUTE = 60_000;
const TTL = 15 * MINUTE;

const grant = (id: string, amount: bigint, expiresAt: number | null, seq: bigint): GrantState =>
  ({ id, kind: expiresAt === null ? 'purchased' : 'gift', amount, remaining: amount, expiresAt, priority: 100, createdSeq: seq });

const account = (billingMode: AccountState['billingMode'], grants: GrantState[]): AccountState => ({
  id: 'a1', currency: 'USD', billingMode, overdraft: 0n, ledgerSeq: 1n, grants: grants.sort(compareBurnOrder), postpaidMonth: '2026-11', postpaidAmount: 0n,
});

const limits = (over: Partial<GateLimits> = {}): GateLimits =>
  ({ suspended: false, hasPaymentMethod: true, monthlyLimit: null, allowedLimit: null, monthSpend: 0n, ...over });

const ask = (state: AccountState, l: GateLimits, held: bigint, amount: string) =>
  decideHold({ state, limits: l, held, amount: toMicros(amount), nowMs: T0, expiresMs: T0 + TTL });

describe('decideHold', () => {
  it('prepaid: the balance minus open holds must cover the price', () => {
    const s = account('prepaid', [grant('g', toMicros('10'), null, 1n)]);
    expect(ask(s, limits(), toMicros('6'), '4')).toBeNull();
    expect(ask(s, limits(), toMicros('6'), '4.000001')).toBe('PAYMENT_REQUIRED');
  });

  it('a grant that lapses before the hold would does not back it', () => {
    const s = account('prepaid', [grant('g', toMicros('10'), T0 + TTL - 1, 1n)]);
    expect(ask(s, limits(), 0n, '1')).toBe('PAYMENT_REQUIRED');
    expect(ask(account('prepaid', [grant('g', toMicros('10'), T0 + TTL + 1, 1n)]), limits(), 0n, '1')).toBeNull();
  });

  it('postpaid: free credits first, then a card, then the monthly limit minus the month\'s usage', () => {
    const s = { ...account('postpaid', [grant('free', toMicros('5'), T0 + 30 * 86_400_000, 1n)]), postpaidAmount: toMicros('90') };
    expect(ask(s, limits({ hasPaymentMethod: false }), 0n, '5')).toBeNull();
    expect(ask(s, limits({ hasPaymentMethod: false }), 0n, '5.01')).toBe('CARD_REQUIRED');
    expect(ask(s, limits({ monthlyLimit: toMicros('100') }), toMicros('1'), '14')).toBeNull();
    expect(ask(s, limits({ monthlyLimit: toMicros('100') }), toMicros('1'), '14.000001')).toBe('MONTHLY_LIMIT_REACHED');
    expect(ask(s, limits(), 0n, '1000000')).toBeNull();
  });

  it('suspension, then the allowed limit, come before the credits', () => {
    const s = account('prepaid', [grant('g', toMicros('100'), null, 1n)]);
    expect(ask(s, limits({ suspended: true }), 0n, '1')).toBe('ACCOUNT_SUSPENDED');
    expect(ask(s, limits({ allowedLimit: toMicros('20'), monthSpend: toMicros('15') }), toMicros('4'), '1')).toBeNull();
    expect(ask(s, limits({ allowedLimit: toMicros('20'), monthSpend: toMicros('15') }), toMicros('4'), '1.000001')).toBe('ALLOWED_LIMIT_REACHED');
  });

  it('a capture is charged its price, at most the hold', () => {
    expect(captureCharge(3n, 5n)).toBe(3n);
    expect(captureCharge(7n, 5n)).toBe(5n);
  });
});

type Op =
  | { op: 'authorize'; amount: bigint }
  | { op: 'capture'; pick: number; price: bigint }
  | { op: 'release'; pick: number }
  | { op: 'advance'; ms: number }
  | { op: 'topup'; amount: bigint; expiresIn: number | null };

const arbOp: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ op: fc.constant('authorize' as const), amount: fc.bigInt({ min: 0n, max: 3_000_000n }) }) },
  { weight: 4, arbitrary: fc.record({ op: fc.constant('capture' as const), pick: fc.nat(), price: fc.bigInt({ min: 0n, max: 4_000_000n }) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('release' as const), pick: fc.nat() }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 1, max: 20 * MINUTE }) }) },
  { weight: 1, arbitrary: fc.record({
    op: fc.constant('topup' as const), amount: fc.bigInt({ min: 1n, max: 5_000_000n }),
    expiresIn: fc.option(fc.integer({ min: 1, max: 60 * MINUTE }), { nil: null }),
  }) },
);

interface OpenHold { amount: bigint; expiresMs: number }

describe('the gate over random interleavings of authorize, capture, release, expiry and top-up', () => {
  it('never lets a prepaid balance below zero nor a postpaid account past its limits', () => {
    fc.assert(fc.property(
      fc.constantFrom('prepaid' as const, 'postpaid' as const),
      fc.boolean(),
      fc.option(fc.bigInt({ min: 0n, max: 20_000_000n }), { nil: null }),
      fc.option(fc.bigInt({ min: 0n, max: 20_000_000n }), { nil: null }),
      fc.array(fc.record({ amount: fc.bigInt({ min: 1n, max: 8_000_000n }), expiresIn: fc.option(fc.integer({ min: 1, max: 60 * MINUTE }), { nil: null }) }), { maxLength: 3 }),
      fc.array(arbOp, { maxLength: 60 }),
      (mode, hasPaymentMethod, monthlyLimit, allowedLimit, initial, ops) => {
        let now = T0;
        let seq = 1n;
        let state = account(mode, initial.map((g) => grant(`g${seq}`, g.amount, g.expiresIn === null ? null : T0 + g.expiresIn, seq++)));
        let monthSpend = 0n;
        let holds: OpenHold[] = [];
        const l = () => limits({ hasPaymentMethod, monthlyLimit: mode === 'postpaid' ? monthlyLimit : null, allowedLimit, monthSpend });
        for (const o of ops) {
          holds = holds.filter((h) => h.expiresMs > now); // expiry frees a hold at its TTL
          const held = holds.reduce((s, h) => s + h.amount, 0n);
          if (o.op === 'authorize') {
            if (decideHold({ state, limits: l(), held, amount: o.amount, nowMs: now, expiresMs: now + TTL }) === null) holds.push({ amount: o.amount, expiresMs: now + TTL });
          } else if (o.op === 'capture' && holds.length > 0) {
            const [h] = holds.splice(o.pick % holds.length, 1);
            const charge = captureCharge(o.price, h!.amount);
            state = burn(state, charge, now).next;
            monthSpend += charge;
          } else if (o.op === 'release' && holds.length > 0) {
            holds.splice(o.pick % holds.length, 1);
          } else if (o.op === 'advance') {
            now += o.ms;
          } else if (o.op === 'topup') {
            // Within the month: the model stays in November (at most 60 ops of 20 minutes).
            state = { ...state, grants: [...state.grants, grant(`g${seq}`, o.amount, o.expiresIn === null ? null : now + o.expiresIn, seq++)].sort(compareBurnOrder) };
          }
          if (mode === 'prepaid') {
            expect(state.overdraft).toBe(0n);
            expect(balanceAt(state, now)).toBeGreaterThanOrEqual(0n);
          } else {
            if (!hasPaymentMethod) expect(state.postpaidAmount).toBe(0n);
            if (monthlyLimit !== null) expect(state.postpaidAmount).toBeLessThanOrEqual(monthlyLimit);
          }
          if (allowedLimit !== null) expect(monthSpend).toBeLessThanOrEqual(allowedLimit);
        }
      },
    ), { numRuns: 300 });
  });
});
