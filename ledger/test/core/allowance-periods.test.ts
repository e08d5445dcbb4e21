import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  addMonths, allowanceExpiry, InvalidAnchorDayError, monthAt, monthStart, nextPeriodStart, periodAt, periodStart,
} from '@meterstream/ledger/core/months';
import { allowancesOwed, type AllowanceSchedule } from '@meterstream/ledger/commands/grant-allowances';

const at = (iso: string) => Date.parse(iso);
const DAY = 86_400_000;
// 1990 to 2100, any millisecond.
const arbInstant = fc.integer({ min: at('1990-01-01T00:00:00Z'), max: at('2100-01-01T00:00:00Z') });
const arbAnchor = fc.integer({ min: 1, max: 28 });

describe('billing periods (anchor day D, named by the month they start in)', () => {
  it('with D = 1 they are the calendar months, under the names they always had', () => {
    fc.assert(fc.property(arbInstant, (ms) => {
      expect(periodAt(ms, 1)).toBe(monthAt(ms));
      expect(periodStart(periodAt(ms, 1), 1)).toBe(monthStart(monthAt(ms)));
    }));
  });

  it('every instant lies in exactly one period: from its start (included) to the next start (excluded)', () => {
    fc.assert(fc.property(arbInstant, arbAnchor, (ms, d) => {
      const p = periodAt(ms, d);
      const start = periodStart(p, d);
      const end = periodStart(addMonths(p, 1), d);
      expect(start <= ms && ms < end).toBe(true);
      expect(new Date(start).getUTCDate()).toBe(d);
      expect(new Date(start).getUTCHours() + new Date(start).getUTCMinutes()).toBe(0);
      // 28 to 31 days: every month has the anchor day.
      expect((end - start) / DAY >= 28 && (end - start) / DAY <= 31).toBe(true);
      expect(nextPeriodStart(ms, d)).toBe(end);
      // The last millisecond before a start is in the period before it.
      expect(periodAt(start - 1, d)).toBe(addMonths(p, -1));
      expect(periodAt(start, d)).toBe(p);
    }));
  });

  it('an allowance with rollover R is usable for 1 + R whole periods and expires at a period start', () => {
    fc.assert(fc.property(arbInstant, arbAnchor, fc.integer({ min: 0, max: 24 }), (ms, d, r) => {
      const p = periodAt(ms, d);
      const expiry = allowanceExpiry(p, r, d);
      expect(periodAt(expiry - 1, d)).toBe(addMonths(p, r));
      expect(periodAt(expiry, d)).toBe(addMonths(p, r + 1));
      expect(periodStart(periodAt(expiry, d), d)).toBe(expiry);
    }));
  });

  it('the README example: the March allowance (R = 2) is usable through May and expires on June 1st 00:00 UTC', () => {
    expect(new Date(allowanceExpiry('2031-03', 2)).toISOString()).toBe('2031-06-01T00:00:00.000Z');
    // Anchor 15: the period 2031-03 runs from March 15th; its allowance is usable until June 15th.
    expect(new Date(periodStart('2031-03', 15)).toISOString()).toBe('2031-03-15T00:00:00.000Z');
    expect(periodAt(at('2031-03-14T23:59:59.999Z'), 15)).toBe('2031-02');
    expect(new Date(allowanceExpiry('2031-03', 2, 15)).toISOString()).toBe('2031-06-15T00:00:00.000Z');
    expect(new Date(nextPeriodStart(at('2031-12-20T10:00:00Z'), 15)).toISOString()).toBe('2032-01-15T00:00:00.000Z');
  });

  it('refuses an anchor day outside 1..28', () => {
    for (const d of [0, 29, 31, 1.5]) expect(() => periodStart('2031-01', d)).toThrow(InvalidAnchorDayError);
  });
});

describe('allowancesOwed', () => {
  const plan = (amount: bigint, rollover = 2) => ({ amount, rollover, sinceMs: null });
  const base = (over: Partial<AllowanceSchedule> = {}): AllowanceSchedule => ({
    anchorDay: 1, createdMs: at('2031-01-10T00:00:00Z'), lastPeriod: null, current: plan(10n), pending: null, ...over,
  });

  it('a new account is owed its current period only; a late run the missed periods still usable, oldest first', () => {
    expect(allowancesOwed(base(), at('2031-01-10T00:00:01Z')).map((o) => o.period)).toEqual(['2031-01']);
    expect(allowancesOwed(base({ lastPeriod: '2031-01' }), at('2031-06-10T00:00:00Z')).map((o) => o.period))
      .toEqual(['2031-04', '2031-05', '2031-06']);
  });

  it('a due plan change: the old plan up to the switch, the new plan from its period on; nothing on a plan without allowance', () => {
    const s = base({
      lastPeriod: '2031-01', current: plan(10n),
      pending: { amount: 25n, rollover: 1, atMs: at('2031-03-01T00:00:00Z') },
    });
    expect(allowancesOwed(s, at('2031-04-02T00:00:00Z'))).toEqual([
      { period: '2031-02', plan: 'current', amount: 10n, rollover: 2 },
      { period: '2031-03', plan: 'pending', amount: 25n, rollover: 1 },
      { period: '2031-04', plan: 'pending', amount: 25n, rollover: 1 },
    ]);
    // Not due yet: the current plan only.
    expect(allowancesOwed(s, at('2031-02-27T00:00:00Z')).map((o) => o.plan)).toEqual(['current']);
    expect(allowancesOwed({ ...s, pending: { ...s.pending!, amount: 0n } }, at('2031-04-02T00:00:00Z')).map((o) => o.period)).toEqual(['2031-02']);
  });

  it('never a period before the account was opened or before its plan took effect', () => {
    const s = base({ lastPeriod: '2030-10', current: { amount: 10n, rollover: 2, sinceMs: at('2031-03-01T00:00:00Z') } });
    expect(allowancesOwed(s, at('2031-03-05T00:00:00Z')).map((o) => o.period)).toEqual(['2031-03']);
  });

  it('property: each owed period once, after the last, in order, unexpired, within the account\'s life', () => {
    fc.assert(fc.property(
      arbAnchor, fc.integer({ min: 0, max: 40 }), fc.option(fc.integer({ min: 0, max: 40 })), fc.integer({ min: 0, max: 6 }),
      fc.option(fc.integer({ min: 0, max: 40 })), fc.integer({ min: 0, max: 400 }),
      (d, createdDays, lastOffset, rollover, pendingMonths, nowDays) => {
        const createdMs = at('2031-01-01T00:00:00Z') + createdDays * DAY;
        const nowMs = createdMs + nowDays * DAY;
        const opened = periodAt(createdMs, d);
        const lastPeriod = lastOffset === null ? null : addMonths(opened, Math.min(lastOffset % 14, 13));
        const pending = pendingMonths === null ? null : { amount: 7n, rollover, atMs: periodStart(addMonths(opened, 1 + (pendingMonths % 14)), d) };
        const owed = allowancesOwed({ anchorDay: d, createdMs, lastPeriod, current: { amount: 10n, rollover, sinceMs: null }, pending }, nowMs);
        const periods = owed.map((o) => o.period);
        expect([...periods].sort()).toEqual(periods);
        expect(new Set(periods).size).toBe(periods.length);
        for (const o of owed) {
          expect(lastPeriod === null || o.period > lastPeriod).toBe(true);
          expect(o.period >= opened && o.period <= periodAt(nowMs, d)).toBe(true);
          expect(allowanceExpiry(o.period, o.rollover, d) > nowMs).toBe(true);
          const switched = pending !== null && pending.atMs <= nowMs && periodStart(o.period, d) >= pending.atMs;
          expect(o.plan).toBe(switched ? 'pending' : 'current');
        }
        // The current period is owed unless the last grant covers it (or it is later).
        if (lastPeriod === null || lastPeriod < periodAt(nowMs, d)) expect(periods.at(-1)).toBe(periodAt(nowMs, d));
      },
    ));
  });
});
