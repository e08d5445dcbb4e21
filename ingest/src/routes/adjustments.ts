import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AccountParams, AdjustmentInput, IdempotencyKey, LedgerEntry, toMicros } from '@meterstream/schemas';
import { AccountNotFoundError, adjustBalance, IdempotencyConflictError } from '@meterstream/ledger/commands/adjust-balance';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

// Loose: the validated headers replace the request's, which must keep the others.
const AdjustmentHeaders = z.looseObject({
  'idempotency-key': IdempotencyKey.describe('required: the caller\'s key for this adjustment, unique per account; a retry sends the same key'),
});

export const adjustmentRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.post(
    '/v1/accounts/:id/adjustments',
    {
      onRequest: ctx.keys.allow('admin'),
      // Before the schema, so that a missing key gets its own code rather than a validation message.
      preValidation: async (req) => {
        if (req.headers['idempotency-key'] === undefined) {
          throw new ApiError(400, 'IDEMPOTENCY_KEY_REQUIRED', 'send an Idempotency-Key header: a retry with the same key adjusts once');
        }
      },
      schema: {
        summary: 'Correct a balance by hand, with the reason (admin)',
        description:
          'A positive amount adds credits as a promotional grant without expiry (a prepaid overdraft is paid off from it first); ' +
          'a negative amount takes credits as usage does, soonest-expiring first, the rest going to the prepaid overdraft or the ' +
          "month's postpaid usage. One transaction of kind adjustment with the reason, published on ledger.entries. Idempotent by " +
          'the Idempotency-Key header (per account): a retry with the same body answers the same entry with Idempotent-Replayed: true; ' +
          'the same key with another body answers 409 IDEMPOTENCY_KEY_REUSED.',
        tags: ['accounts'],
        params: AccountParams,
        headers: AdjustmentHeaders,
        body: AdjustmentInput,
        response: { 201: LedgerEntry, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      try {
        const { entry, replayed } = await adjustBalance(ctx.ledger, {
          accountId: req.params.id, amount: toMicros(req.body.amount), reason: req.body.reason, idempotencyKey: req.headers['idempotency-key'],
        });
        if (replayed) void reply.header('idempotent-replayed', 'true');
        return reply.code(201).send(entry);
      } catch (e) {
        if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
        if (e instanceof IdempotencyConflictError) throw new ApiError(409, 'IDEMPOTENCY_KEY_REUSED', e.message);
        throw e;
      }
    },
  );
};
