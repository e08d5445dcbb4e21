import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Currency, formatMicros, Id, MoneyString } from '@meterstream/schemas';
import { assertCanAccess } from '../auth.js';
import { NO_SINK_CLICKHOUSE } from '../config.js';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const DAY_MS = 86_400_000;
const SUMMARY_DAYS = 30;
const SERIES_DAYS = 7;

const IsoDate = z.string().describe('UTC date, YYYY-MM-DD');

const UsageSummary = z.object({
  account_id: z.string(),
  currency: Currency,
  period: z.object({ from: IsoDate, to: IsoDate }).describe(`the last ${SUMMARY_DAYS} UTC days, today included`),
  totals: z.object({ events: z.number().int(), amount: MoneyString }),
  products: z
    .array(z.object({ product: z.string(), events: z.number().int(), quantity: MoneyString, amount: MoneyString }))
    .describe('period totals per product, highest amount first'),
  daily: z
    .array(z.object({ date: IsoDate, events: z.number().int(), amount: MoneyString }))
    .describe(`the last ${SERIES_DAYS} UTC days, oldest first, days without usage included as zero`),
});

interface DayProductRow {
  date: string;
  product: string;
  events: string;
  quantity: string;
  amount: string;
}

const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/** Folds (day, product) sums into the summary; money stays bigint micros until formatted. */
function summarize(rows: readonly DayProductRow[], todayMs: number) {
  const products = new Map<string, { events: bigint; quantity: bigint; amount: bigint }>();
  const days = new Map<string, { events: bigint; amount: bigint }>();
  const totals = { events: 0n, amount: 0n };
  for (const r of rows) {
    const [events, quantity, amount] = [BigInt(r.events), BigInt(r.quantity), BigInt(r.amount)];
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

export const usageSummaryRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.post(
    '/v1/credits/projections/usage-summary',
    {
      onRequest: ctx.keys.authenticate,
      schema: {
        summary: `${SUMMARY_DAYS}-day usage totals, per-product breakdown and a ${SERIES_DAYS}-day daily series`,
        tags: ['usage'],
        body: z.object({ account_id: Id }),
        response: { 200: UsageSummary, ...errorResponses(400, 401, 403, 404, 503) },
      },
    },
    async (req) => {
      const accountId = req.body.account_id;
      assertCanAccess(req.principal, accountId);
      if (!ctx.ch) throw new ApiError(503, 'CLICKHOUSE_NOT_CONFIGURED', `usage summaries are not available from this process: ${NO_SINK_CLICKHOUSE}`);
      const account = await ctx.pool.query<{ currency: z.infer<typeof Currency> }>('SELECT currency FROM accounts WHERE id = $1', [accountId]);
      const currency = account.rows[0]?.currency;
      if (!currency) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`);

      const today = Math.floor(Date.now() / DAY_MS) * DAY_MS;
      const period = { from: isoDay(today - (SUMMARY_DAYS - 1) * DAY_MS), to: isoDay(today) };
      // usage_daily is computed from rated_events FINAL when read: each event counts once, however
      // often the sinks wrote it; the filter on account_id and day narrows the scan (see the migration).
      const result = await ctx.ch.query({
        query: `SELECT toString(day) AS date, product, toString(sum(events)) AS events,
                       toString(sum(quantity)) AS quantity, toString(sum(amount)) AS amount
                  FROM ${ctx.chDatabase}.usage_daily
                 WHERE account_id = {account:String} AND currency = {currency:String}
                   AND day BETWEEN {from:Date} AND {to:Date}
                 GROUP BY day, product`,
        query_params: { account: accountId, currency, ...period },
        format: 'JSONEachRow',
      });
      return { account_id: accountId, currency, period, ...summarize(await result.json<DayProductRow>(), today) };
    },
  );
};
