import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  AccountParams, LimitDecisionInput, LimitRequest, LimitRequestInput, LimitRequestList, LimitRequestParams,
} from '@meterstream/schemas';
import { loadLedgerSeq } from '@meterstream/ledger/account-state';
import {
  AccountNotFoundError, LimitNotSetError, LimitRequestPendingError, NotAnIncreaseError, requestLimit,
} from '@meterstream/ledger/commands/request-limit';
import { decideLimitRequest, LimitRequestDecidedError, LimitRequestNotFoundError } from '@meterstream/ledger/commands/decide-limit-request';
import { listLimitRequests } from '@meterstream/ledger/limit-requests';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const HISTORY = 'Each step is in the account\'s history (GET /v1/accounts/{id}/transactions): an entry of kind adjustment, amount 0, whose reason names the request.';

/** Limit increase requests (seed 001): the account asks, the operator approves or rejects. */
export const limitRequestRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.post(
    '/v1/accounts/:id/limit-requests',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Ask for a higher monthly or allowed limit',
        description: 'What to do after MONTHLY_LIMIT_REACHED or ALLOWED_LIMIT_REACHED: the request waits for the operator '
          + '(POST .../approve or .../reject). One request per limit may wait at a time (409 LIMIT_REQUEST_PENDING); the requested '
          + 'limit must be above the current one (400 NOT_AN_INCREASE); an account without such a limit (the monthly limit of a '
          + `prepaid account, an allowed limit never set) has none to raise (409 LIMIT_NOT_SET). ${HISTORY}`,
        tags: ['accounts'],
        params: AccountParams,
        body: LimitRequestInput,
        response: { 201: LimitRequest, ...errorResponses(400, 401, 403, 404, 409, 503) },
      },
    },
    async (req, reply) => {
      const accountId = req.params.id;
      try {
        const requestedBy = req.principal.kind === 'admin' ? 'admin' : req.principal.keyId;
        return reply.code(201).send(await requestLimit(ctx.ledger, { accountId, input: req.body, requestedBy }));
      } catch (e) {
        if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
        if (e instanceof NotAnIncreaseError) throw new ApiError(400, 'NOT_AN_INCREASE', e.message);
        if (e instanceof LimitNotSetError) throw new ApiError(409, 'LIMIT_NOT_SET', e.message);
        if (e instanceof LimitRequestPendingError) throw new ApiError(409, 'LIMIT_REQUEST_PENDING', e.message);
        throw e;
      }
    },
  );

  app.get(
    '/v1/accounts/:id/limit-requests',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: "An account's limit increase requests, newest first",
        tags: ['accounts'],
        params: AccountParams,
        response: { 200: LimitRequestList, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const accountId = req.params.id;
      if ((await loadLedgerSeq(ctx.pool, accountId)) === undefined) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`);
      return { limit_requests: await listLimitRequests(ctx.pool, accountId) };
    },
  );

  for (const decision of ['approve', 'reject'] as const) {
    app.post(
      `/v1/accounts/:id/limit-requests/:rid/${decision}`,
      {
        onRequest: ctx.keys.allow('admin'),
        schema: {
          summary: decision === 'approve' ? 'Approve a limit increase request: the limit becomes the requested one (admin)' : 'Reject a limit increase request (admin)',
          description: `Idempotent: ${decision === 'approve' ? 'approving' : 'rejecting'} the same request again answers it as decided, `
            + `with Idempotent-Replayed: true, and changes nothing; a request decided the other way answers 409 LIMIT_REQUEST_DECIDED. ${HISTORY}`,
          tags: ['accounts'],
          params: LimitRequestParams,
          body: LimitDecisionInput,
          response: { 200: LimitRequest, ...errorResponses(400, 401, 403, 404, 409, 503) },
        },
      },
      async (req, reply) => {
        try {
          const { request, replayed } = await decideLimitRequest(ctx.ledger, {
            accountId: req.params.id, requestId: req.params.rid, decision, decidedBy: 'admin', note: req.body?.note,
          });
          if (replayed) void reply.header('idempotent-replayed', 'true');
          // The gate's cached limits go, so that the next authorization reads the new one; were Redis
          // down, they expire on their own within a minute (GATE_CONFIG_TTL_SECONDS).
          else if (decision === 'approve') await ctx.cache.gate.forgetConfig(request.account_id).catch(() => undefined);
          return request;
        } catch (e) {
          if (e instanceof LimitRequestNotFoundError) throw new ApiError(404, 'LIMIT_REQUEST_NOT_FOUND', e.message);
          if (e instanceof LimitRequestDecidedError) throw new ApiError(409, 'LIMIT_REQUEST_DECIDED', e.message);
          throw e;
        }
      },
    );
  }
};
