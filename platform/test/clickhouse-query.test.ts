import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { ClickHouseClient } from '../src/clickhouse.js';
import { ChDate, ChInt64, chQuery, ChQueryError, parameterNames } from '../src/clickhouse-query.js';

// The unit project has no ClickHouse: this client answers every query with the given rows (as
// @clickhouse/client's result set would hand them over) and records what it was asked.
function answering(rows: unknown[]) {
  const asked: { query: string; query_params: unknown; format: string }[] = [];
  const ch = {
    query: async (q: { query: string; query_params: unknown; format: string }) => {
      asked.push(q);
      return { json: async () => rows };
    },
  } as unknown as ClickHouseClient;
  return { ch, asked };
}

const usage = chQuery({
  name: 'usage',
  query: (db) => `SELECT toString(day) AS date, toString(sum(amount)) AS amount FROM ${db}.usage_daily
                   WHERE account_id = {account:String} AND day BETWEEN {from:Date} AND {to:Date} GROUP BY day`,
  params: z.object({ account: z.string().min(1), from: ChDate, to: ChDate }),
  schema: z.object({ date: ChDate, amount: ChInt64 }),
});
const params = { account: 'a1', from: '2025-03-01', to: '2025-03-30' };

describe('chQuery', () => {
  it('sends the validated parameters to the given database and returns rows with Int64 as bigint', async () => {
    const { ch, asked } = answering([{ date: '2025-03-02', amount: '9223372036854775807' }, { date: '2025-03-03', amount: '-5' }]);
    expect(await usage(ch, 'analytics', params)).toEqual([
      { date: '2025-03-02', amount: 9_223_372_036_854_775_807n },
      { date: '2025-03-03', amount: -5n },
    ]);
    expect(asked).toEqual([expect.objectContaining({ query_params: params, format: 'JSONEachRow' })]);
    expect(asked[0]!.query).toContain('FROM analytics.usage_daily');
  });

  it('refuses parameters of the wrong shape before sending anything', async () => {
    const { ch, asked } = answering([]);
    await expect(usage(ch, 'analytics', { ...params, from: '1 March' })).rejects.toThrow(new ChQueryError('ClickHouse query usage: parameter from: a date YYYY-MM-DD'));
    await expect(usage(ch, 'analytics', { ...params, account: '' })).rejects.toThrow(/^ClickHouse query usage: parameter account:/);
    await expect(usage(ch, 'x; DROP TABLE y', params)).rejects.toThrow(ChQueryError);
    expect(asked).toEqual([]);
  });

  it.each([
    ['an Int64 as a JSON number (digits lost past 2^53)', { date: '2025-03-02', amount: Number.MAX_SAFE_INTEGER + 2 }, 'row 1: amount:'],
    ['a decimal where an integer belongs', { date: '2025-03-02', amount: '1.5' }, 'row 1: amount:'],
    ['a missing column', { date: '2025-03-02' }, 'row 1: amount:'],
    ['a DateTime where a Date belongs', { date: '2025-03-02 00:00:00', amount: '1' }, 'row 1: date:'],
  ])('refuses a row with %s, naming the query, the row and the field', async (_, bad, message) => {
    const { ch } = answering([{ date: '2025-03-01', amount: '1' }, bad]);
    const error = await usage(ch, 'analytics', params).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ChQueryError);
    expect((error as Error).message).toContain(`ClickHouse query usage: ${message}`);
  });

  it('reads JSONCompactEachRow rows as tuples', async () => {
    const keys = chQuery({
      name: 'keys',
      query: (db) => `SELECT account_id, event_id FROM ${db}.rated_events WHERE event_id IN splitByChar('\\n', {events:String})`,
      params: z.object({ events: z.string() }),
      schema: z.tuple([z.string(), z.string()]),
      format: 'JSONCompactEachRow',
    });
    const { ch, asked } = answering([['a1', 'e1']]);
    expect(await keys(ch, 'db1', { events: 'e1\ne2' })).toEqual([['a1', 'e1']]);
    expect(asked[0]!.format).toBe('JSONCompactEachRow');
  });

  it('refuses a definition whose SQL and params name different parameters', () => {
    const define = (params: z.ZodObject) => () => chQuery({
      name: 'typo', query: (db) => `SELECT 1 FROM ${db}.t WHERE a = {account:String} AND d = {day:Date}`, params, schema: z.unknown(),
    });
    expect(define(z.object({ account: z.string(), day: ChDate }))).not.toThrow();
    expect(define(z.object({ acount: z.string(), day: ChDate }))).toThrow('the SQL uses parameters [account, day], params declares [acount, day]');
    expect(define(z.object({ account: z.string() }))).toThrow('params declares [account]');
  });

  it('finds the {name:Type} parameters of a SQL text, types with parentheses and quotes included', () => {
    expect(parameterNames(`WHERE t BETWEEN {from:DateTime64(3, 'UTC')} AND {to:DateTime64(3, 'UTC')} AND a IN {ids:Array(String)}`))
      .toEqual(new Set(['from', 'to', 'ids']));
  });
});
