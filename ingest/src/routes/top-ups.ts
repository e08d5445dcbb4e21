import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { AccountParams, formatMicros, IdempotencyKey, PaymentMethodSetup, toMicros, TopUp, TopUpInput, TopUpList } from '@meterstream/schemas';
import { AccountNotFoundError, IdempotencyConflictError, startTopUp } from '@meterstream/ledger/commands/start-top-up';
import { startCardSetup } from '@meterstream/ledger/commands/start-card-setup';
import { billingProfile } from '@meterstream/platform/stores/payments';
import { listTopUps, type TopUpRecord } from '@meterstream/platform/stores/top-ups';
import { MICROS_PER_CENT, stripeFailure, stripeFromConfig } from '@meterstream/platform/stripe';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';


export const notConfigured = (what: string) => new ApiError(503, 'STRIPE_NOT_CONFIGURED', `${what} needs Stripe: set ${what === 'the Stripe webhook' ? 'STRIPE_WEBHOOK_SECRET and ' : ''}STRIPE_SECRET_KEY`);

/** A Stripe error as our answer: 503 while Stripe cannot serve (retry), 502 when it refused the request. */
export function fromStripe(e: unknown): never {
  const failure = stripeFailure(e);
  if (failure === 'unavailable') throw new ApiError(503, 'STRIPE_UNAVAILABLE', `Stripe is unavailable; retry later (${(e as Error).message})`);
  if (failure === 'refused') throw new ApiError(502, 'STRIPE_REFUSED', `Stripe refused the request: ${(e as Error).message}`);
  throw e;
}

export const toTopUp = (t: TopUpRecord): TopUp => ({
  id: t.id, account_id: t.accountId, amount: formatMicros(t.amount), currency: t.currency, state: t.state, checkout_url: t.checkoutUrl,
  grant_id: t.grantId, created_at: t.createdAt.toISOString(), settled_at: t.settledAt?.toISOString() ?? null,
});

// Loose: the validated headers replace the request's, which must keep the others.
const TopUpHeaders = z.looseObject({
  'idempotency-key': IdempotencyKey.describe("required: the caller's key for this top-up, unique per account; a retry sends the same key"),
});

/**
 * Buying credits through Stripe Checkout (seed 004) and saving a card (seed 001). The credits
 * come later, with Stripe's webhook (stripe-webhook.ts).
 */
export const topUpRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  const stripe = stripeFromConfig(ctx.config);
  const presets = ctx.config.TOP_UP_PRESETS.split(',').map((p) => formatMicros(toMicros(p)));
  const minimum = toMicros(ctx.config.TOP_UP_MIN_AMOUNT);
  const failed = (e: unknown): never => {
    if (e instanceof AccountNotFoundError) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', e.message);
    return fromStripe(e);
  };

  app.get(
    '/v1/accounts/:id/top-ups',
    {
      onRequest: ctx.keys.allow('billing:read'),
      schema: {
        summary: "The top-up presets and minimum in the account's currency, and its latest top-ups",
        description: 'For the page that offers top-ups: its buttons, and what became of earlier top-ups.',
        tags: ['payments'],
        params: AccountParams,
        response: { 200: TopUpList, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const profile = await billingProfile(ctx.pool, req.params.id);
      if (!profile) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${req.params.id} does not exist`);
      const topUps = await listTopUps(ctx.pool, req.params.id, 100);
      return { currency: profile.currency, presets, minimum: formatMicros(minimum), top_ups: topUps.map(toTopUp) };
    },
  );

  app.post(
    '/v1/accounts/:id/top-ups',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      // Before the schema, so that a missing key gets its own code rather than a validation message.
      preValidation: async (req) => {
        if (req.headers['idempotency-key'] === undefined) {
          throw new ApiError(400, 'IDEMPOTENCY_KEY_REQUIRED', 'send an Idempotency-Key header: a retry with the same key gets the same top-up and Checkout page');
        }
      },
      schema: {
        summary: 'Buy credits: a Stripe Checkout page for a preset or custom amount',
        description:
          'Creates a pending top-up and a Stripe Checkout session (payment mode) for it; send the buyer to checkout_url. ' +
          'The top-up shows in the balance (pending_top_ups) until Stripe reports the payment, then its credits are granted once ' +
          '(kind purchased, never expiring, paying an overdraft off first). Idempotent by the Idempotency-Key header: the same key and ' +
          'amount answer the same top-up with Idempotent-Replayed: true; the same key with another amount answers 409 IDEMPOTENCY_KEY_REUSED.',
        tags: ['payments'],
        params: AccountParams,
        headers: TopUpHeaders,
        body: TopUpInput,
        response: { 201: TopUp, ...errorResponses(400, 401, 403, 404, 409, 502, 503) },
      },
    },
    async (req, reply) => {
      const amount = toMicros(req.body.amount);
      if (amount < minimum || amount % MICROS_PER_CENT !== 0n) {
        throw new ApiError(400, 'INVALID_TOP_UP_AMOUNT', `a top-up is at least ${formatMicros(minimum)} and a whole number of cents; got ${req.body.amount}`);
      }
      if (!stripe) throw notConfigured('a top-up');
      try {
        const { topUp, replayed } = await startTopUp({ pool: ctx.pool, stripe, now: ctx.ledger.now }, {
          accountId: req.params.id, amount, idempotencyKey: req.headers['idempotency-key'],
          successUrl: ctx.config.CHECKOUT_SUCCESS_URL, cancelUrl: ctx.config.CHECKOUT_CANCEL_URL,
        });
        if (replayed) void reply.header('idempotent-replayed', 'true');
        return reply.code(201).send(toTopUp(topUp));
      } catch (e) {
        if (e instanceof IdempotencyConflictError) throw new ApiError(409, 'IDEMPOTENCY_KEY_REUSED', e.message);
        return failed(e);
      }
    },
  );

  app.post(
    '/v1/accounts/:id/payment-methods/setup',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Save a card: a Stripe Checkout page (setup mode)',
        description:
          "Once the buyer completes the page, Stripe's webhook makes the card the account's default payment method " +
          '(the one the card-required refusal looks for, and the one automatic charges use).',
        tags: ['payments'],
        params: AccountParams,
        response: { 201: PaymentMethodSetup, ...errorResponses(400, 401, 403, 404, 502, 503) },
      },
    },
    async (req, reply) => {
      if (!stripe) throw notConfigured('saving a card');
      try {
        const setup = await startCardSetup({ pool: ctx.pool, stripe }, {
          accountId: req.params.id, successUrl: ctx.config.CHECKOUT_SUCCESS_URL, cancelUrl: ctx.config.CHECKOUT_CANCEL_URL,
        });
        return reply.code(201).send({ checkout_url: setup.checkoutUrl, payment_method: setup.paymentMethod });
      } catch (e) {
        return failed(e);
      }
    },
  );
};
