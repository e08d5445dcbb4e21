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
  // Fault injection for the crash tests: SIGKILL this process between two steps of the write order.
  RATER_CRASH_AT: z.enum(CRASH_POINTS).optional().describe('Fault injection for the crash tests only: the rater SIGKILLs itself at this point of the write order (between commit, publish, cache and offsets) of the batch RATER_CRASH_ON_BATCH.'),
  RATER_CRASH_ON_BATCH: z.coerce.number().int().min(1).default(1).describe('With RATER_CRASH_AT: the batch (1 = the first the rater commits) at which it kills itself.'),
});
export type RaterConfig = z.infer<typeof RaterConfig>;
