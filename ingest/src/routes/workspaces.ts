import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AccountParams, Workspace, WorkspaceInput, WorkspaceList, WorkspaceParams } from '@meterstream/schemas';
import { createWorkspace, deleteWorkspace, listWorkspaces, type WorkspaceRecord } from '@meterstream/platform/stores/workspaces';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const toWorkspace = (w: WorkspaceRecord): Workspace => ({
  id: w.id, account_id: w.accountId, name: w.name, created_at: w.createdAt.toISOString(), deleted_at: w.deletedAt?.toISOString() ?? null,
});

/**
 * Workspaces of an account (seed 000: "credits belong to the account, not a workspace"): they share
 * its balance, and usage events name one (workspace_id) for the usage summary's breakdown.
 */
export const workspaceRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.post(
    '/v1/accounts/:id/workspaces',
    {
      onRequest: ctx.keys.allow('members:manage'),
      schema: {
        summary: 'Create a workspace',
        description: 'The workspace shares the account\'s balance; usage events name it in workspace_id for the per-workspace breakdown of the usage summary.',
        tags: ['workspaces'],
        params: AccountParams,
        body: WorkspaceInput,
        response: { 201: Workspace, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req, reply) => {
      const created = await createWorkspace(ctx.pool, req.params.id, req.body.name);
      if (!created) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      return reply.code(201).send(toWorkspace(created));
    },
  );

  app.get(
    '/v1/accounts/:id/workspaces',
    {
      onRequest: ctx.keys.allow('account:read'),
      schema: { summary: 'List the live workspaces', tags: ['workspaces'], params: AccountParams, response: { 200: WorkspaceList, ...errorResponses(400, 401, 403) } },
    },
    async (req) => ({ workspaces: (await listWorkspaces(ctx.pool, req.params.id)).map(toWorkspace) }),
  );

  app.delete(
    '/v1/accounts/:id/workspaces/:workspace_id',
    {
      onRequest: ctx.keys.allow('members:manage'),
      schema: {
        summary: 'Delete a workspace',
        description:
          'A soft delete: the workspace leaves the list; its usage stays in the history and in the usage summary (marked deleted), ' +
          "and the account's credits are untouched. Idempotent: deleting it again answers the first deletion.",
        tags: ['workspaces'],
        params: WorkspaceParams,
        response: { 200: Workspace, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const deleted = await deleteWorkspace(ctx.pool, req.params.id, req.params.workspace_id);
      if (!deleted) throw new ApiError(404, 'WORKSPACE_NOT_FOUND', `account ${req.params.id} has no workspace ${req.params.workspace_id}`);
      return toWorkspace(deleted);
    },
  );
};
