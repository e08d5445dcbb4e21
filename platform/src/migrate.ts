import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import type { Logger } from 'pino';
import type { ClickHouseClient } from './clickhouse.js';

const dir = (sub: string) => fileURLToPath(new URL(`../migrations/${sub}/`, import.meta.url));
const sqlFiles = (sub: string) =>
  readdirSync(dir(sub))
    .filter((f) => f.endsWith('.sql'))
    .sort()
    .map((f) => ({ name: f, sql: readFileSync(dir(sub) + f, 'utf8') }));

/** Creates the database named in the URL when it does not exist yet. */
export async function ensureDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = '/postgres';
  const admin = new pg.Client({ connectionString: url.toString() });
  await admin.connect();
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (!rowCount) await admin.query(`CREATE DATABASE "${name.replace(/"/g, '""')}"`).catch((e: { code?: string }) => {
      if (e.code !== '42P04') throw e; // created meanwhile by a concurrent migrate
    });
  } finally {
    await admin.end();
  }
}

/** Applies numbered Postgres migrations once each, under an advisory lock so concurrent starts agree. */
export async function migratePostgres(databaseUrl: string, log?: Logger): Promise<string[]> {
  await ensureDatabase(databaseUrl);
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  const applied: string[] = [];
  try {
    await client.query('SELECT pg_advisory_lock(727274)');
    await client.query('CREATE TABLE IF NOT EXISTS schema_migrations (name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())');
    const done = new Set((await client.query<{ name: string }>('SELECT name FROM schema_migrations')).rows.map((r) => r.name));
    for (const m of sqlFiles('postgres')) {
      if (done.has(m.name)) continue;
      await client.query('BEGIN');
      await client.query(m.sql);
      await client.query('INSERT INTO schema_migrations (name) VALUES ($1)', [m.name]);
      await client.query('COMMIT');
      applied.push(m.name);
      log?.info({ migration: m.name }, 'postgres migration applied');
    }
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    await client.query('SELECT pg_advisory_unlock(727274)').catch(() => undefined);
    await client.end();
  }
  return applied;
}

/**
 * Applies numbered ClickHouse migrations once each, recorded per database in
 * {db}.schema_migrations, so that a later file can change or drop what an earlier one made.
 * Statements are separated by lines holding only ";" and use {db} for the database name.
 * ClickHouse has no transactions and no locks for DDL: two processes starting together (two
 * sinks) may both apply a file, or one may re-run 001 while the other is in 002. So every
 * statement must be idempotent, and no file may re-create what a later file removes.
 */
export async function migrateClickHouse(ch: ClickHouseClient, database: string, log?: Logger): Promise<string[]> {
  await ch.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
  await ch.command({
    query: `CREATE TABLE IF NOT EXISTS ${database}.schema_migrations (name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
            ENGINE = ReplacingMergeTree ORDER BY name`,
  });
  const rs = await ch.query({ query: `SELECT DISTINCT name FROM ${database}.schema_migrations`, format: 'JSONEachRow' });
  const done = new Set((await rs.json<{ name: string }>()).map((r) => r.name));
  const applied: string[] = [];
  for (const m of sqlFiles('clickhouse')) {
    if (done.has(m.name)) continue;
    for (const stmt of m.sql.split(/^;\s*$/m).map((s) => s.trim()).filter(Boolean)) {
      await ch.command({ query: stmt.replaceAll('{db}', database) });
    }
    await ch.insert({ table: `${database}.schema_migrations`, values: [{ name: m.name }], format: 'JSONEachRow' });
    applied.push(m.name);
    log?.info({ migration: m.name, database }, 'clickhouse migration applied');
  }
  return applied;
}
