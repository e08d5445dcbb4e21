import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AccountCreated, AccountInput, AccountParams, Grant, GrantInput, IdempotencyKey } from '@meterstream/schemas';
import { addGrant, AccountNotFoundError, IdempotencyConflictError } from '@meterstream/ledger/commands/add-grant';
import { inTransaction } from '@meterstream/platform/postgres';
import { createAccount } from '@meterstream/platform/stores/accounts';
import { issueApiKey } from '@meterstream/platform/stores/api-keys';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

// Loose: the validated headers replace the request's, which must keep the others.
const GrantHeaders = z.looseObject({
  'idempotency-key': IdempotencyKey.describe('required: the caller\'s key for this grant, unique per account; a retry sends the same key'),
});

export const accountRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.post(
    '/v1/accounts',
    {
      onRequest: ctx.keys.requireAdmin,
      schema: {
        summary: 'Create an account and its API key (admin)',
        tags: ['accounts'],
        body: AccountInput,
        response: { 201: AccountCreated, ...errorResponses(400, 401, 403) },
      },
    },
    async (req, reply) => {
      const { email, currency, billing_mode } = req.body;
      // The account and its first key commit together: an account nobody can reach is never left behind.
      const { account, key } = await inTransaction(ctx.pool, async (c) => {
        const account = await createAccount(c, { email, currency, billingMode: billing_mode });
        return { account, key: await issueApiKey(c, account.id) };
      });
      return reply.code(201).send({
        id: account.id, email: account.email, currency: account.currency, billing_mode: account.billingMode,
        created_at: account.createdAt.toISOString(), api_key: key.apiKey,
      });
    },
  );

  app.post(
    '/v1/accounts/:id/grants',
    {
      onRequest: ctx.keys.requireAdmin,
      // Before the schema, so that a missing key gets its own code rather than a validation message.
      preValidation: async (req) => {
        if (req.headers['idempotency-key'] === undefined) {
          throw new ApiError(400, 'IDEMPOTENCY_KEY_REQUIRED', 'send an Idempotency-Key header: a retry with the same key adds the credits once');
        }
      },
      schema: {
        summary: 'Add credits to an account (admin)',
        description:
          'A prepaid account that went below zero pays its overdraft off from the new grant first. ' +
          'Idempotent by the Idempotency-Key header (per account): a retry with the same key and the same body answers ' +
          'the grant it added, as it was added, with Idempotent-Replayed: true, and adds nothing; the same key with ' +
          'another body answers 409 IDEMPOTENCY_KEY_REUSED. The grant is recorded as a ledger entry and published on ledger.entries.',
        tags: ['accounts'],
        params: AccountParams,
        headers: GrantHeaders,
        body: GrantInput,
        response: { 201: Grant, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      try {
        const { grant, replayed } = await addGrant(ctx.ledger, { accountId: req.params.id, input: req.body, idempotencyKey: req.headers['idempotency-key'] });
        if (replayed) void reply.header('idempotent-replayed', 'true');
        return reply.code(201).send(grant);
      } catch (e) {
        if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
        if (e instanceof IdempotencyConflictError) throw new ApiError(409, 'IDEMPOTENCY_KEY_REUSED', e.message);
        throw e;
      }
    },
  );
};
