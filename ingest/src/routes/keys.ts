import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  AccountParams, ApiKeyCreated, ApiKey, ApiKeyInput, ApiKeyList, ApiKeyParams, ApiKeyRotated, TenantKeyParams, TenantParams,
} from '@meterstream/schemas';
import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import {
  getApiKey, issueApiKey, issueKey, KeyNotFoundError, KeyRevokedError, listApiKeys,
  type ApiKeyRecord, type IssuedApiKey, type KeyScope,
} from '@meterstream/platform/stores/api-keys';
import { getMember, MemberNotFoundError } from '@meterstream/platform/stores/members';
import { TenantNotFoundError } from '@meterstream/platform/stores/tenants';
import { assertMayActOn, type Principal } from '../auth.js';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const toApiKey = (k: ApiKeyRecord): ApiKey => ({
  id: k.id, kind: k.kind, account_id: k.accountId, tenant_id: k.tenantId, member_id: k.memberId, role: k.role,
  created_at: k.createdAt.toISOString(), revoked_at: k.revokedAt?.toISOString() ?? null,
});
const toApiKeyCreated = (k: IssuedApiKey): ApiKeyCreated => ({ ...toApiKey(k.record), api_key: k.apiKey });
const currentKey = (p: Principal) => (p.kind === 'admin' ? null : p.keyId);

/**
 * Key management. An account's keys are managed by its owner and admins (members:manage) and the
 * operator; only an owner acts on an owner's keys (an admin keying itself as the owner would take
 * the account over). A tenant's keys are the operator's.
 */
export const keyRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  const notFound = (e: unknown): never => {
    if (e instanceof KeyNotFoundError) throw new ApiError(404, 'KEY_NOT_FOUND', e.message);
    if (e instanceof KeyRevokedError) throw new ApiError(409, 'KEY_REVOKED', e.message);
    if (e instanceof MemberNotFoundError) throw new ApiError(404, 'MEMBER_NOT_FOUND', e.message);
    if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
    if (e instanceof TenantNotFoundError) throw new ApiError(404, 'TENANT_NOT_FOUND', e.message);
    throw e;
  };
  /** The key, once the caller may act on its holder. */
  const keyToChange = async (principal: Principal, scope: KeyScope, keyId: string): Promise<ApiKeyRecord> => {
    const key = await getApiKey(ctx.pool, scope, keyId).catch(notFound);
    assertMayActOn(principal, key.role);
    return key;
  };

  app.post(
    '/v1/accounts/:id/keys',
    {
      onRequest: ctx.keys.allow('members:manage'),
      schema: {
        summary: 'Create an API key for the account: a member key (acting with its member\'s role) or a service key',
        description:
          'Without a body, a member key of the account\'s owner (its first owner, if it has several). A service key sends usage ' +
          'and calls the gate, nothing else. A member key follows its member: a new role applies to it at once, and removing ' +
          'the member revokes it.',
        tags: ['keys'],
        params: AccountParams,
        body: ApiKeyInput.nullish(),
        response: { 201: ApiKeyCreated, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      const accountId = req.params.id;
      const input = req.body;
      let issued: IssuedApiKey;
      if (input?.kind === 'service') {
        issued = await issueKey(ctx.pool, { kind: 'service', accountId }).catch(notFound);
      } else if (input?.kind === 'member') {
        const member = await getMember(ctx.pool, accountId, input.member_id).catch(notFound);
        if (member.removedAt) throw new ApiError(409, 'MEMBER_REMOVED', `member ${member.id} was removed at ${member.removedAt.toISOString()}`);
        assertMayActOn(req.principal, member.role);
        issued = await issueKey(ctx.pool, { kind: 'member', accountId, memberId: member.id }).catch(notFound);
      } else {
        assertMayActOn(req.principal, 'owner');
        issued = await issueApiKey(ctx.pool, accountId).catch(notFound);
      }
      return reply.code(201).send(toApiKeyCreated(issued));
    },
  );

  app.get(
    '/v1/accounts/:id/keys',
    {
      onRequest: ctx.keys.allow('members:manage'),
      schema: {
        summary: "List the account's API keys, revoked ones included (never the keys themselves)",
        tags: ['keys'],
        params: AccountParams,
        response: { 200: ApiKeyList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const keys = await listApiKeys(ctx.pool, { accountId: req.params.id });
      if (!keys) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      const mine = currentKey(req.principal);
      return { keys: keys.map((k) => ({ ...toApiKey(k), current: k.id === mine })) };
    },
  );

  app.delete(
    '/v1/accounts/:id/keys/:keyId',
    {
      onRequest: ctx.keys.allow('members:manage'),
      schema: {
        summary: 'Revoke an API key, on every ingest instance at once',
        description: 'A key may revoke itself. Revoking a revoked key answers its first revocation.',
        tags: ['keys'],
        params: ApiKeyParams,
        response: { 200: ApiKey, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const scope = { accountId: req.params.id };
      await keyToChange(req.principal, scope, req.params.keyId);
      return toApiKey((await ctx.keys.revoke(scope, req.params.keyId).catch(notFound)).record);
    },
  );

  app.post(
    '/v1/accounts/:id/keys/:keyId/rotate',
    {
      onRequest: ctx.keys.allow('members:manage'),
      schema: {
        summary: 'Replace an API key: a new key of the same holder is created and the old one revoked, in one transaction',
        tags: ['keys'],
        params: ApiKeyParams,
        response: { 201: ApiKeyRotated, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      const scope = { accountId: req.params.id };
      await keyToChange(req.principal, scope, req.params.keyId);
      const { created, revoked } = await ctx.keys.rotate(scope, req.params.keyId).catch(notFound);
      return reply.code(201).send({ ...toApiKeyCreated(created), replaced: toApiKey(revoked.record) });
    },
  );

  app.post(
    '/v1/tenants/:id/keys',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: "Create a tenant's service key (admin)",
        description: "It sends usage and calls the gate for the tenant's accounts, and reads their billing data and members.",
        tags: ['tenants'],
        params: TenantParams,
        response: { 201: ApiKeyCreated, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req, reply) => reply.code(201).send(toApiKeyCreated(await issueKey(ctx.pool, { kind: 'service', tenantId: req.params.id }).catch(notFound))),
  );

  app.get(
    '/v1/tenants/:id/keys',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: "List a tenant's service keys, revoked ones included (admin)",
        tags: ['tenants'],
        params: TenantParams,
        response: { 200: ApiKeyList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const keys = await listApiKeys(ctx.pool, { tenantId: req.params.id });
      if (!keys) throw new ApiError(404, 'TENANT_NOT_FOUND', `tenant ${req.params.id} does not exist`);
      return { keys: keys.map((k) => ({ ...toApiKey(k), current: false })) };
    },
  );

  app.delete(
    '/v1/tenants/:id/keys/:keyId',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: "Revoke a tenant's service key, on every ingest instance at once (admin)",
        tags: ['tenants'],
        params: TenantKeyParams,
        response: { 200: ApiKey, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => toApiKey((await ctx.keys.revoke({ tenantId: req.params.id }, req.params.keyId).catch(notFound)).record),
  );
};
