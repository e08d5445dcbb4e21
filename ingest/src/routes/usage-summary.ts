import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { formatMicros, SERIES_DAYS, SUMMARY_DAYS, UsageSummary, UsageSummaryRequest } from '@meterstream/schemas';
import { getAccount } from '@meterstream/platform/stores/accounts';
import { dailyUsage, workspaceUsage, type DailyUsage, type WorkspaceUsage } from '@meterstream/platform/stores/usage-analytics';
import { workspacesById, type WorkspaceRecord } from '@meterstream/platform/stores/workspaces';
import { NO_SINK_CLICKHOUSE } from '../config.js';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const DAY_MS = 86_400_000;

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** Folds (day, product) sums into the summary; money stays bigint micros until formatted. */
function summarize(rows: readonly DailyUsage[], todayMs: number) {
  const products = new Map<string, { events: bigint; quantity: bigint; amount: bigint }>();
  const days = new Map<string, { events: bigint; amount: bigint }>();
  const totals = { events: 0n, amount: 0n };
  for (const r of rows) {
    const { events, quantity, amount } = r;
    const p = products.get(r.product) ?? { events: 0n, quantity: 0n, amount: 0n };
    products.set(r.product, { events: p.events + events, quantity: p.quantity + quantity, amount: p.amount + amount });
    const d = days.get(r.date) ?? { events: 0n, amount: 0n };
    days.set(r.date, { events: d.events + events, amount: d.amount + amount });
    totals.events += events;
    totals.amount += amount;
  }
  const byAmount = [...products].sort(([pa, a], [pb, b]) => (a.amount === b.amount ? pa.localeCompare(pb) : a.amount > b.amount ? -1 : 1));
  return {
    totals: { events: Number(totals.events), amount: formatMicros(totals.amount) },
    products: byAmount.map(([product, p]) => ({
      product, events: Number(p.events), quantity: formatMicros(p.quantity), amount: formatMicros(p.amount),
    })),
    daily: Array.from({ length: SERIES_DAYS }, (_, i) => {
      const date = isoDay(todayMs - (SERIES_DAYS - 1 - i) * DAY_MS);
      const d = days.get(date);
      return { date, events: Number(d?.events ?? 0n), amount: formatMicros(d?.amount ?? 0n) };
    }),
  };
}

/** The per-workspace breakdown, named from Postgres (deleted workspaces included), highest amount first. */
function byWorkspace(rows: readonly WorkspaceUsage[], named: ReadonlyMap<string, WorkspaceRecord>) {
  return [...rows]
    .sort((a, b) => (a.amount === b.amount ? a.workspace_id.localeCompare(b.workspace_id) : a.amount > b.amount ? -1 : 1))
    .map((r) => {
      const w = r.workspace_id === '' ? undefined : named.get(r.workspace_id);
      return {
        workspace_id: r.workspace_id === '' ? null : r.workspace_id, name: w?.name ?? null, deleted: w?.deletedAt != null,
        events: Number(r.events), amount: formatMicros(r.amount),
      };
    });
}

export const usageSummaryRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.post(
    '/v1/credits/projections/usage-summary',
    {
      onRequest: ctx.keys.allow('billing:read', { account: 'handler' }),
      schema: {
        summary: `${SUMMARY_DAYS}-day usage totals, per-product breakdown and a ${SERIES_DAYS}-day daily series`,
        tags: ['usage'],
        body: UsageSummaryRequest,
        response: { 200: UsageSummary, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const accountId = req.body.account_id;
      await ctx.keys.assertAccount(req, accountId);
      if (!ctx.ch) throw new ApiError(503, 'CLICKHOUSE_NOT_CONFIGURED', `usage summaries are not available from this process: ${NO_SINK_CLICKHOUSE}`);
      const currency = (await getAccount(ctx.pool, accountId))?.currency;
      if (!currency) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`);

      const today = Math.floor(ctx.ledger.now() / DAY_MS) * DAY_MS;
      const period = { from: isoDay(today - (SUMMARY_DAYS - 1) * DAY_MS), to: isoDay(today) };
      const params = { account: accountId, currency, ...period };
      const [rows, workspaces] = await Promise.all([dailyUsage(ctx.ch, ctx.chDatabase, params), workspaceUsage(ctx.ch, ctx.chDatabase, params)]);
      const named = await workspacesById(ctx.pool, accountId, workspaces.map((w) => w.workspace_id).filter((id) => id !== ''));
      return { account_id: accountId, currency, period, ...summarize(rows, today), workspaces: byWorkspace(workspaces, named) };
    },
  );
};
