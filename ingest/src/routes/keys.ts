import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { inTransaction } from '@meterstream/platform/postgres';
import { assertCanAccess, KeyNotFoundError, KeyRevokedError } from '../auth.js';
import { ApiError, errorResponses } from '../errors.js';
import { AccountParams } from './accounts.js';
import type { RouteContext } from './context.js';

const KeyParams = AccountParams.extend({ keyId: z.string().regex(/^key_[0-9a-f]{24}$/, 'a key id is key_ and 24 hex digits') });

const ApiKey = z.object({
  id: z.string().describe('the key id: names the key in these routes; the key itself is never shown again'),
  account_id: z.string(),
  created_at: z.string(),
  revoked_at: z.string().nullable().describe('null while the key works'),
});
const ApiKeyCreated = ApiKey.extend({
  api_key: z.string().describe('the new key; shown only in this response, store it now'),
});

const WHO = 'The admin key for any account; an account key for its own account only (it may revoke any of its keys, itself included).';

/**
 * Key management. Minting a key (create, rotate) needs the admin key: an account key that leaked
 * must not be able to mint itself a successor that survives its revocation. Listing and revoking
 * are open to the account's own keys, since revoking only ever takes access away.
 */
export const keyRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  const notFound = (e: unknown): never => {
    if (e instanceof KeyNotFoundError) throw new ApiError(404, 'KEY_NOT_FOUND', e.message);
    throw e;
  };

  app.post(
    '/v1/accounts/:id/keys',
    {
      onRequest: ctx.keys.requireAdmin,
      schema: {
        summary: 'Create another API key for the account (admin)',
        tags: ['keys'],
        params: AccountParams,
        response: { 201: ApiKeyCreated, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req, reply) => {
      try {
        return reply.code(201).send(await inTransaction(ctx.pool, (c) => ctx.keys.create(c, req.params.id)));
      } catch (e) {
        if ((e as { code?: string }).code === '23503') throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
        throw e;
      }
    },
  );

  app.get(
    '/v1/accounts/:id/keys',
    {
      onRequest: ctx.keys.authenticate,
      schema: {
        summary: "List the account's API keys, revoked ones included (never the keys themselves)",
        description: WHO,
        tags: ['keys'],
        params: AccountParams,
        response: {
          200: z.object({ keys: z.array(ApiKey.extend({ current: z.boolean().describe('the key this request was made with') })).describe('oldest first') }),
          ...errorResponses(400, 401, 403, 404),
        },
      },
    },
    async (req) => {
      assertCanAccess(req.principal, req.params.id);
      const keys = await ctx.keys.list(req.params.id);
      if (!keys) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      const mine = req.principal.kind === 'account' ? req.principal.keyId : null;
      return { keys: keys.map((k) => ({ ...k, current: k.id === mine })) };
    },
  );

  app.delete(
    '/v1/accounts/:id/keys/:keyId',
    {
      onRequest: ctx.keys.authenticate,
      schema: {
        summary: 'Revoke an API key, on every ingest instance at once',
        description: `${WHO} Revoking a revoked key answers its first revocation.`,
        tags: ['keys'],
        params: KeyParams,
        response: { 200: ApiKey, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      assertCanAccess(req.principal, req.params.id);
      return ctx.keys.revoke(req.params.id, req.params.keyId).catch(notFound);
    },
  );

  app.post(
    '/v1/accounts/:id/keys/:keyId/rotate',
    {
      onRequest: ctx.keys.requireAdmin,
      schema: {
        summary: 'Replace an API key: a new key is created and the old one revoked, in one transaction (admin)',
        tags: ['keys'],
        params: KeyParams,
        response: { 201: ApiKeyCreated.extend({ replaced: ApiKey }), ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      try {
        const { created, revoked } = await ctx.keys.rotate(req.params.id, req.params.keyId);
        return reply.code(201).send({ ...created, replaced: revoked });
      } catch (e) {
        if (e instanceof KeyRevokedError) throw new ApiError(409, 'KEY_REVOKED', e.message);
        return notFound(e);
      }
    },
  );
};
