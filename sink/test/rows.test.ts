import { describe, expect, it } from 'vitest';
import { decodeRatedEvent } from '../src/rows.js';
import { ratedEvent } from './support/rated-events.js';

const decode = (v: unknown) => decodeRatedEvent(Buffer.from(typeof v === 'string' ? v : JSON.stringify(v)));

describe('rated event -> rated_events row', () => {
  it('keeps money exact as Int64 micro-units and times as UTC milliseconds', () => {
    const e = ratedEvent(1, ['acct-1'], {
      quantity: '123456789.123456', unit_price: '0.000333', per: 1, amount: '41111.111111',
      grants: [{ grant_id: 'g1', kind: 'gift', amount: '0.000001' }, { grant_id: 'g2', kind: 'purchased', amount: '41000.1' }],
      postpaid: '111.011110', overdraft: '0', balance_after: '-12.500000',
      timestamp: '2024-02-01T01:30:00.123456+02:00', rated_at: '2024-02-01T00:00:00Z',
    });
    const d = decode(e);
    expect(d).toEqual({ ok: true, row: expect.objectContaining({
      quantity: '123456789123456', unit_price: '333', per: '1', amount: '41111111111',
      from_grants: '41000100001', postpaid: '111011110', overdraft: '0', balance_after: '-12500000',
      event_time: '2024-01-31 23:30:00.123', rated_at: '2024-02-01 00:00:00.000',
    }) });
  });

  it('rejects, with a reason, what rated_events could not hold exactly', () => {
    const huge = ratedEvent(2, ['acct-1'], { amount: '999999999999999.999999' });
    expect(decode(huge)).toMatchObject({ ok: false, code: 'OUT_OF_RANGE', reason: 'amount does not fit Int64 micro-units' });
    expect(decode('{"event_id":')).toMatchObject({ ok: false, code: 'INVALID_JSON' });
    expect(decodeRatedEvent(null)).toMatchObject({ ok: false, code: 'INVALID_JSON', reason: 'empty message' });
    const { amount: _, ...noAmount } = ratedEvent(3, ['acct-1']);
    expect(decode({ ...noAmount, quantity: 1.5 })).toMatchObject({ ok: false, code: 'INVALID_RATED_EVENT' });
    expect(decode(noAmount)).toMatchObject({ ok: false, reason: expect.stringContaining('amount') });
  });
});
