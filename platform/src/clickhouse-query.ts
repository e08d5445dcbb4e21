import { z } from 'zod';
import type { ClickHouseClient } from './clickhouse.js';

/**
 * Int64/UInt64 as ClickHouse writes them in JSON (quoted, so no digit is lost), parsed to bigint.
 * Also what a money sum turned into text with toString() reads as.
 */
export const ChInt64 = z.string().regex(/^-?\d{1,20}$/, 'an integer in decimal text').transform((s) => BigInt(s));

/** A Date column as text (toString(day)): YYYY-MM-DD. */
export const ChDate = z.string().regex(/^\d{4}-\d{2}-\d{2}$/, 'a date YYYY-MM-DD');

/** A query's parameters or rows not of the declared shape: a bug in the caller or a drifted table. */
export class ChQueryError extends Error {
  override readonly name = 'ChQueryError';
}

export interface ChQueryDefinition<P extends z.ZodObject, R extends z.ZodType> {
  /** What the query is, for error messages. */
  name: string;
  /** The SQL, given the database that holds the tables. Values only as {name:Type} parameters. */
  query: (database: string) => string;
  /** One key per {name:Type} parameter of the SQL, no more, no fewer (checked when defined). */
  params: P;
  /** One row of the result. */
  schema: R;
  /** JSONCompactEachRow (rows as arrays) is cheaper to read than JSONEachRow for wide or many rows. */
  format?: 'JSONEachRow' | 'JSONCompactEachRow';
}

export type ChQuery<P extends z.ZodObject, R extends z.ZodType> =
  (ch: ClickHouseClient, database: string, params: z.input<P>) => Promise<z.output<R>[]>;

const DATABASE = /^\w+$/;
const PARAMETER = /\{(\w+):[^{}]+\}/g;

/** The names of the {name:Type} parameters in a SQL text. */
export function parameterNames(sql: string): Set<string> {
  return new Set([...sql.matchAll(PARAMETER)].map((m) => m[1]!));
}

function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.join('.') || '(value)'}: ${issue.message}`;
}

/**
 * A typed ClickHouse read: its parameters are checked against `params` before the query is sent
 * and every row against `schema` when it comes back, so a caller sees domain values (bigint, not
 * text) and a table that drifted from the code fails here, named. The SQL's parameters must be
 * exactly the keys of `params`: a typo in either fails when the module loads, not in production.
 */
export function chQuery<P extends z.ZodObject, R extends z.ZodType>(def: ChQueryDefinition<P, R>): ChQuery<P, R> {
  const declared = Object.keys(def.params.shape).sort();
  const used = [...parameterNames(def.query('db'))].sort();
  if (declared.join() !== used.join()) {
    throw new Error(`ClickHouse query ${def.name}: the SQL uses parameters [${used.join(', ')}], params declares [${declared.join(', ')}]`);
  }
  const format = def.format ?? 'JSONEachRow';
  return async (ch, database, params) => {
    if (!DATABASE.test(database)) throw new ChQueryError(`ClickHouse query ${def.name}: ${JSON.stringify(database)} is not a database name`);
    const checked = def.params.safeParse(params);
    if (!checked.success) throw new ChQueryError(`ClickHouse query ${def.name}: parameter ${firstIssue(checked.error)}`);
    const rs = await ch.query({
      query: def.query(database),
      query_params: checked.data as Record<string, unknown>,
      format,
      // Over HTTP, long parameters (thousands of ids) would not fit a URL; chDB ignores this.
      use_multipart_params_auto: true,
    });
    const rows = await rs.json<unknown>();
    return rows.map((r, i) => {
      const parsed = def.schema.safeParse(r);
      if (!parsed.success) throw new ChQueryError(`ClickHouse query ${def.name}: row ${i}: ${firstIssue(parsed.error)}`);
      return parsed.data;
    });
  };
}
