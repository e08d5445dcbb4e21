import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { formatMicros, Plan, PlanInput, PlanList, PlanParams, toMicros } from '@meterstream/schemas';
import { AddonInUseError, listPlans, PlanInUseError, upsertPlan, type PlanRecord, type PlanSettings } from '@meterstream/platform/stores/plans';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

// seed 001: a postpaid plan that names no limit gets $100 a month.
const DEFAULT_POSTPAID_LIMIT = '100';

function planSettings(id: string, p: PlanInput): PlanSettings {
  const limit = p.default_monthly_limit === undefined ? (p.billing_mode === 'postpaid' ? DEFAULT_POSTPAID_LIMIT : null) : p.default_monthly_limit;
  return {
    id, name: p.name, currency: p.currency, billingMode: p.billing_mode,
    signupGiftAmount: toMicros(p.signup_gift.amount), signupGiftValidityDays: p.signup_gift.validity_days,
    monthlyAllowanceAmount: toMicros(p.monthly_allowance.amount), allowanceRolloverMonths: p.monthly_allowance.rollover_months,
    defaultMonthlyLimit: limit === null ? null : toMicros(limit), lowBalanceThreshold: toMicros(p.low_balance_threshold),
    addons: p.addons.map((a) => ({ id: a.id, name: a.name, monthlyPrice: toMicros(a.monthly_price) })),
    addonShortfall: p.addon_shortfall,
    autoTopUp: { enabled: p.auto_top_up.enabled, amount: toMicros(p.auto_top_up.amount) },
    holdTtlSeconds: p.hold_ttl_seconds,
    provisionOnFirstUse: p.provision_on_first_use,
  };
}

const toPlan = (p: PlanRecord): Plan => ({
  id: p.id, name: p.name, currency: p.currency, billing_mode: p.billingMode,
  signup_gift: { amount: formatMicros(p.signupGiftAmount), validity_days: p.signupGiftValidityDays },
  monthly_allowance: { amount: formatMicros(p.monthlyAllowanceAmount), rollover_months: p.allowanceRolloverMonths },
  default_monthly_limit: p.defaultMonthlyLimit === null ? null : formatMicros(p.defaultMonthlyLimit),
  low_balance_threshold: formatMicros(p.lowBalanceThreshold),
  addons: p.addons.map((a) => ({ id: a.id, name: a.name, monthly_price: formatMicros(a.monthlyPrice) })),
  addon_shortfall: p.addonShortfall,
  auto_top_up: { enabled: p.autoTopUp.enabled, amount: formatMicros(p.autoTopUp.amount) },
  hold_ttl_seconds: p.holdTtlSeconds,
  provision_on_first_use: p.provisionOnFirstUse,
  created_at: p.createdAt.toISOString(), updated_at: p.updatedAt.toISOString(),
});

export const planRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.put(
    '/v1/plans/:id',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: 'Create or replace a plan (admin)',
        description:
          'What new accounts on the plan get: the signup gift (once per email address), the monthly allowance and its rollover, ' +
          'the default monthly limit (postpaid) and low-balance threshold, the add-ons it offers and their monthly price, what ' +
          'happens when credits do not cover an add-on (addon_shortfall), the auto top-up defaults and the hold TTL of the gate. ' +
          'Changes apply to what is granted or charged from now on, never to grants already made. The currency and billing mode ' +
          'of a plan with accounts cannot change (409 PLAN_IN_USE); an add-on active or suspended on an account on the plan, or ' +
          'moving to it, cannot be removed (409 ADDON_IN_USE).',
        tags: ['plans'],
        params: PlanParams,
        body: PlanInput,
        response: { 200: Plan, 201: Plan, ...errorResponses(400, 401, 403, 409) },
      },
    },
    async (req, reply) => {
      try {
        const { plan, created } = await upsertPlan(ctx.pool, planSettings(req.params.id, req.body));
        return reply.code(created ? 201 : 200).send(toPlan(plan));
      } catch (e) {
        if (e instanceof PlanInUseError) throw new ApiError(409, 'PLAN_IN_USE', e.message);
        if (e instanceof AddonInUseError) throw new ApiError(409, 'ADDON_IN_USE', e.message);
        throw e;
      }
    },
  );

  app.get(
    '/v1/plans',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: 'Every plan, by id (admin)',
        tags: ['plans'],
        response: { 200: PlanList, ...errorResponses(401, 403) },
      },
    },
    async () => ({ plans: (await listPlans(ctx.pool)).map(toPlan) }),
  );
};
