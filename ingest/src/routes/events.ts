import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { UsageEventBatch, UsageEventsAccepted } from '@meterstream/schemas';
import { ApiError, errorResponses } from '../errors.js';
import { judgeEvents, parseNdjson } from '../event-batch.js';
import { parseJsonExact } from '../exact-json.js';
import { provisionerOf, screenTenantEvents } from '../provisioning.js';
import type { RouteContext } from './context.js';

/** Encapsulated: its JSON parser keeps quantities exact and it alone accepts NDJSON. */
export const eventRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if ((body as string).trim() === '') return done(new ApiError(400, 'MALFORMED_JSON', 'request body is empty'), undefined);
    try {
      done(null, parseJsonExact(body as string));
    } catch (e) {
      done(new ApiError(400, 'MALFORMED_JSON', `request body is not valid JSON: ${(e as Error).message}`), undefined);
    }
  });
  app.addContentTypeParser('application/x-ndjson', { parseAs: 'string' }, (_req, body, done) => {
    done(null, parseNdjson(body as string));
  });

  const maxAgeMs = ctx.config.EVENT_MAX_AGE_DAYS * 86_400_000;
  app.post(
    '/v1/events',
    {
      onRequest: ctx.keys.allow('usage:write', { account: 'handler' }),
      // The body is judged event by event in the handler: a schema failure must not reject the batch.
      validatorCompiler: () => (data) => ({ value: data }),
      schema: {
        summary: 'Send usage events',
        description:
          'Each event is validated on its own; 202 lists the accepted ids (acknowledged by Kafka) and the rejected events with reasons. An account key may only send its own account_id. ' +
          "A tenant's service key sends its tenant's accounts: an account id of another tenant (or of none) is rejected (FORBIDDEN); an unknown one " +
          "is created on this first use when the tenant's default plan provisions on first use (with this month's allowance), and otherwise " +
          'accepted and dead-lettered by the rater (UNKNOWN_ACCOUNT).',
        tags: ['events'],
        body: UsageEventBatch,
        response: { 202: UsageEventsAccepted, ...errorResponses(400, 401, 413, 415, 503) },
      },
    },
    async (req, reply) => {
      const body: unknown = req.body;
      const items = Array.isArray(body) ? body : [body];
      if (items.length === 0) throw new ApiError(400, 'EMPTY_BATCH', 'the request holds no events');
      if (items.length > ctx.config.MAX_BATCH_EVENTS) {
        throw new ApiError(413, 'TOO_MANY_EVENTS', `at most ${ctx.config.MAX_BATCH_EVENTS} events per request, got ${items.length}`);
      }
      const { principal } = req;
      // A tenant key's access is per account, and may provision it: judged after everything else.
      const judged = judgeEvents(items, { principal: principal.kind === 'tenant' ? { kind: 'admin' } : principal, nowMs: ctx.ledger.now(), maxAgeMs });
      const verdict = principal.kind === 'tenant' ? await screenTenantEvents(provisionerOf(ctx), principal.tenantId, judged, items.length) : judged;
      if (verdict.events.length > 0) {
        const signal = AbortSignal.timeout(ctx.config.INGEST_ACK_TIMEOUT_MS);
        try {
          await ctx.producer.publish(verdict.events, signal);
        } catch (e) {
          const retry = 'nothing in this request is confirmed; retry it with the same event ids';
          if (signal.aborted) throw new ApiError(503, 'KAFKA_TIMEOUT', `Kafka did not acknowledge within ${ctx.config.INGEST_ACK_TIMEOUT_MS} ms: ${retry}`);
          req.log.error({ err: e }, 'publishing usage events failed');
          throw new ApiError(503, 'KAFKA_UNAVAILABLE', `the events could not be written to Kafka: ${retry}`);
        }
      }
      return reply.code(202).send({ accepted: verdict.events.map((e) => e.id), rejected: verdict.rejected });
    },
  );
};
