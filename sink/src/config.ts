import { z } from 'zod';
import { BaseConfig } from '@meterstream/platform/config';

export const SinkConfig = BaseConfig.extend({
  SINK_GROUP_ID: z.string().min(1).default('meterstream-sink').describe('Kafka consumer group of the sinks on usage.rated; every sink of a deployment joins it. Their consumer of ledger.entries uses `<SINK_GROUP_ID>.entries`.'),
  SINK_MAX_INSERT_ROWS: z.coerce.number().int().min(1).max(1_000_000).default(50_000).describe(
    'Partition batches fetched together are merged into one ClickHouse insert of at most this many rows.',
  ),
  // Each insert costs ClickHouse tens of milliseconds of CPU before its first row (a part for
  // rated_events, its deduplication log, the duplicate check's query) and makes parts to merge
  // later, so a busy sink must not write the few thousand rows that arrived during its previous insert.
  SINK_FETCH_MIN_BYTES: z.coerce.number().int().min(1).default(8 * 1024 * 1024).describe(
    'The broker holds a fetch until this many bytes are ready or SINK_FETCH_MAX_WAIT_MS is over: up to that much latency for fewer, larger inserts.',
  ),
  SINK_FETCH_MAX_WAIT_MS: z.coerce.number().int().min(10).max(30_000).default(1_000).describe(
    'Longest the broker holds a fetch waiting for SINK_FETCH_MIN_BYTES.',
  ),
  SINK_MAX_BYTES_PER_PARTITION: z.coerce.number().int().min(1024).default(8 * 1024 * 1024).describe(
    'Most bytes fetched from one partition at a time; at least SINK_FETCH_MIN_BYTES, so that a partition catching up alone can fill a fetch.',
  ),
  SINK_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6_000).default(30_000).describe(
    'How long the group waits for a silent (crashed) sink before handing its partitions over.',
  ),
  SINK_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000).describe(
    'Longest a SIGTERM waits for the current insert and for leaving the group (Kafka may be unreachable) before the sink exits anyway.',
  ),
  SINK_RETRY_INITIAL_MS: z.coerce.number().int().min(1).default(500).describe(
    'First backoff while ClickHouse (or the dead-letter topic) fails; it doubles up to SINK_RETRY_MAX_MS.',
  ),
  SINK_RETRY_MAX_MS: z.coerce.number().int().min(1).default(30_000).describe('Longest backoff while ClickHouse (or the dead-letter topic) fails.'),
});
export type SinkConfig = z.infer<typeof SinkConfig>;
