import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AccountParams, ApiKeyCreated, ApiKey, ApiKeyList, ApiKeyParams, ApiKeyRotated } from '@meterstream/schemas';
import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import {
  issueApiKey, KeyNotFoundError, KeyRevokedError, listApiKeys, type ApiKeyRecord, type IssuedApiKey,
} from '@meterstream/platform/stores/api-keys';
import { assertCanAccess } from '../auth.js';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const toApiKey = (k: ApiKeyRecord): ApiKey => ({
  id: k.id, account_id: k.accountId, created_at: k.createdAt.toISOString(), revoked_at: k.revokedAt?.toISOString() ?? null,
});
const toApiKeyCreated = (k: IssuedApiKey): ApiKeyCreated => ({ ...toApiKey(k.record), api_key: k.apiKey });

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
        return reply.code(201).send(toApiKeyCreated(await issueApiKey(ctx.pool, req.params.id)));
      } catch (e) {
        if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
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
        response: { 200: ApiKeyList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      assertCanAccess(req.principal, req.params.id);
      const keys = await listApiKeys(ctx.pool, req.params.id);
      if (!keys) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      const mine = req.principal.kind === 'account' ? req.principal.keyId : null;
      return { keys: keys.map((k) => ({ ...toApiKey(k), current: k.id === mine })) };
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
        params: ApiKeyParams,
        response: { 200: ApiKey, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      assertCanAccess(req.principal, req.params.id);
      return toApiKey((await ctx.keys.revoke(req.params.id, req.params.keyId).catch(notFound)).record);
    },
  );

  app.post(
    '/v1/accounts/:id/keys/:keyId/rotate',
    {
      onRequest: ctx.keys.requireAdmin,
      schema: {
        summary: 'Replace an API key: a new key is created and the old one revoked, in one transaction (admin)',
        tags: ['keys'],
        params: ApiKeyParams,
        response: { 201: ApiKeyRotated, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      try {
        const { created, revoked } = await ctx.keys.rotate(req.params.id, req.params.keyId);
        return reply.code(201).send({ ...toApiKeyCreated(created), replaced: toApiKey(revoked.record) });
      } catch (e) {
        if (e instanceof KeyRevokedError) throw new ApiError(409, 'KEY_REVOKED', e.message);
        return notFound(e);
      }
    },
  );
};
