import { z } from 'zod';
import { BaseConfig } from '@meterstream/platform/config';

const ms = (min: number, fallback: number) => z.coerce.number().int().min(min).max(3_600_000).default(fallback);

export const IngestConfig = BaseConfig.extend({
  INGEST_HOST: z.string().min(1).default('127.0.0.1').describe('Address the HTTP API listens on.'),
  INGEST_PORT: z.coerce.number().int().min(0).max(65_535).default(8080).describe('Port the HTTP API listens on (0: any free port).'),
  ADMIN_API_KEY: z.string().min(16, 'must be at least 16 characters').describe('The admin bearer key: every route, every account; never rate-limited.'),
  EMAIL_TOMBSTONE_KEY: z.string().min(16, 'must be at least 16 characters').default('dev-only-email-tombstone-key-override-me').describe(
    'HMAC-SHA256 key of the email tombstones that allow one signup gift per address; the default is for development only: set a secret of your own, and never change it afterwards (every earlier address would get a gift again).',
  ),
  MAX_BATCH_EVENTS: z.coerce.number().int().min(1).default(1000).describe('Most events one `POST /v1/events` request may carry (413 beyond).'),
  MAX_BODY_BYTES: z.coerce.number().int().min(1024).default(1_048_576).describe('Largest request body, in bytes (413 beyond).'),
  EVENT_MAX_AGE_DAYS: z.coerce.number().int().min(1).default(35).describe(
    'Events older than this many days are rejected; events more than 5 minutes in the future always are.',
  ),
  INGEST_ACK_TIMEOUT_MS: ms(100, 10_000).describe(
    "How long a request waits for Kafka's ack, then answers 503 so that the client retries (re-sent event ids are charged once) instead of hanging through a broker outage.",
  ),
  INGEST_REQUEST_TIMEOUT_MS: ms(100, 30_000).describe(
    'The whole request, body upload included; keep it above INGEST_ACK_TIMEOUT_MS so that a slow broker answers 503 (retryable) before the server cuts the request off.',
  ),
  INGEST_CONNECTION_TIMEOUT_MS: ms(100, 120_000).describe('A socket idle this long mid-request (nothing received or sent) is closed.'),
  INGEST_KEEP_ALIVE_TIMEOUT_MS: ms(100, 72_000).describe(
    'How long an idle keep-alive connection stays open: above the usual load balancer idle timeout (60 s), so that the balancer closes idle connections first.',
  ),
  RATE_LIMIT_MAX: z.coerce.number().int().min(1).default(3000).describe(
    "Requests per account per RATE_LIMIT_WINDOW_MS, counted in Redis across instances; all of an account's keys share it, so adding or rotating keys does not raise it. The admin key is not limited.",
  ),
  RATE_LIMIT_WINDOW_MS: ms(100, 60_000).describe('The window RATE_LIMIT_MAX counts requests in.'),
  API_KEY_CACHE_TTL_MS: ms(0, 5_000).describe(
    'How long a found key is trusted without asking Postgres. Revocations reach every instance at once over LISTEN/NOTIFY; this only bounds how long a revoked key lives on an instance whose LISTEN connection is down.',
  ),
  API_KEY_NEGATIVE_CACHE_TTL_MS: ms(0, 10_000).describe(
    'How long an unknown key is remembered, so that a flood of one bad key costs one Postgres lookup per this many ms.',
  ),
  API_KEY_NEGATIVE_CACHE_MAX: z.coerce.number().int().min(0).default(10_000).describe('Most unknown keys remembered at once (0: none).'),
  SMTP_URL: z.url({ protocol: /^smtps?$/ }).optional().describe(
    'SMTP server notifications are emailed through (smtp://user:pass@host:587, smtps://...); unset: no email is sent (said once at start-up), webhooks still are.',
  ),
  SMTP_FROM: z.string().min(3).default('meterstream <notifications@localhost>').describe('The From address of notification emails.'),
  NOTIFY_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(100).default(8).describe(
    'Attempts of one notification delivery (webhook or email) before it is dead; POST /v1/accounts/{id}/notifications/{nid}/replay sends it again.',
  ),
  NOTIFY_RETRY_INITIAL_MS: ms(1, 30_000).describe('Exponential backoff of failed deliveries: about this long before the first retry, doubling each time.'),
  NOTIFY_RETRY_MAX_MS: ms(1, 3_600_000).describe('The longest wait between two attempts of a delivery.'),
  NOTIFY_WEBHOOK_TIMEOUT_MS: ms(100, 10_000).describe('A webhook receiver that has not answered in this long has failed the attempt.'),
  NOTIFY_POLL_MS: ms(10, 1_000).describe('How often the delivery worker looks for due notifications.'),
});
export type IngestConfig = z.infer<typeof IngestConfig>;

/** The notification delivery worker's settings from the config. */
export const deliverySettings = (c: IngestConfig) => ({
  maxAttempts: c.NOTIFY_MAX_ATTEMPTS,
  retryInitialMs: c.NOTIFY_RETRY_INITIAL_MS,
  retryMaxMs: c.NOTIFY_RETRY_MAX_MS,
  webhookTimeoutMs: c.NOTIFY_WEBHOOK_TIMEOUT_MS,
  pollMs: c.NOTIFY_POLL_MS,
  batch: 100,
});

/** Fastify's server options for the timeouts above. */
export const serverTimeouts = (c: IngestConfig) => ({
  requestTimeout: c.INGEST_REQUEST_TIMEOUT_MS,
  connectionTimeout: c.INGEST_CONNECTION_TIMEOUT_MS,
  keepAliveTimeout: c.INGEST_KEEP_ALIVE_TIMEOUT_MS,
});

/** Why an ingest without the sink beside it and without CLICKHOUSE_URL cannot read usage, and the fix. */
export const NO_SINK_CLICKHOUSE =
  'CLICKHOUSE_URL is unset and the sink does not run in this process, and embedded chDB is readable only by the process that writes it; ' +
  'set CLICKHOUSE_URL to the ClickHouse server the sink writes to, or run every service in one process with `npm start`';
