import { join } from 'node:path';
import { createClickHouse, type ClickHouseClient } from '@meterstream/platform/clickhouse';
import { startClickHouseServer } from '../../tests/support/clickhouse-server.js';
import type { FaultTargets } from './faults.js';
import type { Role } from './supervisor.js';
import { formatSeconds as seconds } from '@meterstream/platform/clock';

export type ClickHouseMode = 'server' | 'chdb';

export interface ChaosClickHouse {
  describe: string;
  /** what a service of this role needs to reach ClickHouse */
  env(role: Role): Record<string, string>;
  failInserts: FaultTargets['failClickHouseInserts'];
  secondSinkUnsupported?: string;
  /** a client for the checks; with embedded chDB only once the sink has stopped (one process per directory) */
  open(): Promise<ClickHouseClient>;
  stop(): Promise<void>;
}


/**
 * 'server': tests/support/clickhouse-http.ts owns the chDB directory and serves ClickHouse's HTTP
 * interface, so the sinks, ingest and the checks share one ClickHouse, and inserts can be made to
 * fail. 'chdb': the sink's embedded chDB; inserts cannot fail on command and a second sink cannot
 * share the directory, so those two faults are skipped (and say so).
 */
export async function chaosClickHouse(mode: ClickHouseMode, dir: string, env: Record<string, string>): Promise<ChaosClickHouse> {
  if (mode === 'server') {
    const server = await startClickHouseServer(join(dir, 'chdb-server'), env);
    return {
      describe: `chDB behind tests/support/clickhouse-http.ts at ${server.url}`,
      env: () => ({ CLICKHOUSE_URL: server.url }),
      async failInserts(failure, forMs, during) {
        const before = (await server.state()).counts;
        await server.setInserts(failure, { forMs });
        const rated = await during(forMs);
        const after = (await server.state()).counts;
        return `INSERTs ${failure === 'fail' ? 'refused' : 'run, then answered with an error'} for ${seconds(forMs)} `
          + `(${after.failed - before.failed} statements failed; ${rated})`;
      },
      open: () => createClickHouse({ url: server.url, chdbPath: join(dir, 'unused') }),
      stop: () => server.stop(),
    };
  }
  const sinkPath = join(dir, 'chdb-sink');
  return {
    describe: `embedded chDB in the sink process (${sinkPath})`,
    // ingest opens a chDB of its own: the sink's directory is taken while the sink runs.
    env: (role) => ({ CHDB_PATH: role === 'ingest' ? join(dir, 'chdb-ingest') : sinkPath }),
    failInserts: 'embedded chDB cannot be made to fail inserts on command (CHAOS_CLICKHOUSE=server can)',
    secondSinkUnsupported: 'two sinks cannot share one embedded chDB directory (CHAOS_CLICKHOUSE=server can)',
    open: () => createClickHouse({ chdbPath: sinkPath }),
    async stop() {},
  };
}
