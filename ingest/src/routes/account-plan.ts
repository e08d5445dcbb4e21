import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AccountParams, AccountPlan, AccountPlanInput, BillingAnchorInput, IdempotencyKey } from '@meterstream/schemas';
import {
  AccountNotFoundError, changePlan, IdempotencyConflictError, PlanChangeRefusedError, PlanNotFoundError,
} from '@meterstream/ledger/commands/change-plan';
import { addMonths, periodAt, periodStart } from '@meterstream/ledger/core/months';
import { getAccountPlan, setBillingAnchorDay, type AccountPlanRecord } from '@meterstream/platform/stores/plans';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

// Loose: the validated headers replace the request's, which must keep the others.
const ChangeHeaders = z.looseObject({
  'idempotency-key': IdempotencyKey.describe("required: the caller's key for this change, unique per account; a retry sends the same key"),
});

/** The account's plan state, with its period at `nowMs`. */
export function toAccountPlan(a: AccountPlanRecord, nowMs: number): AccountPlan {
  const period = periodAt(nowMs, a.billingAnchorDay);
  return {
    account_id: a.accountId, plan_id: a.planId, plan_since: a.planSince?.toISOString() ?? null,
    pending_plan_id: a.pendingPlanId, pending_plan_at: a.pendingPlanAt?.toISOString() ?? null, billing_anchor_day: a.billingAnchorDay,
    period: {
      id: period,
      starts_at: new Date(periodStart(period, a.billingAnchorDay)).toISOString(),
      ends_at: new Date(periodStart(addMonths(period, 1), a.billingAnchorDay)).toISOString(),
    },
  };
}

const notFound = (id: string) => new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${id} does not exist`);

export const accountPlanRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.get(
    '/v1/accounts/:id/plan',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: "The account's plan, a pending plan change and the current period",
        tags: ['plans'],
        params: AccountParams,
        response: { 200: AccountPlan, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const account = await getAccountPlan(ctx.pool, req.params.id);
      if (!account) throw notFound(req.params.id);
      return toAccountPlan(account, ctx.ledger.now());
    },
  );

  app.put(
    '/v1/accounts/:id/plan',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      // Before the schema, so that a missing key gets its own code rather than a validation message.
      preValidation: async (req) => {
        if (req.headers['idempotency-key'] === undefined) {
          throw new ApiError(400, 'IDEMPOTENCY_KEY_REQUIRED', 'send an Idempotency-Key header: a retry with the same key changes the plan once');
        }
      },
      schema: {
        summary: 'Change the plan from the next period on',
        description:
          "The account moves to the plan at the start of its next period (its billing anchor day, 00:00 UTC): from then the new plan's " +
          'allowance, add-on prices and settings apply; the current period stays as it is. The change is in the history at once (a ' +
          'transaction of kind plan_change, amount 0) and notified (plan.changed). Naming the current plan cancels a pending change. ' +
          'The plan must have the account\'s currency (400 PLAN_MISMATCH) and billing mode (400 BILLING_MODE_CHANGE: balance, ' +
          'overdraft, limits and invoices are kept per mode) and offer every add-on the account has active or suspended ' +
          '(400 ADDON_NOT_OFFERED). Idempotent by the Idempotency-Key header: a retry answers the account as it stands, with ' +
          'Idempotent-Replayed: true; the same key for another plan answers 409 IDEMPOTENCY_KEY_REUSED.',
        tags: ['plans'],
        params: AccountParams,
        headers: ChangeHeaders,
        body: AccountPlanInput,
        response: { 200: AccountPlan, ...errorResponses(400, 401, 403, 404, 409) },
      },
    },
    async (req, reply) => {
      try {
        const { account, replayed } = await changePlan(ctx.ledger, {
          accountId: req.params.id, planId: req.body.plan_id, idempotencyKey: req.headers['idempotency-key'],
        });
        if (replayed) void reply.header('idempotent-replayed', 'true');
        return toAccountPlan(account, ctx.ledger.now());
      } catch (e) {
        if (e instanceof AccountNotFoundError) throw notFound(req.params.id);
        if (e instanceof PlanNotFoundError) throw new ApiError(400, 'PLAN_NOT_FOUND', e.message);
        if (e instanceof PlanChangeRefusedError) throw new ApiError(400, e.code, e.message);
        if (e instanceof IdempotencyConflictError) throw new ApiError(409, 'IDEMPOTENCY_KEY_REUSED', e.message);
        throw e;
      }
    },
  );

  app.put(
    '/v1/accounts/:id/billing-anchor-day',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Set the day of the month the account\'s periods start on',
        description:
          'Periods (the monthly allowance, add-on charges, a plan change) start on this day, 00:00 UTC (1 to 28; 1 by default: ' +
          'calendar months). A period is named by the month it starts in, and each is granted and charged once, so moving the ' +
          'day never grants or charges a month twice: the next period start under the new day whose month was not granted yet ' +
          'is the next grant. Grants made before keep their expiry.',
        tags: ['plans'],
        params: AccountParams,
        body: BillingAnchorInput,
        response: { 200: AccountPlan, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const account = await setBillingAnchorDay(ctx.pool, req.params.id, req.body.billing_anchor_day);
      if (!account) throw notFound(req.params.id);
      return toAccountPlan(account, ctx.ledger.now());
    },
  );
};
