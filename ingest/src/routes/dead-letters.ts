import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { DeadLetterCounts, DeadLetterCountsQuery } from '@meterstream/schemas';
import { deadLetterCounts } from '@meterstream/platform/stores/dead-letters';
import { errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

/** What the rater could not charge, counted: e.g. a tenant's events for unknown accounts without provisioning. */
export const deadLetterRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.get(
    '/v1/dead-letters/counts',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: 'Count the dead-lettered events per code (admin)',
        description:
          'Events accepted by ingest that the rater could not charge are dead-lettered with a code and a reason (usage.dlq and Postgres) ' +
          'and can be replayed once the cause is fixed (npm run replay). UNKNOWN_ACCOUNT counts, among others, the events of a tenant ' +
          "for unknown accounts when the tenant's default plan does not provision on first use.",
        tags: ['operations'],
        querystring: DeadLetterCountsQuery,
        response: { 200: DeadLetterCounts, ...errorResponses(400, 401, 403) },
      },
    },
    async (req) => ({
      codes: (await deadLetterCounts(ctx.pool, { accountId: req.query.account_id })).map((c) => ({
        code: c.code, pending: c.pending, replayed: c.replayed, last_at: c.lastAt.toISOString(),
      })),
    }),
  );
};
