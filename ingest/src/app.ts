import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Logger } from 'pino';
import { ID_MAX_LENGTH, topicNames } from '@meterstream/schemas';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import type { BalanceCache } from '@meterstream/ledger/balance-cache';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { WriteOrder } from '@meterstream/ledger/write-order';
import type { Pool } from '@meterstream/platform/postgres';
import type { Redis } from '@meterstream/platform/redis';
import { installApiKeys } from './auth.js';
import { serverTimeouts, type IngestConfig } from './config.js';
import { attributeErrors } from './dependencies.js';
import { envelopeServerOptions, installErrorHandlers } from './errors.js';
import type { UsageEventProducer } from './producer-client.js';
import { installRateLimit } from './rate-limit.js';
import { accountRoutes } from './routes/accounts.js';
import { adjustmentRoutes } from './routes/adjustments.js';
import { authorizeRoutes } from './routes/authorize.js';
import { balanceRoutes } from './routes/balance.js';
import type { RouteContext } from './routes/context.js';
import { eventRoutes } from './routes/events.js';
import { keyRoutes } from './routes/keys.js';
import { limitRequestRoutes } from './routes/limit-requests.js';
import { limitRoutes } from './routes/limits.js';
import { memberRoutes } from './routes/members.js';
import { notificationRoutes } from './routes/notifications.js';
import { paymentRoutes } from './routes/payments.js';
import { invoiceRoutes } from './routes/invoices.js';
import { autoTopUpRoutes } from './routes/auto-top-up.js';
import { stripeWebhookRoutes } from './routes/stripe-webhook.js';
import { topUpRoutes } from './routes/top-ups.js';
import { planRoutes } from './routes/plans.js';
import { accountPlanRoutes } from './routes/account-plan.js';
import { addonRoutes } from './routes/addons.js';
import { priceRoutes } from './routes/prices.js';
import { transactionRoutes } from './routes/transactions.js';
import { usageSummaryRoutes } from './routes/usage-summary.js';
import { workspaceRoutes } from './routes/workspaces.js';
import { deadLetterRoutes } from './routes/dead-letters.js';

export interface AppDeps {
  config: IngestConfig;
  pool: Pool;
  cache: BalanceCache;
  producer: UsageEventProducer;
  /** null: no ClickHouse holding the sink's data is reachable (embedded chDB, sink in another process). */
  ch: ClickHouseClient | null;
  chDatabase: string;
  log: Logger;
  /** Where rate-limit counts are shared between instances; without it each process counts alone. */
  redis?: Redis;
  /** false only where nothing is served (generating the OpenAPI document): no LISTEN for key revocations. */
  listenForKeyChanges?: boolean;
  /** The ledger's clock (grants, notification replays); Date.now by default. */
  now?: () => number;
}

/** The HTTP API; owns none of the clients it is given (the caller closes them). */
export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const { log, ...rest } = deps;
  // Typed as Fastify's logger so the instance keeps Fastify's default generics.
  const loggerInstance: FastifyBaseLogger = log;
  const app = Fastify({
    loggerInstance,
    bodyLimit: deps.config.MAX_BODY_BYTES,
    // Every id the contract allows must be routable as a path parameter.
    routerOptions: { maxParamLength: ID_MAX_LENGTH },
    ...envelopeServerOptions,
    ...serverTimeouts(deps.config),
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  app.decorateRequest('principal', null as never);
  installErrorHandlers(app);

  await app.register(swagger, {
    openapi: {
      openapi: '3.0.3',
      info: {
        title: 'meterstream ingest',
        version: '0.1.0',
        description: 'Usage events in, balances and usage out. Money is an exact decimal string (at most 6 places), never a float. Every error is {"error":{"code","message"}}.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'the operator (admin) key, a member key, an account service key or a tenant service key; each route admits the callers of its x-access policy (docs/api.md)' } } },
      security: [{ bearer: [] }],
    },
    transform: jsonSchemaTransform,
  });

  // Each client's errors are attributed to it, so that a 503 names the dependency that is down.
  const pool = attributeErrors(deps.pool, 'postgres', ['connect']);
  const producer = attributeErrors(deps.producer, 'kafka');
  const cacheWriter = new CacheWriter(deps.cache, pool, log, deps.now ? { now: deps.now } : {});
  app.addHook('onClose', async () => cacheWriter.stop());
  const ctx: RouteContext = {
    ...rest,
    pool,
    cache: attributeErrors(deps.cache, 'redis'),
    producer,
    ledger: new WriteOrder({
      pool, send: (record) => producer.sendRecord(record), cache: cacheWriter, topics: topicNames(deps.config.KAFKA_TOPIC_PREFIX), log,
      publishWaitMs: deps.config.INGEST_ACK_TIMEOUT_MS, now: deps.now,
    }),
    ch: deps.ch && attributeErrors(deps.ch, 'clickhouse', ['query']),
    keys: await installApiKeys(app, pool, deps.config, log, { listen: deps.listenForKeyChanges ?? true }),
  };
  await installRateLimit(app, { config: deps.config, redis: deps.redis, log });
  await app.register(eventRoutes, ctx);
  await app.register(accountRoutes, ctx);
  await app.register(adjustmentRoutes, ctx);
  await app.register(balanceRoutes, ctx);
  await app.register(authorizeRoutes, ctx);
  await app.register(transactionRoutes, ctx);
  await app.register(priceRoutes, ctx);
  await app.register(planRoutes, ctx);
  await app.register(accountPlanRoutes, ctx);
  await app.register(addonRoutes, ctx);
  await app.register(usageSummaryRoutes, ctx);
  await app.register(keyRoutes, ctx);
  await app.register(memberRoutes, ctx);
  await app.register(notificationRoutes, ctx);
  await app.register(topUpRoutes, ctx);
  await app.register(paymentRoutes, ctx);
  await app.register(invoiceRoutes, ctx);
  await app.register(autoTopUpRoutes, ctx);
  // Its own plugin: it reads raw bodies (Stripe signs the bytes), the other routes keep their JSON parser.
  await app.register(stripeWebhookRoutes, ctx);
  await app.register(workspaceRoutes, ctx);
  await app.register(deadLetterRoutes, ctx);
  await app.register(limitRequestRoutes, ctx);
  await app.register(limitRoutes, ctx);

  app.get('/openapi.json', { schema: { hide: true } }, () => app.swagger());
  app.get('/healthz', { schema: { hide: true } }, () => ({ ok: true }));
  return app;
}
