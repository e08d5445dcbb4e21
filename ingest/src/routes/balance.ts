import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AccountParams, Balance, formatMicros } from '@meterstream/schemas';
import { balanceAt, monthOf, type AccountState } from '@meterstream/ledger/account-state';
import { assertCanAccess } from '../auth.js';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

/** How close to its expiry a gift is flagged expiring_soon. */
export const GIFT_EXPIRING_SOON_MS = 24 * 3_600_000;

/** What the account can spend now: grants expired since the state was cached no longer count. */
export function toBalance(state: AccountState, source: Balance['source'], nowMs: number): Balance {
  const live = state.grants.filter((g) => g.expiresAt === null || g.expiresAt > nowMs);
  return {
    account_id: state.id,
    currency: state.currency,
    billing_mode: state.billingMode,
    balance: formatMicros(balanceAt(state, nowMs)),
    overdraft: formatMicros(state.overdraft),
    // The cached state may have been built last month; its postpaid sum then belongs to that month.
    postpaid_accrued_this_month: formatMicros(state.postpaidMonth === monthOf(nowMs) ? state.postpaidAmount : 0n),
    grants: live.map((g) => ({
      id: g.id,
      kind: g.kind,
      remaining: formatMicros(g.remaining),
      expires_at: g.expiresAt === null ? null : new Date(g.expiresAt).toISOString(),
      priority: g.priority,
      expiring_soon: g.kind === 'gift' && g.expiresAt !== null && g.expiresAt - nowMs <= GIFT_EXPIRING_SOON_MS,
    })),
    ledger_seq: Number(state.ledgerSeq),
    source,
  };
}

export const balanceRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.get(
    '/v1/accounts/:id/balance',
    {
      onRequest: ctx.keys.authenticate,
      schema: {
        summary: 'Current balance: unexpired grants in burn order, overdraft, postpaid usage this month',
        description:
          'From the Redis cache when it is as new as the ledger in Postgres, otherwise (cache missing, behind, or Redis down) ' +
          'from Postgres; `source` says which. 503 only when Postgres is down and Redis holds nothing for the account.',
        tags: ['accounts'],
        params: AccountParams,
        response: { 200: Balance, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      assertCanAccess(req.principal, req.params.id);
      const found = await ctx.cache.readThrough(ctx.pool, req.params.id);
      if (!found) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      return toBalance(found.state, found.source, ctx.ledger.now());
    },
  );
};
