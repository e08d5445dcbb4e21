import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import type { BalanceCache } from '@meterstream/ledger/balance-cache';
import type { WriteOrder } from '@meterstream/ledger/write-order';
import type { Pool } from '@meterstream/platform/postgres';
import type { ApiKeys } from '../auth.js';
import type { IngestConfig } from '../config.js';
import type { UsageEventProducer } from '../producer-client.js';

/** What every route plugin gets as its options. */
export interface RouteContext {
  config: IngestConfig;
  pool: Pool;
  cache: BalanceCache;
  producer: UsageEventProducer;
  /** null: no ClickHouse holding the sink's data is reachable from this process. */
  ch: ClickHouseClient | null;
  chDatabase: string;
  keys: ApiKeys;
  /** Where the ledger commands (add a grant) run: commit, publish, cache, in that order. */
  ledger: WriteOrder;
}
