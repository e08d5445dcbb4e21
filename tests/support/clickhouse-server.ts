import { startService, waitFor, type ServiceProcess } from './processes.js';

export type InsertFaultMode = 'pass' | 'fail' | 'fail-after' | 'hold';

export interface ClickHouseServerState {
  inserts: { mode: InsertFaultMode; table: string | null; until: number | null };
  counts: { statements: number; inserts: number; failed: number; held: number };
}

export interface ClickHouseServer {
  /** What CLICKHOUSE_URL is set to for the services. */
  url: string;
  process: ServiceProcess;
  /** Fault injection on INSERTs; see the top of clickhouse-http.ts for the modes. */
  setInserts(mode: InsertFaultMode, opts?: { table?: string; forMs?: number }): Promise<ClickHouseServerState>;
  state(): Promise<ClickHouseServerState>;
  stop(): Promise<void>;
}

/**
 * Starts tests/support/clickhouse-http.ts as a child process owning the chDB directory chdbPath,
 * so that any number of processes can share one ClickHouse through CLICKHOUSE_URL.
 */
export async function startClickHouseServer(chdbPath: string, env: Record<string, string> = process.env as Record<string, string>): Promise<ClickHouseServer> {
  const child = startService('tests/support/clickhouse-http.ts', { ...env, CHDB_PATH: chdbPath, CLICKHOUSE_HTTP_PORT: '0' });
  const url = await waitFor('the ClickHouse test server to listen', async () => {
    if (child.child.exitCode !== null) throw new Error(`the ClickHouse test server exited: ${child.output()}`);
    return /\{"listening":"(http:[^"]+)"\}/.exec(child.output())?.[1];
  }, 30_000);
  const control = async (path: string, body?: unknown): Promise<ClickHouseServerState> => {
    const res = await fetch(`${url}${path}`, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body) });
    if (!res.ok) throw new Error(`${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as ClickHouseServerState;
  };
  return {
    url,
    process: child,
    setInserts: (mode, opts = {}) => control('/control/inserts', { mode, ...opts }),
    state: () => control('/control'),
    async stop() {
      await child.kill('SIGTERM');
    },
  };
}
