import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Account, AccountInput, Grant, GrantInput, Id } from '@meterstream/schemas';
import { addGrant, AccountNotFoundError } from '@meterstream/ledger/grants';
import { inTransaction } from '@meterstream/platform/postgres';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

export const AccountParams = z.object({ id: Id });

const AccountCreated = Account.extend({
  api_key: z.string().describe('the account-scoped API key; shown only in this response, store it now'),
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
      const id = `acct_${randomBytes(12).toString('hex')}`;
      const { email, currency, billing_mode } = req.body;
      const created = await inTransaction(ctx.pool, async (c) => {
        const { rows } = await c.query<{ created_at: Date }>(
          'INSERT INTO accounts (id, email, currency, billing_mode) VALUES ($1, $2, $3, $4) RETURNING created_at',
          [id, email, currency, billing_mode],
        );
        return { createdAt: rows[0]!.created_at, apiKey: await ctx.keys.issue(c, id) };
      });
      return reply.code(201).send({
        id, email, currency, billing_mode, created_at: created.createdAt.toISOString(), api_key: created.apiKey,
      });
    },
  );

  app.post(
    '/v1/accounts/:id/grants',
    {
      onRequest: ctx.keys.requireAdmin,
      schema: {
        summary: 'Add credits to an account (admin)',
        description: 'A prepaid account that went below zero pays its overdraft off from the new grant first.',
        tags: ['accounts'],
        params: AccountParams,
        body: GrantInput,
        response: { 201: Grant, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req, reply) => {
      try {
        return reply.code(201).send(await addGrant(ctx.pool, ctx.cache, req.params.id, req.body));
      } catch (e) {
        if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
        throw e;
      }
    },
  );
};
