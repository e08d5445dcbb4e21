import { z } from 'zod';
import { BaseConfig } from '@meterstream/platform/config';
import { CRASH_POINTS } from '@meterstream/ledger/write-order';

export const RaterConfig = BaseConfig.extend({
  RATER_GROUP_ID: z.string().min(1).default('meterstream-rater').describe('Kafka consumer group of the raters; every rater of a deployment joins it.'),
  // Partition batches rated at once; each holds one Postgres connection for its transaction.
  // kafkajs fetches again only when every batch of a fetch is done, so one slot per partition
  // (the topic's default 12) keeps a busy partition from delaying the others by whole waves.
  RATER_CONCURRENCY: z.coerce.number().int().min(1).max(64).default(12).describe('Partition batches rated at once, each holding one Postgres connection for its transaction.'),
  RATER_SESSION_TIMEOUT_MS: z.coerce.number().int().min(6000).default(30_000).describe('How long the group waits for a silent (crashed) rater before handing its partitions over.'),
  RATER_SHUTDOWN_TIMEOUT_MS: z.coerce.number().int().min(1000).default(30_000).describe('Longest a SIGTERM waits for the current batch and for leaving the group (Kafka may be unreachable) before the rater exits anyway.'),
  RATER_MAX_BYTES_PER_PARTITION: z.coerce.number().int().min(1024).default(2 * 1024 * 1024).describe('Most bytes fetched from one partition at a time.'),
  // Every batch costs a Postgres transaction, a publish and an offset commit whatever its size
  // (about 6 ms of CPU across the rater and Postgres): while events trickle in, the broker holds
  // a fetch until this much has arrived or the wait is up, so that batches are not 1-2 events.
  RATER_FETCH_MIN_BYTES: z.coerce.number().int().min(1).default(256 * 1024).describe('The broker answers a fetch once this many bytes have arrived (or RATER_FETCH_MAX_WAIT_MS is up): fewer, larger batches while events trickle in.'),
  RATER_FETCH_MAX_WAIT_MS: z.coerce.number().int().min(0).max(5000).default(100).describe('Longest the broker holds a fetch waiting for RATER_FETCH_MIN_BYTES: the most it adds to rating latency.'),
  // Fault injection for the crash tests: SIGKILL this process between two steps of the write order.
  RATER_CRASH_AT: z.enum(CRASH_POINTS).optional().describe('Fault injection for the crash tests only: the rater SIGKILLs itself at this point of the write order (between commit, publish, cache and offsets) of the batch RATER_CRASH_ON_BATCH.'),
  RATER_CRASH_ON_BATCH: z.coerce.number().int().min(1).default(1).describe('With RATER_CRASH_AT: the batch (1 = the first the rater commits) at which it kills itself.'),
});
export type RaterConfig = z.infer<typeof RaterConfig>;
