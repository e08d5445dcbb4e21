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

  it('never turns invalid JSON into valid JSON', () => {
    for (const bad of ['{"quantity": 01}', '{"quantity": 1.}', '{"quantity": -}', '{"quantity": 1 2}', '{"quantity": 1', '{"quantity"']) {
      expect(() => parseJsonExact(bad), bad).toThrow(SyntaxError);
    }
  });
});
