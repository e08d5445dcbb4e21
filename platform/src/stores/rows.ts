import type { z } from 'zod';
import type { Pool, PoolClient } from '../postgres.js';

/** Where a store runs its statements: the pool, or a connection inside the caller's transaction. */
export type Db = Pool | PoolClient;

/** A row that does not have the shape its store expects: a migration and the code disagree. */
export class RowShapeError extends Error {
  override readonly name = 'RowShapeError';
}

/**
 * Parses each row with `row`. pg hands over whatever the columns hold (int8 as bigint, timestamptz
 * as Date, text as string); checking it here makes a drifted column fail at the store, naming the
 * table and the field, instead of as a wrong figure further on.
 */
export function parseRows<S extends z.ZodType>(table: string, row: S, rows: readonly unknown[]): z.output<S>[] {
  return rows.map((r, i) => {
    const parsed = row.safeParse(r);
    if (parsed.success) return parsed.data;
    const issue = parsed.error.issues[0]!;
    throw new RowShapeError(`${table} row ${i}: ${issue.path.join('.') || '(row)'}: ${issue.message}`);
  });
}

/** Runs one statement and parses its rows (see parseRows). */
export async function queryRows<S extends z.ZodType>(db: Db, table: string, row: S, sql: string, params: readonly unknown[] = []): Promise<z.output<S>[]> {
  const { rows } = await db.query(sql, params as unknown[]);
  return parseRows(table, row, rows);
}
