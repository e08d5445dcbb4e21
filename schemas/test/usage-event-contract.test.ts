import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  expandExponent, formatMicros, GrantInput, ID_MAX_LENGTH, INT64_MAX, MAX_MONEY_MICROS, MAX_QUANTITY_MICROS, PER_MAX, PriceInput,
  PROPERTIES_MAX_KEYS, PROPERTIES_MAX_LENGTH, PROPERTY_KEY_MAX_LENGTH, PROPERTY_VALUE_MAX_LENGTH, toMicros, UsageEvent,
} from '@meterstream/schemas';

const base = { id: 'e-1', account_id: 'a-1', product: 'p', quantity: '1', timestamp: '2025-01-01T00:00:00Z' };
const verdict = (over: Record<string, unknown>) => {
  const r = UsageEvent.safeParse({ ...base, ...over });
  return r.success ? 'ok' : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
};

describe('usage event contract', () => {
  it('keeps quantities inside int8 micro-units', () => {
    expect(UsageEvent.parse({ ...base, quantity: formatMicros(MAX_QUANTITY_MICROS) }).quantity).toBe(MAX_QUANTITY_MICROS);
    for (const quantity of ['99999999999999', 99999999999999, '1000000000000', 1e12, '999999999999999.999999']) {
      expect(verdict({ quantity }), String(quantity)).toBe('quantity: quantity must be at most 999999999999.999999');
    }
    expect(verdict({ quantity: 1e21 })).toMatch(/^quantity: quantity "1e\+21" is not a decimal/);
  });

  it('reads exponent notation exactly, never through a float', () => {
    expect(UsageEvent.parse({ ...base, quantity: '5e-5' }).quantity).toBe(50n);
    expect(UsageEvent.parse({ ...base, quantity: '1.5E+3' }).quantity).toBe(1_500_000_000n);
    for (const quantity of ['1e-7', '1.0000001e0', '1e400', '1e-400', '0.1000000000000000055e0']) {
      expect(verdict({ quantity }), quantity).toMatch(/^quantity: quantity ".*" is not a decimal with at most 6 places/);
    }
    // Any spelling m x 10^e of an in-range quantity reads as exactly that quantity.
    fc.assert(fc.property(fc.bigInt({ min: 0n, max: MAX_QUANTITY_MICROS }), fc.integer({ min: -30, max: 30 }), (micros, shift) => {
      const plain = formatMicros(micros);
      const digits = plain.replace('.', '');
      const point = plain.indexOf('.') + shift;
      const mantissa = point <= 0 ? `0.${'0'.repeat(-point)}${digits}`
        : point >= digits.length ? digits + '0'.repeat(point - digits.length)
          : `${digits.slice(0, point)}.${digits.slice(point)}`;
      expect(toMicros(expandExponent(`${mantissa}e${-shift}`))).toBe(micros);
    }));
  });

  it('takes only properties Postgres jsonb can store, within documented bounds', () => {
    expect(verdict({ properties: { model: 'small', smile: '\u{1F600}' } })).toBe('ok');
    expect(verdict({ properties: { note: 'a\u0000b' } })).toBe('properties: the value of "note" contains the NUL character (\\u0000)');
    expect(verdict({ properties: { ['k\u0000']: 'v' } })).toBe('properties: key "k\\u0000" contains the NUL character (\\u0000)');
    expect(verdict({ properties: { note: '\ud800' } })).toBe('properties: the value of "note" contains a lone UTF-16 surrogate');
    expect(verdict({ properties: { ['\udc00x']: 'v' } })).toBe('properties: key "\\udc00x" contains a lone UTF-16 surrogate');
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, k) => [`k${k}`, 'v']));
    expect(verdict({ properties: keys(PROPERTIES_MAX_KEYS) })).toBe('ok');
    expect(verdict({ properties: keys(PROPERTIES_MAX_KEYS + 1) })).toBe('properties: at most 32 keys, got 33');
    expect(verdict({ properties: { ['k'.repeat(PROPERTY_KEY_MAX_LENGTH)]: 'v'.repeat(PROPERTY_VALUE_MAX_LENGTH) } })).toBe('ok');
    expect(verdict({ properties: { ['k'.repeat(PROPERTY_KEY_MAX_LENGTH + 1)]: 'v' } })).toMatch(/is longer than 64 characters$/);
    expect(verdict({ properties: { k: 'v'.repeat(PROPERTY_VALUE_MAX_LENGTH + 1) } })).toBe('properties: the value of "k" is longer than 1024 characters');
    const total = (n: number) => ({ a: 'v'.repeat(1023), b: 'v'.repeat(1023), c: 'v'.repeat(1023), d: 'v'.repeat(n - 3 * 1024 - 1) });
    expect(verdict({ properties: total(PROPERTIES_MAX_LENGTH) })).toBe('ok');
    expect(verdict({ properties: total(PROPERTIES_MAX_LENGTH + 1) })).toBe('properties: keys and values hold 4097 characters, at most 4096');
    expect(verdict({ properties: { n: 1 } })).toMatch(/^properties\.n: /);
  });

  it(`bounds ids at ${ID_MAX_LENGTH} characters`, () => {
    expect(verdict({ id: 'i'.repeat(ID_MAX_LENGTH), product: 'p'.repeat(ID_MAX_LENGTH), account_id: 'a'.repeat(ID_MAX_LENGTH) })).toBe('ok');
    expect(verdict({ product: 'p'.repeat(ID_MAX_LENGTH + 1) })).toMatch(/^product: .*128 characters/);
  });

  it('drops keys it does not define and keeps the gate hold and the workspace', () => {
    const parsed = UsageEvent.parse({ ...base, hold_id: `hold_${'0'.repeat(24)}`, workspace_id: `ws_${'1'.repeat(24)}`, extra: 1 });
    expect(Object.keys(parsed).sort()).toEqual(['account_id', 'hold_id', 'id', 'product', 'quantity', 'timestamp', 'workspace_id']);
  });
});

describe('money a caller sets', () => {
  it('keeps grants and unit prices at most MAX_MONEY_MICROS, far inside int8 even when summed', () => {
    expect(MAX_MONEY_MICROS * 9000n < INT64_MAX && MAX_QUANTITY_MICROS < INT64_MAX).toBe(true);
    const max = formatMicros(MAX_MONEY_MICROS);
    expect(GrantInput.parse({ kind: 'gift', amount: max }).amount).toBe(max);
    expect(PriceInput.parse({ unit: 'token', unit_price: max }).unit_price).toBe(max);
    for (const amount of ['1000000000', '999999999999999', '999999999.9999999', '-1']) {
      expect(GrantInput.safeParse({ kind: 'gift', amount }).success, amount).toBe(false);
      expect(PriceInput.safeParse({ unit: 'token', unit_price: amount }).success, amount).toBe(false);
    }
    expect(PriceInput.parse({ unit: 'token', unit_price: '1', per: PER_MAX }).per).toBe(PER_MAX);
    for (const per of [0, 1.5, PER_MAX + 1]) expect(PriceInput.safeParse({ unit: 'token', unit_price: '1', per }).success).toBe(false);
  });
});
