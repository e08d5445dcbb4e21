import { z } from 'zod';
import { BaseConfig } from '@meterstream/platform/config';
import { StripeConfig } from '@meterstream/platform/stripe';

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
  RATE_LIMIT_TENANT_MAX: z.coerce.number().int().min(1).default(30_000).describe(
    "Requests per tenant per RATE_LIMIT_WINDOW_MS with the tenant's service keys, counted in Redis across instances: one budget for every account the tenant reaches through them (an account's own keys count against RATE_LIMIT_MAX).",
  ),
  RATE_LIMIT_WINDOW_MS: ms(100, 60_000).describe('The window RATE_LIMIT_MAX counts requests in.'),
  API_KEY_CACHE_TTL_MS: ms(0, 5_000).describe(
    'How long a found key is trusted without asking Postgres. Revocations reach every instance at once over LISTEN/NOTIFY; this only bounds how long a revoked key lives on an instance whose LISTEN connection is down.',
  ),
  API_KEY_NEGATIVE_CACHE_TTL_MS: ms(0, 10_000).describe(
    'How long an unknown key is remembered, so that a flood of one bad key costs one Postgres lookup per this many ms.',
  ),
  API_KEY_NEGATIVE_CACHE_MAX: z.coerce.number().int().min(0).default(10_000).describe('Most unknown keys remembered at once (0: none).'),
  ...StripeConfig.shape,
  STRIPE_WEBHOOK_SECRET: z.string().regex(/^whsec_\w+$/, 'the endpoint signing secret, whsec_...').optional().describe(
    'Signing secret of the Stripe webhook endpoint POST /v1/stripe/webhook (whsec_...); unset: that endpoint answers 503 STRIPE_NOT_CONFIGURED.',
  ),
  STRIPE_WEBHOOK_TOLERANCE_S: z.coerce.number().int().min(1).max(3600).default(300).describe(
    'A Stripe webhook whose signed timestamp is further than this from now is refused (400), so a captured request cannot be replayed later.',
  ),
  CHECKOUT_SUCCESS_URL: z.url().default('http://localhost:8080/billing/top-ups/done?session_id={CHECKOUT_SESSION_ID}').describe(
    'Where Stripe Checkout sends the buyer after paying or saving a card; Stripe replaces {CHECKOUT_SESSION_ID}.',
  ),
  CHECKOUT_CANCEL_URL: z.url().default('http://localhost:8080/billing/top-ups/cancelled').describe('Where Stripe Checkout sends a buyer who gives up.'),
  TOP_UP_PRESETS: z.string().regex(/^\d{1,9}(\.\d{1,2})?(,\d{1,9}(\.\d{1,2})?)*$/, 'comma-separated amounts with at most 2 decimals, e.g. 10,50,100')
    .default('10,50,100,300,500,1000').describe("The top-up amounts offered as buttons (seed 004), in the account's currency; any other amount of at least TOP_UP_MIN_AMOUNT may be typed in."),
  TOP_UP_MIN_AMOUNT: z.string().regex(/^\d{1,9}(\.\d{1,2})?$/).default('1').describe("The smallest top-up, in the account's currency (seed 004: 1)."),
  INVOICE_ISSUER: z.string().regex(/^[A-Z0-9]{1,16}$/, '1 to 16 capital letters or digits').default('MS').describe(
    'The issuer of the payment invoices and the prefix of their numbers (MS-000001): each issuer numbers its invoices 1, 2, 3... without gaps.',
  ),
  INVOICE_SELLER_NAME: z.string().min(1).default('meterstream').describe('The seller named on invoices.'),
  INVOICE_SELLER_ADDRESS: z.string().default('').describe('The seller\'s postal address on invoices; "\\n" separates lines.'),
  INVOICE_SELLER_VAT_ID: z.string().default('').describe('The seller\'s VAT number on invoices (shown as "none" when empty).'),
});
export type IngestConfig = z.infer<typeof IngestConfig>;

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
