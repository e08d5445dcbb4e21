import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { invoiceLines, lineCents, totals, type UsageGroup } from '../src/core/lines.js';

const group = fc.record({
  month: fc.constantFrom('2026-08', '2026-09', '2026-10'),
  product: fc.constantFrom('gpt-tokens', 'image-gen', 'tts'),
  unit: fc.constant('token'),
  unitPrice: fc.bigInt({ min: 0n, max: 10_000_000n }),
  per: fc.constantFrom(1n, 1000n),
  events: fc.bigInt({ min: 1n, max: 1000n }),
  quantity: fc.bigInt({ min: 0n, max: 10n ** 12n }),
  amount: fc.bigInt({ min: 0n, max: 10n ** 10n }),
}).chain((g) => fc.bigInt({ min: 0n, max: g.amount }).map((fromGrants): UsageGroup => ({ ...g, fromGrants, postpaid: g.amount - fromGrants })));

describe('invoice lines', () => {
  it('keep every figure: amount = covered + due, the totals add up, late lines only for earlier months, numbered 1..n', () => {
    fc.assert(fc.property(fc.array(group, { maxLength: 20 }), fc.array(fc.bigInt({ min: 0n, max: 10n ** 8n }), { maxLength: 3 }), (usage, addonPrices) => {
      const addons = addonPrices.map((amount, i) => ({ description: `add-on ${i}`, amount, due: amount / 2n }));
      const lines = invoiceLines('2026-10', usage, addons);
      expect(lines.map((l) => l.lineNo)).toEqual(lines.map((_, i) => i + 1));
      for (const l of lines) expect(l.amount).toBe(l.covered + l.due);
      expect(lines.filter((l) => l.kind === 'late_usage').every((l) => l.usageMonth < '2026-10' && l.description.endsWith(`late usage for ${l.usageMonth}`))).toBe(true);
      const t = totals(lines);
      const due = usage.reduce((s, u) => s + u.postpaid, 0n) + addons.reduce((s, a) => s + a.due, 0n);
      expect(t.total).toBe(due);
      expect(t.subtotal).toBe(t.covered + t.total);
      expect(t.amountDue % 10_000n).toBe(0n);
      // never more than accrued, less by under a cent; the Stripe items add up to it exactly
      expect(t.amountDue <= t.total && t.total - t.amountDue < 10_000n).toBe(true);
      const cents = lineCents(lines.map((l) => l.due));
      expect(cents.reduce((s, c) => s + c, 0n) * 10_000n).toBe(t.amountDue);
      for (const [i, l] of lines.entries()) expect(cents[i]! * 10_000n <= l.due + 10_000n && cents[i]! * 10_000n >= l.due - 10_000n).toBe(true);
    }));
  });

  it('charges the total rounded down to a cent, the leftover cents to the largest remainders', () => {
    // 99.999968 accrued under the 100 limit: 99.99 charged (lines rounded half up would charge 100.00 or more)
    expect(lineCents([90_245_000n, 7_065_594n, 2_063_722n, 511_652n, 114_000n])).toEqual([9024n, 707n, 206n, 51n, 11n]);
    expect([4_999n, 5_000n, 1_234_567n].map((d) => lineCents([d])[0])).toEqual([0n, 0n, 123n]);
    expect(lineCents([6_000n, 6_000n])).toEqual([1n, 0n]);
  });
});
