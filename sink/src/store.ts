import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ClickHouseClient } from '@meterstream/schemas/clickhouse';
import { rowKey, type RatedRow } from './rows.js';

export interface OffsetRange {
  topic: string;
  partition: number;
  first: string;
  last: string;
}

/**
 * Keys of the given rows that rated_events holds already (the rater republishes an event after a
 * crash, at a new offset). One query per batch; the IN lists over both key columns use the
 * primary key and may match extra pairs, which the caller's per-row lookup simply ignores.
 */
export async function findExisting(ch: ClickHouseClient, database: string, rows: readonly RatedRow[]): Promise<Set<string>> {
  if (rows.length === 0) return new Set();
  const rs = await ch.query({
    query: `SELECT DISTINCT account_id, event_id FROM ${database}.rated_events
            WHERE account_id IN {accounts:Array(String)} AND event_id IN {events:Array(String)}`,
    query_params: { accounts: unique(rows.map((r) => r.account_id)), events: unique(rows.map((r) => r.event_id)) },
    format: 'JSONCompactEachRow',
    // Over HTTP thousands of ids would not fit a URL; chDB ignores this.
    use_multipart_params_auto: true,
  });
  const found = await rs.json<[string, string]>();
  return new Set(found.map(([account_id, event_id]) => rowKey({ account_id, event_id })));
}

/**
 * The same batch retried gets the same token; any other insert gets another one. Offsets alone
 * would not do: a retry that found some rows already present inserts a smaller set, and reusing
 * the token of a block ClickHouse remembers would silently drop it.
 */
export function dedupToken(ranges: readonly OffsetRange[], rows: readonly RatedRow[]): string {
  const hash = createHash('sha256');
  for (const r of rows) hash.update(rowKey(r)).update('\n');
  const where = ranges.map((r) => `${r.topic}/${r.partition}/${r.first}-${r.last}`).join(',');
  return `${where}#${hash.digest('hex').slice(0, 32)}`;
}

/**
 * One INSERT for the whole batch. The settings live in the SQL text on purpose: chDB turns
 * per-query clickhouse_settings into SET statements on its one shared session, so a token would
 * outlive this insert and make ClickHouse drop the next, different insert as a "duplicate".
 * The token also deduplicates the materialized views' blocks (their targets keep a
 * non_replicated_deduplication_window too); async_insert is pinned off because asynchronous
 * inserts deduplicate differently.
 */
export async function insertRows(ch: ClickHouseClient, database: string, rows: readonly RatedRow[], token: string): Promise<void> {
  const query = `INSERT INTO ${database}.rated_events SETTINGS async_insert = 0, insert_deduplicate = 1, `
    + `insert_deduplication_token = ${sqlString(token)}, deduplicate_blocks_in_dependent_materialized_views = 1 `
    + 'FORMAT JSONEachRow';
  const body = rows.map((r) => JSON.stringify(r)).join('\n');
  const { stream } = await ch.exec({ query, values: Readable.from([body]) });
  stream.destroy();
}

function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

function unique(values: string[]): string[] {
  return [...new Set(values)];
}
