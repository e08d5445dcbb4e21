import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { DecimalError, divRoundHalfUp, formatMicros, priceMicros, toMicros } from '@meterstream/schemas';

describe('money', () => {
  it('reads decimals and JSON numbers exactly, never through a float', () => {
    expect(toMicros('0.012500')).toBe(12_500n);
    expect(toMicros(0.1)).toBe(100_000n);
    expect(toMicros('123456789012345.999999')).toBe(123_456_789_012_345_999_999n);
    expect(() => toMicros('0.0000001')).toThrow(DecimalError);
    expect(() => toMicros(1e-7)).toThrow(DecimalError);
    expect(() => toMicros('1e3')).toThrow(DecimalError);
    // The refused text is quoted, clipped: a caller's megabyte never ends up in a response.
    expect(() => toMicros('1'.repeat(100_000))).toThrow(`"${'1'.repeat(40)}..." is not a decimal with at most 6 places and 15 digits before the point`);
  });

  it('formats micro-units as exact decimal strings and back', () => {
    expect(formatMicros(0n)).toBe('0.000000');
    expect(formatMicros(12_500n)).toBe('0.012500');
    expect(formatMicros(-30_000n)).toBe('-0.030000');
    expect(formatMicros(4_000_000n)).toBe('4.000000');
    fc.assert(fc.property(fc.bigInt({ min: -(10n ** 20n), max: 10n ** 20n }), (m) => {
      expect(toMicros(formatMicros(m))).toBe(m);
    }));
  });

  it('rounds half up at the micro-unit, once', () => {
    expect(divRoundHalfUp(5n, 10n)).toBe(1n);
    expect(divRoundHalfUp(4n, 10n)).toBe(0n);
    expect(priceMicros(toMicros('0.25'), toMicros('0.002'), 1000n)).toBe(1n); // 0.0000005 -> 0.000001
    expect(priceMicros(toMicros('0.24'), toMicros('0.002'), 1000n)).toBe(0n);
    expect(priceMicros(toMicros('90'), toMicros('0.60'), 60n)).toBe(900_000n); // 90 s of $0.60/min
  });
});
