import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AccountLimits, AccountLimitsInput, AccountParams, formatMicros, toMicros } from '@meterstream/schemas';
import { loadSpentThisMonth, monthOf } from '@meterstream/ledger/account-state';
import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import {
  AlertAboveLimitError, getAccountLimits, setAccountLimits, type AccountLimitsRecord,
} from '@meterstream/platform/stores/account-limits';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const money = (v: bigint | null) => (v === null ? null : formatMicros(v));
const micros = (v: string | null) => (v === null ? null : toMicros(v));

function toLimits(l: AccountLimitsRecord, spent: bigint, nowMs: number): AccountLimits {
  return {
    account_id: l.accountId, currency: l.currency, billing_mode: l.billingMode,
    low_balance_threshold: money(l.lowBalanceThreshold), spend_alert_threshold: money(l.spendAlertThreshold),
    allowed_limit: money(l.allowedLimit), monthly_limit: money(l.monthlyLimit),
    effective: {
      low_balance_threshold: formatMicros(l.effectiveLowBalanceThreshold), spend_alert_threshold: money(l.spendAlertThreshold),
      allowed_limit: money(l.allowedLimit), monthly_limit: money(l.effectiveMonthlyLimit),
    },
    month: monthOf(nowMs),
    spent_this_month: formatMicros(spent),
    remaining_this_month: l.allowedLimit === null ? null : formatMicros(l.allowedLimit > spent ? l.allowedLimit - spent : 0n),
  };
}

const WHO = 'Who may call it: its x-access policy (docs/api.md).';
const ALERTS = 'Alerts fire once per crossing (README, "Notifications"): balance.low under low_balance_threshold and balance.zero at zero '
  + '(prepaid), spend.alert_threshold and spend.limit_reached once a month. Changing a setting re-arms its alert.';

/** The account's alert thresholds and spending limits (seeds 000, 001, 004). */
export const limitRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  const answer = async (l: AccountLimitsRecord) => {
    const nowMs = ctx.ledger.now();
    return toLimits(l, await loadSpentThisMonth(ctx.pool, l.accountId, nowMs), nowMs);
  };

  app.get(
    '/v1/accounts/:id/limits',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: "The account's thresholds and limits, those in effect, and the month's spend against them",
        description: `${WHO} ${ALERTS}`,
        tags: ['accounts'],
        params: AccountParams,
        response: { 200: AccountLimits, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const limits = await getAccountLimits(ctx.pool, req.params.id);
      if (!limits) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      return answer(limits);
    },
  );

  app.put(
    '/v1/accounts/:id/limits',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Set the low-balance threshold, spending alert threshold, allowed limit and (postpaid) monthly limit',
        description: `${WHO} The whole set at once: an omitted or null setting is the plan's default (low balance, monthly limit) or none. `
          + 'spend_alert_threshold above allowed_limit is a 400; monthly_limit on a prepaid account is a 400. ' + ALERTS,
        tags: ['accounts'],
        params: AccountParams,
        body: AccountLimitsInput,
        response: { 200: AccountLimits, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const accountId = req.params.id;
      const b = req.body;
      if (b.monthly_limit !== null) {
        const current = await getAccountLimits(ctx.pool, accountId);
        if (!current) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`);
        if (current.billingMode !== 'postpaid') throw new ApiError(400, 'VALIDATION_ERROR', 'monthly_limit is for postpaid accounts only');
      }
      try {
        const limits = await setAccountLimits(ctx.pool, accountId, {
          lowBalanceThreshold: micros(b.low_balance_threshold), spendAlertThreshold: micros(b.spend_alert_threshold),
          allowedLimit: micros(b.allowed_limit), monthlyLimit: micros(b.monthly_limit),
        });
        // The gate caches limits for seconds: the new ones apply from the next authorization.
        await ctx.cache.gate.forgetConfig(accountId).catch((e: unknown) => req.log.warn({ err: e, accountId }, 'could not drop the gate config; it expires on its own'));
        return await answer(limits);
      } catch (e) {
        if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
        if (e instanceof AlertAboveLimitError) throw new ApiError(400, 'VALIDATION_ERROR', e.message);
        throw e;
      }
    },
  );
};
