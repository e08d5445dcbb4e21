import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  AccountParams, Member, MemberInput, MemberList, MemberListQuery, MemberParams, MemberRoleChange, Tenant, TenantInput, TenantParams,
} from '@meterstream/schemas';
import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import {
  addMember, getMember, LastOwnerError, listMembers, MemberExistsError, MemberNotFoundError, MemberRemovedError, type MemberRecord,
} from '@meterstream/platform/stores/members';
import { PlanNotFoundError } from '@meterstream/platform/stores/plans';
import { createTenant, getTenant, TenantExistsError, type TenantRecord } from '@meterstream/platform/stores/tenants';
import { assertMayActOn } from '../auth.js';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const toMember = (m: MemberRecord): Member => ({
  id: m.id, account_id: m.accountId, email: m.email, role: m.role, created_at: m.createdAt.toISOString(), removed_at: m.removedAt?.toISOString() ?? null,
});
const toTenant = (t: TenantRecord): Tenant => ({ id: t.id, name: t.name, default_plan_id: t.defaultPlanId, created_at: t.createdAt.toISOString() });

const memberErrors = (e: unknown): never => {
  if (e instanceof MemberNotFoundError) throw new ApiError(404, 'MEMBER_NOT_FOUND', e.message);
  if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
  if (e instanceof MemberExistsError) throw new ApiError(409, 'MEMBER_EXISTS', e.message);
  if (e instanceof LastOwnerError) throw new ApiError(409, 'LAST_OWNER', e.message);
  if (e instanceof MemberRemovedError) throw new ApiError(409, 'MEMBER_REMOVED', e.message);
  throw e;
};

/**
 * The people of an account (seeds 000, 004) and the tenants (operators selling usage to accounts
 * of their own). Members are managed by owners and admins; only an owner acts on owners, and an
 * account always keeps one. Their keys: routes/keys.ts.
 */
export const memberRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.get(
    '/v1/accounts/:id/members',
    {
      onRequest: ctx.keys.allow('account:read'),
      schema: {
        summary: "List the account's members and their roles",
        tags: ['members'],
        params: AccountParams,
        querystring: MemberListQuery,
        response: { 200: MemberList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const members = await listMembers(ctx.pool, req.params.id, { includeRemoved: req.query.include_removed });
      if (!members) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      return { members: members.map(toMember) };
    },
  );

  app.post(
    '/v1/accounts/:id/members',
    {
      onRequest: ctx.keys.allow('members:manage'),
      schema: {
        summary: 'Add a member to the account, with a role',
        description: 'An email is one member of an account at a time (case-insensitive): 409 MEMBER_EXISTS. Issue its keys with POST /v1/accounts/{id}/keys.',
        tags: ['members'],
        params: AccountParams,
        body: MemberInput,
        response: { 201: Member, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      assertMayActOn(req.principal, req.body.role);
      return reply.code(201).send(toMember(await addMember(ctx.pool, req.params.id, req.body).catch(memberErrors)));
    },
  );

  app.patch(
    '/v1/accounts/:id/members/:memberId',
    {
      onRequest: ctx.keys.allow('members:manage'),
      schema: {
        summary: "Change a member's role; its keys act with the new role at once, on every instance",
        description: 'Demoting the only owner answers 409 LAST_OWNER: make another member owner first.',
        tags: ['members'],
        params: MemberParams,
        body: MemberRoleChange,
        response: { 200: Member, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req) => {
      const { id, memberId } = req.params;
      const member = await getMember(ctx.pool, id, memberId).catch(memberErrors);
      assertMayActOn(req.principal, member.role);
      assertMayActOn(req.principal, req.body.role);
      return toMember(await ctx.keys.changeRole(id, memberId, req.body.role).catch(memberErrors));
    },
  );

  app.delete(
    '/v1/accounts/:id/members/:memberId',
    {
      onRequest: ctx.keys.allow('members:manage'),
      schema: {
        summary: 'Remove a member: its keys are revoked in the same transaction and stop working on every instance at once',
        description: 'Removing the only owner answers 409 LAST_OWNER. Idempotent: removing a removed member answers its removal.',
        tags: ['members'],
        params: MemberParams,
        response: { 200: Member, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req) => {
      const { id, memberId } = req.params;
      assertMayActOn(req.principal, (await getMember(ctx.pool, id, memberId).catch(memberErrors)).role);
      return toMember(await ctx.keys.removeMember(id, memberId).catch(memberErrors));
    },
  );

  app.post(
    '/v1/tenants',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: 'Create a tenant (admin)',
        description: "A tenant's service keys (POST /v1/tenants/{id}/keys) reach the accounts of the tenant; its default plan is the plan of the accounts it provisions.",
        tags: ['tenants'],
        body: TenantInput,
        response: { 201: Tenant, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (req, reply) => {
      try {
        const { id, name, default_plan_id } = req.body;
        return reply.code(201).send(toTenant(await createTenant(ctx.pool, { ...(id === undefined ? {} : { id }), name, defaultPlanId: default_plan_id })));
      } catch (e) {
        if (e instanceof PlanNotFoundError) throw new ApiError(400, 'PLAN_NOT_FOUND', e.message);
        if (e instanceof TenantExistsError) throw new ApiError(409, 'TENANT_EXISTS', e.message);
        throw e;
      }
    },
  );

  app.get(
    '/v1/tenants/:id',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: 'Read a tenant (admin)',
        tags: ['tenants'],
        params: TenantParams,
        response: { 200: Tenant, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const tenant = await getTenant(ctx.pool, req.params.id);
      if (!tenant) throw new ApiError(404, 'TENANT_NOT_FOUND', `tenant ${req.params.id} does not exist`);
      return toTenant(tenant);
    },
  );
};
