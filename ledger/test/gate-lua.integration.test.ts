import fc from 'fast-check';
import { expect } from 'vitest';
import { compareBurnOrder, monthOf, type AccountState } from '@meterstream/ledger/account-state';
import { decideHold, type GateLimits } from '@meterstream/ledger/core/holds';
import { test } from '../../tests/support/test.js';

// The gate's Lua script (gate-cache.ts) decides in Redis what core/holds.ts decideHold specifies:
// random accounts, limits, open holds (some expired) and prices, each asked of both.

const T0 = Date.parse('2026-11-15T12:00:00Z');
const MINUTE = 60_000;
const TTL = 15 * MINUTE;

const arbCase = fc.record({
  billingMode: fc.constantFrom('prepaid' as const, 'postpaid' as const),
  grants: fc.array(fc.record({
    remaining: fc.bigInt({ min: 1n, max: 5_000_000n }),
    expiresIn: fc.option(fc.integer({ min: -10, max: 40 }).map((m) => m * MINUTE), { nil: null }),
  }), { maxLength: 4 }),
  overdraft: fc.oneof(fc.constant(0n), fc.bigInt({ min: 0n, max: 1_000_000n })),
  postpaidAmount: fc.bigInt({ min: 0n, max: 10_000_000n }),
  postpaidLastMonth: fc.boolean(),
  suspended: fc.oneof({ weight: 4, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
  hasPaymentMethod: fc.boolean(),
  monthlyLimit: fc.option(fc.bigInt({ min: 0n, max: 20_000_000n }), { nil: null }),
  allowedLimit: fc.option(fc.bigInt({ min: 0n, max: 20_000_000n }), { nil: null }),
  monthSpend: fc.bigInt({ min: 0n, max: 10_000_000n }),
  holds: fc.array(fc.record({ amount: fc.bigInt({ min: 0n, max: 3_000_000n }), expiresIn: fc.integer({ min: -5, max: 15 }).map((m) => m * MINUTE) }), { maxLength: 4 }),
  amount: fc.bigInt({ min: 0n, max: 8_000_000n }),
});

test('the Lua script decides exactly as decideHold', async ({ stack }) => {
  const { cache } = stack;
  let n = 0;
  await fc.assert(fc.asyncProperty(arbCase, async (c) => {
    const id = `lua-${process.pid}-${n++}`;
    const state: AccountState = {
      id, currency: 'USD', billingMode: c.billingMode, overdraft: c.billingMode === 'prepaid' ? c.overdraft : 0n, ledgerSeq: 5n,
      grants: c.grants.map((g, i) => ({
        id: `${id}-g${i}`, kind: 'purchased' as const, amount: g.remaining, remaining: g.remaining,
        expiresAt: g.expiresIn === null ? null : T0 + g.expiresIn, priority: 100, createdSeq: BigInt(i + 1),
      })).sort(compareBurnOrder),
      postpaidMonth: c.postpaidLastMonth ? '2026-10' : monthOf(T0), postpaidAmount: c.postpaidAmount,
    };
    const limits: GateLimits = {
      suspended: c.suspended, hasPaymentMethod: c.hasPaymentMethod, monthlyLimit: c.monthlyLimit, allowedLimit: c.allowedLimit, monthSpend: c.monthSpend,
    };
    await cache.write([state]);
    await cache.gate.init(id, c.holds.map((h, i) => ({ id: `hold_${String(i).padStart(24, '0')}`, amount: h.amount, expiresMs: T0 + h.expiresIn })));
    await cache.gate.writeConfig(id, { ...limits, month: monthOf(T0), spendSeq: 5n, holdTtlMs: TTL });
    const held = c.holds.filter((h) => h.expiresIn > 0).reduce((s, h) => s + h.amount, 0n);
    const expected = decideHold({ state, limits, held, amount: c.amount, nowMs: T0, expiresMs: T0 + TTL });
    const got = await cache.gate.reserve(id, 'hold_ffffffffffffffffffffffff', c.amount, T0, monthOf(T0));
    expect(got).toEqual(expected === null ? { kind: 'held', expiresMs: T0 + TTL, epoch: expect.any(String) as string } : { kind: 'refused', code: expected });
    expect(await cache.gate.heldAt(id, T0)).toBe(held + (expected === null ? c.amount : 0n));
  }), { numRuns: 150 });
});
