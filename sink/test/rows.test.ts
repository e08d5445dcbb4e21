import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { RatedEvent } from '@meterstream/schemas';
import { canonicalRow } from '../src/canonical.js';
import type { RatedRow } from '../src/row-format.js';
import { decodeRatedEvent, toRow, type Decoded } from '../src/rows.js';
import { ratedEvent, ratedEvents } from './support/rated-events.js';

const decode = (v: unknown) => decodeRatedEvent(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)));

/** decodeRatedEvent as it was before the fast path: zod's verdict and toRow, for every message. */
function reference(text: string): Decoded {
  if (text === '') return { ok: false, code: 'INVALID_JSON', reason: 'empty message' };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, code: 'INVALID_JSON', reason: (e as Error).message };
  }
  const parsed = RatedEvent.safeParse(json);
  if (!parsed.success) {
    return { ok: false, code: 'INVALID_RATED_EVENT', reason: parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ') };
  }
  try {
    return { ok: true, row: toRow(parsed.data) };
  } catch (e) {
    if (e instanceof RangeError) return { ok: false, code: 'OUT_OF_RANGE', reason: e.message };
    throw e;
  }
}

describe('rated event -> rated_events row', () => {
  it('keeps money exact as Int64 micro-units and times as UTC milliseconds', () => {
    const e = ratedEvent(1, ['acct-1'], {
      quantity: '123456789.123456', unit_price: '0.000333', per: 1, amount: '41111.111111',
      grants: [{ grant_id: 'g1', kind: 'gift', amount: '0.000001' }, { grant_id: 'g2', kind: 'purchased', amount: '41000.1' }],
      postpaid: '111.011110', overdraft: '0', balance_after: '-12.500000',
      timestamp: '2024-02-01T01:30:00.123456+02:00', rated_at: '2024-02-01T00:00:00Z',
    });
    const d = decode(e);
    expect(d.ok).toBe(true);
    const row = (d as { row: RatedRow }).row;
    expect(row).toMatchObject({ account_id: 'acct-1', event_id: 'ev-1', event_time: '2024-01-31 23:30:00.123' });
    // In COLUMNS' order; Int64 columns as bare digits, which ClickHouse reads exactly.
    expect(row.line).toBe(`["acct-1","ev-1","voice","USD","second",123456789123456,333,1,41111111111,41000100001,111011110,0,-12500000,2,`
      + `${JSON.stringify(JSON.stringify(e.grants))},{},"2024-01-31 23:30:00.123","2024-02-01 00:00:00.000","ws_000000000000000000000001"]`);
  });

  it('rejects, with a reason, what rated_events could not hold exactly', () => {
    const huge = ratedEvent(2, ['acct-1'], { amount: '999999999999999.999999' });
    expect(decode(huge)).toMatchObject({ ok: false, code: 'OUT_OF_RANGE', reason: 'amount does not fit Int64 micro-units' });
    const manyGrants = ratedEvent(2, ['acct-1'], { grants: Array.from({ length: 10 }, (_, k) => ({ grant_id: `g${k}`, kind: 'gift', amount: '999999999999.999999' })) });
    expect(decode(manyGrants)).toMatchObject({ ok: false, code: 'OUT_OF_RANGE', reason: 'grants does not fit Int64 micro-units' });
    const ancient = ratedEvent(2, ['acct-1'], { timestamp: '1899-12-31T23:59:59.999Z' });
    expect(decode(ancient)).toMatchObject({ ok: false, code: 'OUT_OF_RANGE', reason: expect.stringContaining('timestamp') });
    expect(decode('{"event_id":')).toMatchObject({ ok: false, code: 'INVALID_JSON' });
    expect(decodeRatedEvent(null)).toMatchObject({ ok: false, code: 'INVALID_JSON', reason: 'empty message' });
    const { amount: _, ...noAmount } = ratedEvent(3, ['acct-1']);
    expect(decode({ ...noAmount, quantity: 1.5 })).toMatchObject({ ok: false, code: 'INVALID_RATED_EVENT' });
    expect(decode(noAmount)).toMatchObject({ ok: false, reason: expect.stringContaining('amount') });
  });

  it('takes the fast path for what the rater publishes', () => {
    for (const e of ratedEvents(0, 200, ['acct-1', 'acct-2'])) expect(canonicalRow(JSON.stringify(e))).toEqual(toRow(e));
    // An event that named its workspace and captured a hold (which rated_events does not keep).
    const held = ratedEvent(1, ['acct-1'], { hold_id: `hold_${'a'.repeat(24)}` });
    expect(held.workspace_id).toBeDefined();
    expect(canonicalRow(JSON.stringify(held))).toEqual(toRow(held));
  });

  it('decides every message exactly as zod and toRow do', () => {
    const base = ratedEvent(5, ['acct-1'], {
      grants: [{ grant_id: 'g-1', kind: 'gift', amount: '1.250000' }], properties: { region: 'eu' }, timestamp: '2024-02-29T10:00:00.000Z',
    });
    const money = fc.oneof(
      fc.stringMatching(/^\d{1,15}(\.\d{1,6})?$/),
      fc.constantFrom('0', '0.0', '000000000001.000000', '999999999999.999999', '9223372036854.775807', '9223372036854.775808',
        '9999999999999.999999', '1.', '.5', '-1.000000', '1.1234567', ' 1.0', '1e3', '１', '1/2.5', '1.2:', ''),
      fc.constantFrom<unknown>(1.5, 0, null, undefined),
    );
    const signed = fc.oneof(fc.stringMatching(/^-?\d{1,15}\.\d{6}$/), fc.constantFrom<unknown>(
      '-0.000000', '12.5', '-1.00000', '123456', '--1.000000', '-', '-9223372036854.775808', '-9223372036854.775809', '-9999999999999.999999'));
    const id = fc.oneof(fc.stringMatching(/^[A-Za-z0-9._:-]{1,130}$/), fc.constantFrom<unknown>('', 'a b', 'é', 'a"b', 7, 'x'.repeat(128), 'x'.repeat(129)));
    const count = fc.oneof(fc.integer({ min: -2, max: 2_000_000 }), fc.constantFrom<unknown>(1.5, 2 ** 53, 2 ** 53 - 1, '60', 1e21));
    const iso = fc.oneof(
      fc.date({ min: new Date('1850-01-01T00:00:00Z'), max: new Date('2350-01-01T00:00:00Z'), noInvalidDate: true }).map((d) => d.toISOString()),
      fc.constantFrom('2023-02-29T00:00:00.000Z', '1900-02-29T00:00:00.000Z', '2000-02-29T00:00:00.000Z', '2100-02-29T00:00:00.000Z',
        '2024-04-31T00:00:00.000Z', '2024-01-31T24:00:00.000Z', '2024-01-31T23:60:00.000Z', '2024-13-01T00:00:00.000Z',
        '2024-01-01T00:00:00Z', '2024-01-01T00:00:00.1234Z', '2024-01-01T01:00:00.000+01:00', '1900-01-01T00:30:00.000+01:00',
        '2024-01-01t00:00:00.000z', '0000-02-29T00:00:00.000Z', '2024-01-01 00:00:00.000Z', '2299-12-31T23:59:59.999Z', '2300-01-01T00:00:00.000Z'),
    );
    const grant = fc.record({ grant_id: fc.oneof(fc.string(), fc.constantFrom<unknown>('g"\\\u2028', 5)), kind: fc.constantFrom<unknown>('gift', 'allowance', 'bonus'), amount: money });
    const grants = fc.oneof(
      fc.array(grant, { maxLength: 3 }),
      fc.constantFrom<unknown>([{ kind: 'gift', amount: '1.0', grant_id: 'reordered', extra: true }], [null], [[]], 'none',
        [{ grant_id: 'a', kind: 'gift', amount: '999999999999.999999' }, ...Array.from({ length: 10 }, () => ({ grant_id: 'b', kind: 'gift', amount: '999999.999999' }))],
        Array.from({ length: 12 }, () => ({ grant_id: 'c', kind: 'gift', amount: '999999999999.999999' }))),
    );
    const properties = fc.oneof(
      fc.dictionary(fc.string(), fc.string(), { maxKeys: 3 }),
      fc.constantFrom<unknown>(undefined, null, [], { a: 1 }, { 2: 'x', b: 'y' }, { constructor: 'x' }, { constructor: {} }, JSON.parse('{"__proto__":"x","a":"b"}')),
    );
    const fields: Record<string, fc.Arbitrary<unknown>> = {
      event_id: id, account_id: id, product: id, quantity: money, unit: fc.constantFrom<unknown>('token', 'second', 'hour'),
      unit_price: money, per: count, currency: fc.constantFrom<unknown>('USD', 'EUR', 'usd'), amount: money, grants,
      postpaid: money, overdraft: money, balance_after: signed, ledger_seq: count, timestamp: iso, rated_at: iso, properties,
      extra: fc.constantFrom<unknown>(1, 'x'),
    };
    // One or two fields changed at a time, so that the others stay valid and each edge is decided on its own.
    const change = fc.oneof(...Object.entries(fields).map(([k, g]) => g.map((v) => [k, v] as const)));
    // The same text with its keys in another order, or spelled differently, or not quite JSON.
    const respell = fc.constantFrom<(text: string) => string>(
      (t) => t,
      (t) => JSON.stringify(Object.fromEntries(Object.entries(JSON.parse(t) as object).reverse())),
      (t) => t.replace(':', ': '),
      (t) => `${t} `,
      (t) => t.replace('"amount":', '"amount":"9.000000","amount":'),
      (t) => t.replace('"ledger_seq":', '"ledger_seq":0'),
      (t) => t.replace('"per":', '"per":-'),
      (t) => t.replace('acct-1', 'acct\\u002d1'),
      (t) => t.replace('"kind"', '"k\\u0069nd"'),
      (t) => t.replace('eu', 'e\\u0000'),
      (t) => t.replace('eu', 'e\tu'),
      (t) => t.replace('"properties":{', '"properties":{"a":"1","b":"2","a":"3",'),
      (t) => t.replace('"properties":{', '"properties":{"a":"1""b":"2",'),
      (t) => t.replace('"grants":[{', '"grants":[{"grant_id":"x","kind":"gift","amount":"1"}{'),
      (t) => t.replace('"properties":{', '"properties":{"12":"x",'),
      (t) => t.replace('"properties":{', '"properties":{"012":"x",'),
      (t) => t.replace('"grants":[', '"grants":[{"grant_id":"x","kind":"gift","amount":"1"},'),
      (t) => t.replace('"grant_id"', '"extra":1,"grant_id"'),
      (t) => t.replace('eu', 'e\\/u'),
      (t) => t.replace('"g-1"', '"g\\u002d1"'),
      (t) => t.replace('"grant_id"', '"grant_ix"'),
      (t) => `${t}x`,
      (t) => t.slice(0, -1),
      (t) => `${t.slice(0, -1)},}`,
    );
    const message = fc.oneof(
      fc.tuple(fc.array(change, { maxLength: 2 }), respell).map(([changes, spell]) => spell(JSON.stringify({ ...base, ...Object.fromEntries(changes) }))),
      fc.constantFrom('null', '[]', '"x"', '5', '{}', ''),
    );
    fc.assert(fc.property(message, (text) => {
      expect(decodeRatedEvent(Buffer.from(text))).toEqual(reference(text));
    }), { numRuns: 20_000 });
  });
});
