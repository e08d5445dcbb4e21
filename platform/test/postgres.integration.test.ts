import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPool, type Pool } from '@meterstream/platform/postgres';
import { waitFor } from '../../tests/support/processes.js';

const DATABASE_URL = process.env.DATABASE_URL!;

/** The backends of one application_name in this run's database (never anyone else's). */
async function backends(admin: Pool, applicationName: string): Promise<number[]> {
  const r = await admin.query<{ pid: number }>(
    'SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()',
    [applicationName],
  );
  return r.rows.map((x) => x.pid);
}

async function terminate(admin: Pool, applicationName: string): Promise<number> {
  const r = await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()', [applicationName]);
  return r.rowCount ?? 0;
}

describe('createPool', () => {
  let admin: Pool;
  beforeAll(() => {
    admin = createPool(DATABASE_URL, 2, { applicationName: 'pg-test-admin' });
  });
  afterAll(async () => {
    await admin.end();
  });

  it('applies the timeouts it is given and names its connections', async () => {
    const name = `pg-test-${randomBytes(4).toString('hex')}`;
    const pool = createPool(DATABASE_URL, 2, {
      applicationName: name,
      timeouts: { PG_STATEMENT_TIMEOUT_MS: 200, PG_IDLE_IN_TRANSACTION_TIMEOUT_MS: 5_000 },
    });
    try {
      const r = await pool.query<{ statement_timeout: string; idle: string; app: string }>(
        "SELECT current_setting('statement_timeout') AS statement_timeout, current_setting('idle_in_transaction_session_timeout') AS idle, current_setting('application_name') AS app",
      );
      expect(r.rows[0]).toEqual({ statement_timeout: '200ms', idle: '5s', app: name });
    } finally {
      await pool.end();
    }
  });

  it('fails a statement longer than statement_timeout with a typed error instead of hanging', async () => {
    const pool = createPool(DATABASE_URL, 1, { timeouts: { PG_STATEMENT_TIMEOUT_MS: 200 } });
    try {
      const err = await pool.query('SELECT pg_sleep(1)').then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(pg.DatabaseError);
      expect((err as pg.DatabaseError).code).toBe('57014'); // query_canceled
      // The connection stays usable.
      expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });

  it('gives up connecting to a server that never answers', async () => {
    const sockets: Socket[] = [];
    const silent: Server = createServer((s) => sockets.push(s));
    const port = await new Promise<number>((resolve) => silent.listen(0, '127.0.0.1', () => resolve((silent.address() as { port: number }).port)));
    const pool = createPool(`postgres://postgres@127.0.0.1:${port}/x`, 1, { timeouts: { PG_CONNECT_TIMEOUT_MS: 200 } });
    try {
      await expect(pool.query('SELECT 1')).rejects.toThrow(/timeout/i);
    } finally {
      await pool.end();
      for (const s of sockets) s.destroy();
      silent.close();
    }
  });

  it('survives the termination of an idle and of a checked-out connection, and keeps serving', async () => {
    const name = `pg-test-${randomBytes(4).toString('hex')}`;
    const pool = createPool(DATABASE_URL, 2, { applicationName: name });
    try {
      const held = await pool.connect();
      await pool.query('SELECT 1'); // a second connection, idle in the pool
      await waitFor('both connections visible', async () => (await backends(admin, name)).length === 2);
      expect(await terminate(admin, name)).toBe(2);
      // The held client learns of it on its next query: a rejected query, not a crashed process.
      await waitFor('the held connection to be gone', async () => (await backends(admin, name)).length === 0);
      await expect(held.query('SELECT 1')).rejects.toThrow();
      held.release();
      // The idle one is dropped when its 'error' arrives (asynchronously): then the pool serves
      // from a fresh connection.
      await waitFor('the pool to drop its terminated idle connection', async () => pool.idleCount === 0);
      expect((await pool.query<{ one: number }>('SELECT 1 AS one')).rows).toEqual([{ one: 1 }]);
    } finally {
      await pool.end();
    }
  });

  it('ends a transaction left idle longer than idle_in_transaction_session_timeout, releasing its locks', async () => {
    const name = `pg-test-${randomBytes(4).toString('hex')}`;
    const pool = createPool(DATABASE_URL, 2, { applicationName: name, timeouts: { PG_IDLE_IN_TRANSACTION_TIMEOUT_MS: 300 } });
    try {
      const c = await pool.connect();
      await c.query('BEGIN');
      await c.query('SELECT pg_advisory_xact_lock(727001)');
      await waitFor('the stalled transaction to be ended by the server', async () => (await backends(admin, name)).length === 0);
      await expect(c.query('COMMIT')).rejects.toThrow();
      c.release();
      // Its lock is free again: another session takes it at once.
      const other = await admin.connect();
      try {
        const got = await other.query<{ ok: boolean }>('SELECT pg_try_advisory_xact_lock(727001) AS ok');
        expect(got.rows).toEqual([{ ok: true }]);
      } finally {
        other.release();
      }
    } finally {
      await pool.end();
    }
  });
});
