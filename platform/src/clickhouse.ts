import { mkdirSync } from 'node:fs';
import { createClient, type ClickHouseClient } from '@clickhouse/client';

export type { ClickHouseClient };

/**
 * One @clickhouse/client API for both modes: a server over HTTP when CLICKHOUSE_URL is set,
 * otherwise chDB (a real ClickHouse engine) in this process. chDB allows one data directory per
 * process, so the embedded mode belongs to the one process that hosts the sink and the readers.
 * Never pass per-query clickhouse_settings: on chDB's shared session they leak into later queries.
 */
export async function createClickHouse(opts: { url?: string | undefined; chdbPath: string }): Promise<ClickHouseClient> {
  if (opts.url) return createClient({ url: opts.url, request_timeout: 60_000 });
  mkdirSync(opts.chdbPath, { recursive: true });
  const { createChdbConnection } = await import('chdb/connection');
  return createClient({ connection: createChdbConnection({ path: opts.chdbPath }) } as Parameters<typeof createClient>[0]);
}
