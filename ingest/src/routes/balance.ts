import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { AccountParams, Balance, formatMicros } from '@meterstream/schemas';
import { balanceAt, loadSpentThisMonth, monthOf, type AccountState } from '@meterstream/ledger/account-state';
import { GIFT_EXPIRING_WITHIN_MS } from '@meterstream/ledger/commands/notify-expiring-gifts';
import { pendingTopUps } from '@meterstream/platform/stores/top-ups';
import { heldAmount } from '@meterstream/platform/stores/holds';
import type { Pool } from '@meterstream/platform/postgres';
import { ApiError, errorResponses, outageOf } from '../errors.js';
import type { RouteContext } from './context.js';


/** What the account can spend now: grants expired since the state was cached no longer count. */
export function toBalance(state: AccountState, source: Balance['source'], nowMs: number): Omit<Balance, 'spent_this_month' | 'pending_top_ups' | 'held' | 'spendable' | 'suspended'> {
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
      expiring_soon: g.kind === 'gift' && g.expiresAt !== null && g.expiresAt - nowMs <= GIFT_EXPIRING_WITHIN_MS,
    })),
    ledger_seq: Number(state.ledgerSeq),
    source,
  };
}

/** Whether the account is suspended now, with the reason of its latest suspension entry (invoicer/src/dunning.ts). */
async function suspensionOf(pool: Pool, accountId: string): Promise<Balance['suspended']> {
  const r = await pool.query<{ suspended_at: Date | null; reason: string | null }>(
    `SELECT a.suspended_at, (SELECT e.reason FROM ledger_entries e WHERE e.account_id = a.id AND e.kind = 'suspension' ORDER BY e.seq DESC LIMIT 1) AS reason
     FROM accounts a WHERE a.id = $1`, [accountId]);
  const row = r.rows[0];
  return row?.suspended_at ? { since: row.suspended_at.toISOString(), reason: row.reason } : null;
}

export const balanceRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.get(
    '/v1/accounts/:id/balance',
    {
      onRequest: ctx.keys.allow('billing:read'),
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
      const nowMs = ctx.ledger.now();
      // The month's spend is not in the cached state: a primary-key read beside it (null when Postgres is down).
      const [found, spent, pending, held, suspended] = await Promise.all([
        ctx.cache.readThrough(ctx.pool, req.params.id, nowMs),
        loadSpentThisMonth(ctx.pool, req.params.id, nowMs).catch((e: unknown) => {
          if (outageOf(e)) return null;
          throw e;
        }),
        // Nor are the Checkout top-ups still pending (null when Postgres is down).
        pendingTopUps(ctx.pool, req.params.id).catch((e: unknown) => {
          if (outageOf(e)) return null;
          throw e;
        }),
        // The gate's open holds: Postgres is their truth, Redis's copy serves while it is down.
        heldAmount(ctx.pool, req.params.id, new Date(nowMs)).catch((e: unknown) => {
          if (outageOf(e)) return ctx.cache.gate.heldAt(req.params.id, nowMs);
          throw e;
        }),
        // Nor is a suspension (null when Postgres is down).
        suspensionOf(ctx.pool, req.params.id).catch((e: unknown) => {
          if (outageOf(e)) return null;
          throw e;
        }),
      ]);
      if (!found) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      const balance = toBalance(found.state, found.source, nowMs);
      return {
        ...balance, held: formatMicros(held), spendable: formatMicros(balanceAt(found.state, nowMs) - held), spent_this_month: spent === null ? null : formatMicros(spent),
        pending_top_ups: pending && pending.map((t) => ({ id: t.id, amount: formatMicros(t.amount), created_at: t.createdAt.toISOString(), checkout_url: t.checkoutUrl })),
        suspended,
      };
    },
  );
};
