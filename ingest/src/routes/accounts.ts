import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { Account, AccountCreated, AccountInput, AccountParams, Grant, GrantInput, IdempotencyKey } from '@meterstream/schemas';
import { addGrant, IdempotencyConflictError } from '@meterstream/ledger/commands/add-grant';
import { openAccount, PlanMismatchError, PlanNotFoundError } from '@meterstream/ledger/commands/open-account';
import { AccountNotFoundError, type AccountRecord } from '@meterstream/platform/stores/accounts';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

// Loose: the validated headers replace the request's, which must keep the others.
const GrantHeaders = z.looseObject({
  'idempotency-key': IdempotencyKey.describe('required: the caller\'s key for this grant, unique per account; a retry sends the same key'),
});

const toAccount = (a: AccountRecord): Account => ({
  id: a.id, email: a.email, currency: a.currency, billing_mode: a.billingMode, plan_id: a.planId, billing_anchor_day: a.billingAnchorDay,
  created_at: a.createdAt.toISOString(), closed_at: a.closedAt?.toISOString() ?? null,
});

export const accountRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.post(
    '/v1/accounts',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: 'Create an account and its API key (admin)',
        tags: ['accounts'],
        body: AccountInput,
        description:
          "The account gets its plan's signup gift (a grant of kind gift expiring the plan's validity days after creation) " +
          'once per email address, trimmed and lower-cased: an address that had it, also on a closed account, gets none.',
        response: { 201: AccountCreated, ...errorResponses(400, 401, 403) },
      },
    },
    async (req, reply) => {
      const { email, currency, billing_mode, plan_id, billing_anchor_day } = req.body;
      try {
        // The account, its first key and its gift commit together: an account nobody can reach is never left behind.
        const opened = await openAccount(ctx.ledger, {
          email, currency, billingMode: billing_mode, ...(plan_id === undefined ? {} : { planId: plan_id }),
          ...(billing_anchor_day === undefined ? {} : { billingAnchorDay: billing_anchor_day }), tombstoneKey: ctx.config.EMAIL_TOMBSTONE_KEY,
        });
        return reply.code(201).send({ ...toAccount(opened.account), api_key: opened.apiKey, signup_gift: opened.signupGift });
      } catch (e) {
        if (e instanceof PlanNotFoundError) throw new ApiError(400, 'PLAN_NOT_FOUND', e.message);
        if (e instanceof PlanMismatchError) throw new ApiError(400, 'PLAN_MISMATCH', e.message);
        throw e;
      }
    },
  );

  app.delete(
    '/v1/accounts/:id',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: 'Close an account (admin)',
        description:
          'The account can no longer be used: its keys stop working on every instance at once, and the rater dead-letters its ' +
          'events (UNKNOWN_ACCOUNT). Its balance, grants and transactions stay readable with the admin key, and its email keeps ' +
          'its tombstone, so a new account with that address gets no second signup gift. Idempotent: closing a closed account ' +
          'answers it as it was closed.',
        tags: ['accounts'],
        params: AccountParams,
        response: { 200: Account, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      try {
        return toAccount(await ctx.keys.closeAccount(req.params.id));
      } catch (e) {
        if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
        throw e;
      }
    },
  );

  app.post(
    '/v1/accounts/:id/grants',
    {
      onRequest: ctx.keys.allow('admin'),
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
