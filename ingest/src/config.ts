import { z } from 'zod';
import { BaseConfig } from '@meterstream/schemas/config';

export const IngestConfig = BaseConfig.extend({
  INGEST_HOST: z.string().min(1).default('127.0.0.1'),
  INGEST_PORT: z.coerce.number().int().min(0).max(65_535).default(8080),
  ADMIN_API_KEY: z.string().min(16, 'must be at least 16 characters'),
  MAX_BATCH_EVENTS: z.coerce.number().int().min(1).default(1000),
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(1_048_576),
  EVENT_MAX_AGE_DAYS: z.coerce.number().int().min(1).default(35),
  // A request waits at most this long for Kafka's ack, then answers 503 so the client retries
  // (the rater deduplicates re-sent event ids) instead of hanging through a broker outage.
  INGEST_ACK_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
});
export type IngestConfig = z.infer<typeof IngestConfig>;
