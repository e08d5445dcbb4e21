import { z } from 'zod';
import { BaseConfig } from '@meterstream/schemas/config';

export const SinkConfig = BaseConfig.extend({
  SINK_GROUP_ID: z.string().min(1).default('meterstream-sink'),
  // Partition batches fetched together are merged into one ClickHouse insert of up to this many rows.
  SINK_MAX_INSERT_ROWS: z.coerce.number().int().min(1).max(1_000_000).default(50_000),
  // The broker holds a fetch until this much data is ready or the wait is over: that trades up to
  // SINK_FETCH_MAX_WAIT_MS of latency for fewer, larger inserts. Each insert costs ClickHouse tens
  // of milliseconds of CPU before its first row (a part for rated_events and for each view, their
  // deduplication logs, the duplicate check's query) and makes parts to merge later, so a busy
  // sink must not write the few thousand rows that arrived during its previous insert.
  SINK_FETCH_MIN_BYTES: z.coerce.number().int().min(1).default(8 * 1024 * 1024),
  SINK_FETCH_MAX_WAIT_MS: z.coerce.number().int().min(10).max(30_000).default(1_000),
  // At least SINK_FETCH_MIN_BYTES: a partition catching up alone must be able to fill a fetch.
  SINK_MAX_BYTES_PER_PARTITION: z.coerce.number().int().min(1024).default(8 * 1024 * 1024),
  SINK_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6_000).default(30_000),
  // Backoff while ClickHouse (or the dead-letter topic) fails: doubles from initial up to max.
  SINK_RETRY_INITIAL_MS: z.coerce.number().int().min(1).default(500),
  SINK_RETRY_MAX_MS: z.coerce.number().int().min(1).default(30_000),
});
export type SinkConfig = z.infer<typeof SinkConfig>;
