import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { priceMicros, toMicros } from '@meterstream/schemas';
import { price, type PriceEntry } from '@meterstream/ledger/core/price';

// Seed 001: audio priced per minute, billed per second.
const perMinute: PriceEntry = { model: 'per_unit', unit: 'second', unitPrice: toMicros('0.60'), per: 60n };
const perStartedSecond: PriceEntry = { ...perMinute, model: 'per_increment', incrementMicros: toMicros('1') };
const perStartedMinute: PriceEntry = { ...perMinute, model: 'per_increment', incrementMicros: toMicros('60') };

describe('per_unit', () => {
  it('is quantity x unit_price / per, rounded half up once per event', () => {
    expect(price(toMicros('61'), perMinute)).toBe(610_000n);
    expect(price(toMicros('1.5'), perMinute)).toBe(15_000n);
    expect(price(toMicros('0.25'), { model: 'per_unit', unit: 'token', unitPrice: toMicros('0.002'), per: 1000n })).toBe(1n); // 0.5 micro -> 1
    expect(price(toMicros('0.24'), { model: 'per_unit', unit: 'token', unitPrice: toMicros('0.002'), per: 1000n })).toBe(0n);
  });
});

describe('per_increment', () => {
  it('bills every started increment in full', () => {
    expect(price(toMicros('1.5'), perStartedSecond)).toBe(20_000n); // 2 s, not 1.5 s
    expect(price(toMicros('0.000001'), perStartedSecond)).toBe(10_000n);
    expect(price(toMicros('61'), perStartedMinute)).toBe(1_200_000n); // two started minutes
  });

  it('bills an exact multiple, and nothing, as per_unit does', () => {
    expect(price(toMicros('61'), perStartedSecond)).toBe(610_000n);
    expect(price(toMicros('120'), perStartedMinute)).toBe(1_200_000n);
    expect(price(0n, perStartedMinute)).toBe(0n);
  });

  it('costs what per_unit costs for the quantity rounded up to the increment, never less', () => {
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: 10n ** 12n }), fc.bigInt({ min: 1n, max: 10n ** 9n }), (q, inc) => {
      const entry: PriceEntry = { ...perMinute, model: 'per_increment', incrementMicros: inc };
      const billed = ((q + inc - 1n) / inc) * inc;
      expect(price(q, entry)).toBe(priceMicros(billed, entry.unitPrice, entry.per));
      expect(price(q, entry) >= price(q, perMinute)).toBe(true);
    }));
  });
});
