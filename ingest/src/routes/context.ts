import type { ClickHouseClient } from '@meterstream/schemas/clickhouse';
import type { BalanceCache } from '@meterstream/schemas/ledger/balance-cache';
import type { Pool } from '@meterstream/schemas/postgres';
import type { ApiKeys } from '../auth.js';
import type { IngestConfig } from '../config.js';
import type { UsageEventProducer } from '../producer-client.js';

/** What every route plugin gets as its options. */
export interface RouteContext {
  config: IngestConfig;
  pool: Pool;
  cache: BalanceCache;
  producer: UsageEventProducer;
  ch: ClickHouseClient;
  chDatabase: string;
  keys: ApiKeys;
}
