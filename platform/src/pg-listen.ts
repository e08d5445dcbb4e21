import pg from 'pg';
import type { Logger } from 'pino';

export interface PgListenOptions {
  connectionString: string;
  channel: string;
  onNotification: (payload: string) => void;
  /**
   * Runs after every successful LISTEN, the first included. Notifications sent while the
   * connection was down are lost for good, so this is where a cache resynchronises.
   */
  onListening?: () => void;
  log: Logger;
  /** Reconnect backoff: doubles from initialDelayMs up to maxDelayMs. */
  initialDelayMs?: number;
  maxDelayMs?: number;
  connectTimeoutMs?: number;
  /** Shown in pg_stat_activity, so operators (and tests) can find the connection. */
  applicationName?: string;
}

export interface PgListener {
  /** The server process of the live LISTEN connection (pg_stat_activity.pid); undefined while it is down. */
  readonly backendPid: number | undefined;
  /** Settles after the first connection attempt, successful or not (start-up need not block on Postgres). */
  readonly firstAttempt: Promise<void>;
  close(): Promise<void>;
}

/**
 * A LISTEN on its own connection (never a pooled one: a pool would hand the session to others)
 * that survives the connection's loss: a terminated backend, a Postgres restart or failover
 * emits 'error' on the client, which is handled and followed by a reconnect with backoff.
 */
export function listen(opts: PgListenOptions): PgListener {
  const { channel, log, initialDelayMs = 100, maxDelayMs = 5000, connectTimeoutMs = 5000 } = opts;
  let client: pg.Client | undefined;
  let backendPid: number | undefined;
  let closed = false;
  let delayMs = initialDelayMs;
  let retryTimer: NodeJS.Timeout | undefined;

  const scheduleReconnect = (c: pg.Client, err: unknown) => {
    if (client !== c) return; // a stale client's late error or end
    client = undefined;
    backendPid = undefined;
    c.end().catch(() => undefined);
    if (closed) return;
    log.warn({ err: err instanceof Error ? err.message : err, channel, retryInMs: delayMs }, 'LISTEN connection lost; reconnecting');
    retryTimer = setTimeout(() => void connect(), delayMs);
    delayMs = Math.min(delayMs * 2, maxDelayMs);
  };

  const connect = async () => {
    const c = new pg.Client({ connectionString: opts.connectionString, connectionTimeoutMillis: connectTimeoutMs, application_name: opts.applicationName });
    client = c;
    c.on('error', (err) => scheduleReconnect(c, err));
    c.on('end', () => scheduleReconnect(c, new Error('connection ended')));
    c.on('notification', (n) => {
      if (n.channel === channel) opts.onNotification(n.payload ?? '');
    });
    let pid: number;
    try {
      await c.connect();
      await c.query(`LISTEN ${pg.escapeIdentifier(channel)}`);
      pid = (await c.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    } catch (err) {
      scheduleReconnect(c, err);
      return;
    }
    if (client !== c || closed) return;
    backendPid = pid;
    delayMs = initialDelayMs;
    log.info({ channel, pid }, 'listening for notifications');
    opts.onListening?.();
  };

  const firstAttempt = connect();
  return {
    get backendPid() {
      return backendPid;
    },
    firstAttempt,
    async close() {
      closed = true;
      clearTimeout(retryTimer);
      const c = client;
      client = undefined;
      backendPid = undefined;
      await c?.end().catch(() => undefined);
    },
  };
}
