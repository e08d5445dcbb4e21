import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { Currency, formatMicros, Id, ID_MAX_LENGTH, Price, PriceInput, StorableString, toMicros } from '@meterstream/schemas';
import { errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

interface PriceRow {
  product: string;
  currency: Price['currency'];
  unit: Price['unit'];
  unit_price: bigint;
  per: bigint;
  updated_at: Date;
}

const COLUMNS = 'product, currency, unit, unit_price, per, updated_at';

const toPrice = (r: PriceRow): Price => ({
  product: r.product, currency: r.currency, unit: r.unit, unit_price: formatMicros(r.unit_price),
  per: Number(r.per), updated_at: r.updated_at.toISOString(),
});

const PriceQuery = z.object({
  q: StorableString.max(ID_MAX_LENGTH).optional().describe('case-insensitive substring of the product name'),
  currency: Currency.optional(),
});

/** LIKE treats % and _ as wildcards; a search for "gpt_4" means those characters literally. */
const likeLiteral = (s: string) => s.replace(/[\\%_]/g, (c) => `\\${c}`);

export const priceRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.put(
    '/v1/prices/:product',
    {
      onRequest: ctx.keys.requireAdmin,
      schema: {
        summary: 'Set the price of a product in one currency (admin)',
        tags: ['prices'],
        params: z.object({ product: Id }),
        body: PriceInput,
        response: { 200: Price, ...errorResponses(400, 401, 403) },
      },
    },
    async (req) => {
      const { unit, unit_price, per, currency } = req.body;
      const { rows } = await ctx.pool.query<PriceRow>(
        `INSERT INTO prices (product, currency, unit, unit_price, per) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (product, currency) DO UPDATE
           SET unit = EXCLUDED.unit, unit_price = EXCLUDED.unit_price, per = EXCLUDED.per, updated_at = now()
         RETURNING ${COLUMNS}`,
        [req.params.product, currency, unit, toMicros(unit_price), per],
      );
      return toPrice(rows[0]!);
    },
  );

  app.get(
    '/v1/prices',
    {
      onRequest: ctx.keys.authenticate,
      schema: {
        summary: 'The price list, searchable by product',
        tags: ['prices'],
        querystring: PriceQuery,
        response: { 200: z.object({ prices: z.array(Price) }), ...errorResponses(400, 401) },
      },
    },
    async (req) => {
      const { q, currency } = req.query;
      const { rows } = await ctx.pool.query<PriceRow>(
        `SELECT ${COLUMNS} FROM prices
          WHERE ($1::text IS NULL OR product ILIKE '%' || $1 || '%')
            AND ($2::text IS NULL OR currency = $2)
          ORDER BY product, currency`,
        [q === undefined ? null : likeLiteral(q), currency ?? null],
      );
      return { prices: rows.map(toPrice) };
    },
  );
};
