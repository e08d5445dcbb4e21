import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { formatMicros, Price, PriceInput, PriceList, PriceParams, PriceQuery } from '@meterstream/schemas';
import { priceSetting, searchPrices, upsertPrice, type PriceRecord } from '@meterstream/platform/stores/prices';
import { errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';

const toPrice = (p: PriceRecord): Price => ({
  product: p.product, currency: p.currency, unit: p.unit, unit_price: formatMicros(p.unitPrice),
  per: Number(p.per), updated_at: p.updatedAt.toISOString(),
});

export const priceRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  app.put(
    '/v1/prices/:product',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: 'Set the price of a product in one currency (admin)',
        tags: ['prices'],
        params: PriceParams,
        body: PriceInput,
        response: { 200: Price, ...errorResponses(400, 401, 403) },
      },
    },
    async (req) => toPrice(await upsertPrice(ctx.pool, req.params.product, priceSetting(req.body))),
  );

  app.get(
    '/v1/prices',
    {
      onRequest: ctx.keys.allow('any key'),
      schema: {
        summary: 'The price list, searchable by product',
        tags: ['prices'],
        querystring: PriceQuery,
        response: { 200: PriceList, ...errorResponses(400, 401) },
      },
    },
    async (req) => ({ prices: (await searchPrices(ctx.pool, req.query)).map(toPrice) }),
  );
};
