import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ARMED, crossings, type AlertSettings, type Armed } from '@meterstream/ledger/core/thresholds';

const prepaid = (over: Partial<AlertSettings> = {}): AlertSettings => ({ billingMode: 'prepaid', lowBalance: null, spendAlert: null, allowedLimit: null, ...over });
const MONTH = '2031-05';

/** Runs a sequence of balances through the core as the commands do: a fall may fire, a rise (a grant) only re-arms. */
function runBalances(settings: AlertSettings, start: bigint, balances: readonly bigint[]) {
  let armed: Armed = ARMED;
  let prev = start;
  const fired: string[][] = [];
  for (const balance of balances) {
    const r = crossings(settings, armed, { balance, month: MONTH, spent: 0n }, balance <= prev);
    fired.push(r.fired.map((f) => f.type));
    armed = r.armed;
    prev = balance;
  }
  return fired;
}

/** Indexes where the sequence goes from at-or-above to under (`under`), counting `start` as the value before the first. */
function downwardCrossings(start: bigint, balances: readonly bigint[], under: (b: bigint) => boolean): number[] {
  const out: number[] = [];
  balances.forEach((b, i) => {
    if (under(b) && !under(i === 0 ? start : balances[i - 1]!)) out.push(i);
  });
  return out;
}

const balance = fc.bigInt({ min: -50n, max: 50n });

describe('thresholds core: once per crossing', () => {
  it('fires balance.low and balance.zero exactly at each downward crossing, over random sequences', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 40n }), fc.bigInt({ min: 41n, max: 60n }), fc.array(balance, { maxLength: 60 }), (threshold, start, balances) => {
      const fired = runBalances(prepaid({ lowBalance: threshold }), start, balances);
      const at = (type: string) => fired.flatMap((f, i) => (f.includes(type) ? [i] : []));
      expect(at('balance.low')).toEqual(downwardCrossings(start, balances, (b) => b < threshold));
      expect(at('balance.zero')).toEqual(downwardCrossings(start, balances, (b) => b <= 0n));
    }));
  });

  it('fires balance.low once when an account starts under its threshold, and never again until re-armed', () => {
    const fired = runBalances(prepaid({ lowBalance: 10n }), 5n, [5n, 4n, 3n, 12n, 11n, 9n, 9n]);
    expect(fired).toEqual([['balance.low'], [], [], [], [], ['balance.low'], []]);
  });

  it('never fires balance alerts for postpaid accounts, nor an alert that is not set', () => {
    fc.assert(fc.property(fc.array(balance, { maxLength: 30 }), (balances) => {
      expect(runBalances({ ...prepaid({ lowBalance: 10n }), billingMode: 'postpaid' }, 60n, balances).flat()).toEqual([]);
      expect(runBalances(prepaid(), 60n, balances).flat().filter((t) => t === 'balance.low')).toEqual([]);
    }));
  });

  it('a rise (mayFire false) only re-arms, even under the threshold', () => {
    const r = crossings(prepaid({ lowBalance: 10n }), ARMED, { balance: 5n, month: MONTH, spent: 0n }, false);
    expect(r).toEqual({ fired: [], armed: ARMED });
    const rearmed = crossings(prepaid({ lowBalance: 10n }), { ...ARMED, lowNotified: true, zeroNotified: true }, { balance: 10n, month: MONTH, spent: 0n }, false);
    expect(rearmed.armed).toEqual(ARMED);
  });

  it('fires each spend alert once per month in which the spend reached it, over random months of spending', () => {
    const month = (i: number) => `2031-${String(i + 1).padStart(2, '0')}`;
    // Per month, a rising spend: a list of increments.
    const months = fc.array(fc.array(fc.bigInt({ min: 0n, max: 30n }), { maxLength: 12 }), { minLength: 1, maxLength: 12 });
    fc.assert(fc.property(fc.bigInt({ min: 1n, max: 100n }), fc.bigInt({ min: 0n, max: 100n }), months, (alert, extra, spending) => {
      const settings = prepaid({ spendAlert: alert, allowedLimit: alert + extra });
      let armed: Armed = ARMED;
      const fired: Record<string, string[]> = { 'spend.alert_threshold': [], 'spend.limit_reached': [] };
      spending.forEach((increments, i) => {
        let spent = 0n;
        for (const inc of increments) {
          spent += inc;
          const r = crossings(settings, armed, { balance: 100n, month: month(i), spent }, true);
          for (const f of r.fired) fired[f.type]!.push(month(i));
          armed = r.armed;
        }
      });
      const reached = (t: bigint) => spending.flatMap((inc, i) => (inc.reduce((a, b) => a + b, 0n) >= t ? [month(i)] : []));
      expect(fired['spend.alert_threshold']).toEqual(reached(alert));
      expect(fired['spend.limit_reached']).toEqual(reached(alert + extra));
    }));
  });

  it('carries the setting crossed', () => {
    const r = crossings(prepaid({ lowBalance: 10n, spendAlert: 3n, allowedLimit: 4n }), ARMED, { balance: -1n, month: MONTH, spent: 4n }, true);
    expect(r.fired).toEqual([
      { type: 'balance.low', threshold: 10n }, { type: 'balance.zero', threshold: 0n },
      { type: 'spend.alert_threshold', threshold: 3n }, { type: 'spend.limit_reached', threshold: 4n },
    ]);
    expect(r.armed).toEqual({ lowNotified: true, zeroNotified: true, spendAlertMonth: MONTH, limitMonth: MONTH });
  });
});
