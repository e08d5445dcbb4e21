import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { migrateClickHouse } from '@meterstream/platform/migrate';
import { openClickHouse } from '../../tests/support/stack.js';
import { rowKey } from '../src/row-format.js';
import { toRow } from '../src/rows.js';
import { dedupToken, insertRows } from '../src/store.js';
import { expectedTotals, ratedEvents } from './support/rated-events.js';
import { rows, totalsIn } from './support/harness.js';

const accounts = ['acct-1', 'acct-2', 'acct-3'];
const MIGRATIONS = ['001_rated_events.sql', '002_usage_views_from_final.sql', '003_ledger_entries.sql', '004_workspace.sql'];

/** What every database held before migrations were versioned: 001 also made summing tables fed by materialized views. */
function legacySchema(db: string): string[] {
  const rollup = (name: string, period: string, expr: string) => [
    `CREATE TABLE ${db}.${name} (${period} Date, account_id String, product LowCardinality(String), currency LowCardinality(String),
       events UInt64, quantity Int64, amount Int64, from_grants Int64, postpaid Int64, overdraft Int64)
     ENGINE = SummingMergeTree ORDER BY (account_id, ${period}, product, currency) SETTINGS non_replicated_deduplication_window = 100000`,
    `CREATE MATERIALIZED VIEW ${db}.${name}_mv TO ${db}.${name} AS
     SELECT ${expr} AS ${period}, account_id, product, currency, count() AS events, sum(quantity) AS quantity, sum(amount) AS amount,
            sum(from_grants) AS from_grants, sum(postpaid) AS postpaid, sum(overdraft) AS overdraft
     FROM ${db}.rated_events GROUP BY ${period}, account_id, product, currency`,
  ];
  const ratedEventsDdl = readFileSync(new URL('../../platform/migrations/clickhouse/001_rated_events.sql', import.meta.url), 'utf8');
  // The rows below are written by today's sink, which writes the workspace column (004 adds it if missing).
  const workspaceColumn = `ALTER TABLE ${db}.rated_events ADD COLUMN workspace_id String DEFAULT ''`;
  return [`CREATE DATABASE ${db}`, ratedEventsDdl.replaceAll('{db}', db), workspaceColumn, ...rollup('usage_daily', 'day', 'toDate(event_time)'),
    ...rollup('usage_monthly', 'month', 'toStartOfMonth(event_time)')];
}

/** Two sinks' inserts after a rebalance: different batches, both holding events 100-199. */
async function writeTwice(ch: ClickHouseClient, db: string, events: ReturnType<typeof ratedEvents>): Promise<void> {
  for (const [first, last] of [[0, 199], [100, 299]] as const) {
    const batch = events.slice(first, last + 1).map(toRow);
    await insertRows(ch, db, batch, dedupToken([{ topic: 'usage.rated', partition: 0, first: String(first), last: String(last) }], batch.map(rowKey)));
  }
}

const objects = (ch: ClickHouseClient, db: string) =>
  rows<{ name: string; engine: string }>(ch, `SELECT name, engine FROM system.tables WHERE database = '${db}' ORDER BY name`);

describe('versioned ClickHouse migrations', () => {
  let ch: ClickHouseClient;
  let database: string;

  beforeAll(async () => {
    ({ ch, database } = await openClickHouse('ch_migrations'));
  });
  afterAll(async () => {
    await ch.close();
  });

  it('upgrades a database made before versioning: the doubled summing views become exact views', async () => {
    const db = `${database}_legacy`;
    for (const stmt of legacySchema(db)) await ch.command({ query: stmt });
    const events = ratedEvents(0, 300, accounts);
    await writeTwice(ch, db, events);
    // The defect: the summing views kept the second copy of events 100-199.
    expect(await totalsIn(ch, db, 'month')).not.toEqual(expectedTotals(events, 'month'));

    expect(await migrateClickHouse(ch, db)).toEqual(MIGRATIONS);
    expect(await objects(ch, db)).toEqual([
      { name: 'ledger_entries', engine: 'ReplacingMergeTree' },
      { name: 'rated_events', engine: 'ReplacingMergeTree' },
      { name: 'schema_migrations', engine: 'ReplacingMergeTree' },
      { name: 'usage_daily', engine: 'View' },
      { name: 'usage_daily_by_workspace', engine: 'View' },
      { name: 'usage_monthly', engine: 'View' },
    ]);
    expect(await totalsIn(ch, db, 'day')).toEqual(expectedTotals(events, 'day'));
    expect(await totalsIn(ch, db, 'month')).toEqual(expectedTotals(events, 'month'));
    expect(await migrateClickHouse(ch, db)).toEqual([]);
  });

  it('two migrators starting together, or one that missed the other\'s record, leave the same schema', async () => {
    const db = `${database}_fresh`;
    const both = await Promise.all([migrateClickHouse(ch, db), migrateClickHouse(ch, db)]);
    expect(both.flat().sort()).toEqual(expect.arrayContaining(MIGRATIONS));
    const schema = await objects(ch, db);
    expect(schema.map((o) => o.name)).toEqual(['ledger_entries', 'rated_events', 'schema_migrations', 'usage_daily', 'usage_daily_by_workspace', 'usage_monthly']);

    // A migrator that read the version table before the other wrote it re-runs every file over the new schema.
    await ch.command({ query: `TRUNCATE TABLE ${db}.schema_migrations` });
    expect(await migrateClickHouse(ch, db)).toEqual(MIGRATIONS);
    expect(await objects(ch, db)).toEqual(schema);
    const events = ratedEvents(1000, 1300, accounts);
    await writeTwice(ch, db, events);
    expect(await totalsIn(ch, db, 'day')).toEqual(expectedTotals(events, 'day'));
    expect(await migrateClickHouse(ch, db)).toEqual([]);
  });
});
