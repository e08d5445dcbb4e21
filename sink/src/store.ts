import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { chQuery } from '@meterstream/platform/clickhouse-query';
import { COLUMNS, rowKey, type RatedRow } from './row-format.js';

export interface OffsetRange {
  topic: string;
  partition: number;
  first: string;
  last: string;
}

/** Rows of one write, each (account_id, event_id) once; keys[i] is rowKey(rows[i]). */
export interface UniqueRows {
  rows: RatedRow[];
  keys: string[];
}

/**
 * Inserts the rows that rated_events does not hold yet (the rater republishes an event after a
 * crash, at a new offset), under a deduplication token. Returns how many it inserted. This only
 * saves work: two sinks may both find an event missing and both insert it (a rebalance), and the
 * figures stay exact because every reader sees rated_events through FINAL (see the migrations).
 */
export async function writeFresh(ch: ClickHouseClient, database: string, batch: UniqueRows, ranges: readonly OffsetRange[]): Promise<number> {
  const existing = await findExisting(ch, database, batch.rows);
  const fresh: UniqueRows = existing.size === 0 ? batch : { rows: [], keys: [] };
  if (fresh !== batch) {
    batch.keys.forEach((key, i) => {
      if (existing.has(key)) return;
      fresh.rows.push(batch.rows[i]!);
      fresh.keys.push(key);
    });
  }
  if (fresh.rows.length > 0) await insertRows(ch, database, fresh.rows, dedupToken(ranges, fresh.keys));
  return fresh.rows.length;
}

// Checked once per batch, not per row: a few string checks, and rows only for events found again.
const storedKeys = chQuery({
  name: 'storedKeys',
  query: (db) => `SELECT account_id, event_id FROM ${db}.rated_events
                   WHERE event_time BETWEEN {from:DateTime64(3, 'UTC')} AND {to:DateTime64(3, 'UTC')}
                     AND account_id IN splitByChar('\\n', {accounts:String}) AND event_id IN splitByChar('\\n', {events:String})`,
  params: z.object({ from: z.string(), to: z.string(), accounts: z.string(), events: z.string() }),
  schema: z.tuple([z.string(), z.string()]),
  format: 'JSONCompactEachRow',
});

/**
 * Keys of the given rows that rated_events holds already. One query per batch; the IN lists over
 * both key columns use the primary key and may match extra pairs, which the caller's per-row
 * lookup simply ignores. A republished event is the same ledger row, so it carries the same
 * event_time as the stored one: bounding event_time by the batch's own lets ClickHouse skip every
 * part whose time range (the partition key's min-max index) lies outside it, instead of probing
 * each part of an ever-growing table with thousands of keys. The ids travel as one text each,
 * split in SQL (ids hold no newline): ClickHouse reads that several times faster than an
 * Array(String) parameter of thousands of elements.
 */
export async function findExisting(ch: ClickHouseClient, database: string, rows: readonly RatedRow[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const accounts = new Set<string>();
  // Fixed-width 'YYYY-MM-DD hh:mm:ss.sss' (rows.ts keeps years to 1900-2299): text order is time order.
  let from = rows[0]!.event_time;
  let to = from;
  for (const r of rows) {
    accounts.add(r.account_id);
    if (r.event_time < from) from = r.event_time;
    if (r.event_time > to) to = r.event_time;
  }
  const found = await storedKeys(ch, database, { from, to, accounts: [...accounts].join('\n'), events: rows.map((r) => r.event_id).join('\n') });
  return new Set(found.map(([account_id, event_id]) => rowKey({ account_id, event_id })));
}

/**
 * The same batch retried gets the same token; any other insert gets another one. Offsets alone
 * would not do: a retry that found some rows already present inserts a smaller set, and reusing
 * the token of a block ClickHouse remembers would silently drop it.
 */
export function dedupToken(ranges: readonly OffsetRange[], keys: readonly string[]): string {
  const hash = createHash('sha256').update(keys.join('\n')).update('\n');
  const where = ranges.map((r) => `${r.topic}/${r.partition}/${r.first}-${r.last}`).join(',');
  return `${where}#${hash.digest('hex').slice(0, 32)}`;
}

/**
 * One INSERT for the whole batch. The settings live in the SQL text on purpose: chDB turns
 * per-query clickhouse_settings into SET statements on its one shared session, so a token would
 * outlive this insert and make ClickHouse drop the next, different insert as a "duplicate".
 * async_insert is pinned off because asynchronous inserts deduplicate differently.
 * JSONCompactEachRow: the rows come encoded (see RatedRow), and ClickHouse parses it faster than
 * JSONEachRow, which names every column on every row.
 */
export async function insertRows(ch: ClickHouseClient, database: string, rows: readonly RatedRow[], token: string): Promise<void> {
  const query = `INSERT INTO ${database}.rated_events (${COLUMNS.join(', ')}) SETTINGS async_insert = 0, insert_deduplicate = 1, `
    + `insert_deduplication_token = ${sqlString(token)} FORMAT JSONCompactEachRow`;
  const { stream } = await ch.exec({ query, values: Readable.from([rows.map((r) => r.line).join('\n')]) });
  stream.destroy();
}

export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
