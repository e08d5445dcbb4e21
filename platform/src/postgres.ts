import pg from 'pg';
import { CLIENT_TIMEOUT_DEFAULTS, type ClientTimeouts } from './config.js';
import { createLogger, type Logger } from './logger.js';

// int8 columns are money and sequence numbers: always bigint, never a lossy JS number.
pg.types.setTypeParser(pg.types.builtins.INT8, (v) => BigInt(v));

export type Pool = pg.Pool;
export type PoolClient = pg.PoolClient;

export interface PoolOptions {
  /** Shown in pg_stat_activity, so operators (and tests) can find a service's connections. */
  applicationName?: string;
  log?: Logger;
  /** Any of BaseConfig's PG_* timeouts (a service passes its whole config); the rest default. */
  timeouts?: Partial<Pick<ClientTimeouts, 'PG_CONNECT_TIMEOUT_MS' | 'PG_STATEMENT_TIMEOUT_MS' | 'PG_IDLE_IN_TRANSACTION_TIMEOUT_MS'>>;
}

/**
 * A pool whose lost connections never crash the process: a terminated backend (a Postgres
 * restart, a failover, pg_terminate_backend) makes pg emit 'error' on the client, and an
 * EventEmitter without a listener throws it.
 */
export function createPool(databaseUrl: string, max = 10, opts: PoolOptions = {}): pg.Pool {
  const t = { ...CLIENT_TIMEOUT_DEFAULTS, ...opts.timeouts };
  const log = opts.log ?? createLogger(opts.applicationName ?? 'postgres');
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    max,
    application_name: opts.applicationName,
    connectionTimeoutMillis: t.PG_CONNECT_TIMEOUT_MS,
    statement_timeout: t.PG_STATEMENT_TIMEOUT_MS,
    // A transaction left open (its holder stalled on something else) releases its row locks.
    idle_in_transaction_session_timeout: t.PG_IDLE_IN_TRANSACTION_TIMEOUT_MS,
  });
  // Idle connections: the pool drops the broken one and reports it here.
  pool.on('error', (err) => log.warn({ err: err.message, application: opts.applicationName }, 'idle Postgres connection lost; the pool replaces it'));
  // Checked-out connections: their holder sees the error on its next query and releases the
  // client, which the pool then discards as no longer queryable.
  pool.on('connect', (client) => {
    client.on('error', (err) => log.debug({ err: err.message, application: opts.applicationName }, 'Postgres connection lost'));
  });
  return pool;
}

/** Runs fn in one transaction; rolls back on any throw. */
export async function inTransaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (e) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    client.release();
  }
}
