import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseJsonExact, quoteQuantities } from '../src/exact-json.js';

describe('parseJsonExact', () => {
  it('keeps an event quantity literal exactly as sent', () => {
    expect(parseJsonExact('{"id":"a","quantity": 0.10000000000000000055}')).toEqual({ id: 'a', quantity: '0.10000000000000000055' });
    expect(parseJsonExact('[{"quantity":12345678901234567890},{"quantity":-1.5e3 }]')).toEqual([
      { quantity: '12345678901234567890' },
      { quantity: '-1.5e3' },
    ]);
  });

  it('leaves strings, nested objects and other keys alone', () => {
    const text = '{"quantity":"2.5","properties":{"quantity":3},"note":"\\"quantity\\": 4","q":5}';
    expect(quoteQuantities(text)).toBe(text);
    expect(parseJsonExact(text)).toEqual({ quantity: '2.5', properties: { quantity: 3 }, note: '"quantity": 4', q: 5 });
  });

  it('knows the quantity key however it is escaped, and only at the event level', () => {
    expect(parseJsonExact('{"quan\\u0074ity": 0.1000000000000000055}')).toEqual({ quantity: '0.1000000000000000055' });
    expect(parseJsonExact('[{"\\u0071\\u0075antity":1e-7},{"q\\"":1,"quantity":1E400}]')).toEqual([
      { quantity: '1e-7' },
      { 'q"': 1, quantity: '1E400' },
    ]);
    // Escapes elsewhere do not shift what is judged: a key that merely ends like "quantity", nested keys, values.
    const text = '{"a\\\\":"\\"quantity\\"","xquan\\u0074ity":0.5,"p":{"quan\\u0074ity":2},"quantity":3}';
    expect(parseJsonExact(text)).toEqual({ 'a\\': '"quantity"', xquantity: 0.5, p: { quantity: 2 }, quantity: '3' });
  });

  it('hands every spelling of the key its number literal as text', () => {
    const spelling = fc.array(fc.boolean(), { minLength: 8, maxLength: 8 }).map((escape) =>
      [...'quantity'].map((c, k) => (escape[k] ? `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}` : c)).join(''));
    const literal = fc.tuple(fc.boolean(), fc.bigInt({ min: 0n, max: 10n ** 30n }), fc.option(fc.stringMatching(/^\d{1,25}$/)), fc.option(fc.integer({ min: -500, max: 500 })))
      .map(([neg, whole, frac, exp]) => `${neg ? '-' : ''}${whole}${frac === null ? '' : `.${frac}`}${exp === null ? '' : `e${exp}`}`);
    fc.assert(fc.property(spelling, literal, fc.constantFrom(' ', '', '\n'), (key, number, space) => {
      expect(parseJsonExact(`[{"id":"a\\\\",${space}"${key}"${space}:${space}${number}${space}}]`)).toEqual([{ id: 'a\\', quantity: number }]);
    }));
  });

  it('never turns invalid JSON into valid JSON', () => {
    for (const bad of ['{"quantity": 01}', '{"quantity": 1.}', '{"quantity": -}', '{"quantity": 1 2}', '{"quantity": 1', '{"quantity"',
      '{"quan\\u00zzity": 1}', '{"quan\\u0074ity" 1}', '{"quan\\u0074ity": 1.5.5}']) {
      expect(() => parseJsonExact(bad), bad).toThrow(SyntaxError);
    }
  });
});
