import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { migrateClickHouse } from '@meterstream/platform/migrate';
import { openClickHouse } from '../../tests/support/stack.js';
import { COLUMNS, rowKey, type RatedRow } from '../src/row-format.js';
import { toRow } from '../src/rows.js';
import { dedupToken, findExisting, insertRows, type OffsetRange } from '../src/store.js';
import { expectedTotals, ratedEvent, ratedEvents } from './support/rated-events.js';
import { countRated, rows, totalsIn } from './support/harness.js';

const accounts = ['acct-1', 'acct-2', 'acct-3'];
const range = (first: number, last: number): OffsetRange[] => [{ topic: 'usage.rated', partition: 0, first: String(first), last: String(last) }];
const keys = (batch: readonly RatedRow[]) => batch.map(rowKey);

describe('ClickHouse writes on chDB', () => {
  let ch: ClickHouseClient;
  let database: string;

  beforeAll(async () => {
    ({ ch, database } = await openClickHouse('sink_store'));
  });
  afterAll(async () => {
    await ch.close();
  });

  it('two consecutive different inserts both land, and no insert setting outlives its query', async () => {
    const a = ratedEvents(0, 300, accounts);
    const b = ratedEvents(300, 500, accounts);
    await insertRows(ch, database, a.map(toRow), dedupToken(range(0, 299), keys(a.map(toRow))));
    await insertRows(ch, database, b.map(toRow), dedupToken(range(300, 499), keys(b.map(toRow))));
    expect(await countRated(ch, database)).toBe(500);

    // Anyone else inserting through the same chDB session, with no settings of its own, is unaffected.
    const c = ratedEvent(500, accounts);
    await ch.insert({ table: `${database}.rated_events`, columns: [...COLUMNS], values: [JSON.parse(toRow(c).line)], format: 'JSONCompactEachRow' });
    expect(await countRated(ch, database)).toBe(501);
    const leftovers = await rows<{ name: string }>(ch, `SELECT name FROM system.settings WHERE changed AND name IN
      ('insert_deduplication_token', 'insert_deduplicate', 'async_insert')`);
    expect(leftovers).toEqual([]);
    expect(await totalsIn(ch, database, 'month')).toEqual(expectedTotals([...a, ...b, c], 'month'));
  });

  it('an insert retried with its token is dropped, and the views count its rows once', async () => {
    const db = `${database}_retry`;
    await migrateClickHouse(ch, db);
    const events = ratedEvents(1000, 1400, accounts);
    const batch = events.map(toRow);
    const token = dedupToken(range(1000, 1399), keys(batch));
    await insertRows(ch, db, batch, token);
    await insertRows(ch, db, batch, token); // as after a crash between the insert and the Kafka commit
    expect(await countRated(ch, db)).toBe(events.length);
    expect(await totalsIn(ch, db, 'day')).toEqual(expectedTotals(events, 'day'));
    expect(await totalsIn(ch, db, 'month')).toEqual(expectedTotals(events, 'month'));
    // The same offsets with fewer rows (some found already written) is another insert: it must land.
    const late = ratedEvent(1400, accounts);
    await insertRows(ch, db, [toRow(late)], dedupToken(range(1000, 1399), keys([toRow(late)])));
    expect(await countRated(ch, db)).toBe(events.length + 1);
  });

  it('finds exactly the stored keys among the ones asked for', async () => {
    const stored = ratedEvents(0, 3, accounts).map(toRow);
    const unknown = toRow(ratedEvent(77_777, accounts));
    const crossed = { ...stored[0]!, account_id: stored[1]!.account_id }; // a stored event id under another account
    const found = await findExisting(ch, database, [...stored, unknown, crossed]);
    expect([...found].sort()).toEqual(stored.map((r) => `${r.account_id}\u0000${r.event_id}`).sort());
  });

  it('stores Int64 extremes exactly and finds an event by its own time among far-off ones', async () => {
    const db = `${database}_exact`;
    await migrateClickHouse(ch, db);
    const e = ratedEvent(900, accounts, { amount: '9223372036854.775807', balance_after: '-9223372036854.775808', timestamp: '2024-03-31T23:59:59.999Z' });
    await insertRows(ch, db, [toRow(e)], dedupToken(range(0, 0), keys([toRow(e)])));
    expect(await rows(ch, `SELECT toString(amount) AS amount, toString(balance_after) AS balance_after, toString(event_time) AS t FROM ${db}.rated_events`))
      .toEqual([{ amount: '9223372036854775807', balance_after: '-9223372036854775808', t: '2024-03-31 23:59:59.999' }]);
    const around = [ratedEvent(901, accounts, { timestamp: '2001-01-01T00:00:00.000Z' }), ratedEvent(902, accounts, { timestamp: '2099-01-01T00:00:00.000Z' })];
    const found = await findExisting(ch, db, [...around, e].map(toRow));
    expect([...found]).toEqual(keys([toRow(e)]));
  });
});
