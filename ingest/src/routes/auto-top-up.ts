import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import {
  AccountParams, AutoTopUpInput, AutoTopUpSettings, formatMicros, PaymentParams, Refund, RefundInput, toMicros,
} from '@meterstream/schemas';
import { PaymentNotFoundError, refundPayment } from '@meterstream/ledger/commands/refund-payment';
import { getAutoTopUpSettings, putAutoTopUpSettings, type AutoTopUpSettingsRecord, type RefundRecord } from '@meterstream/platform/stores/auto-top-ups';
import { MICROS_PER_CENT } from '@meterstream/platform/stripe';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';
import { fromStripe, notConfigured } from './top-ups.js';
import { stripeFromConfig } from '@meterstream/platform/stripe';

const toSettings = (s: AutoTopUpSettingsRecord): AutoTopUpSettings => ({
  account_id: s.accountId, enabled: s.enabled, amount: formatMicros(s.amount), currency: s.currency, threshold: formatMicros(s.threshold),
  daily_max_count: s.dailyMaxCount, daily_max_amount: formatMicros(s.dailyMaxAmount), consecutive_failures: s.consecutiveFailures,
  disabled_reason: s.disabledReason, has_payment_method: s.hasPaymentMethod,
  today: { count: s.todayCount, amount: formatMicros(s.todayAmount) }, in_flight: s.inFlight,
});

const toRefund = (r: RefundRecord): Refund => ({
  id: r.id, payment_id: r.paymentId, account_id: r.accountId, currency: r.currency, amount_refunded: formatMicros(r.amount),
  credits_reversed: formatMicros(r.creditsReversed), credits_kept: formatMicros(r.creditsKept), state: r.state,
  stripe_refund_id: r.stripeRefundId, created_at: r.createdAt.toISOString(),
});

/** Automatic top-ups (seed 003) and refunds of payments. */
export const autoTopUpRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  const stripe = stripeFromConfig(ctx.config);
  const minimum = toMicros(ctx.config.TOP_UP_MIN_AMOUNT);

  const settings = async (accountId: string) => {
    const s = await getAutoTopUpSettings(ctx.pool, accountId, ctx.ledger.now());
    if (!s) throw new ApiError(404, 'ACCOUNT_NOT_FOUND', `account ${accountId} does not exist`);
    return toSettings(s);
  };

  app.get(
    '/v1/accounts/:id/auto-top-up',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: "The account's automatic top-up: on or off, amount, threshold, daily caps, failures, today's",
        description: "Without settings of its own an account has its plan's (off unless the plan turns it on, 10 in the account's currency), a threshold of 0 and at most 3 a day.",
        tags: ['payments'],
        params: AccountParams,
        response: { 200: AutoTopUpSettings, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => settings(req.params.id),
  );

  app.put(
    '/v1/accounts/:id/auto-top-up',
    {
      onRequest: ctx.keys.allow('billing:manage'),
      schema: {
        summary: 'Turn automatic top-ups on or off, set the amount, the threshold and the daily caps',
        description:
          'When a rated batch takes the spendable balance to or below the threshold, or the gate refuses a call for want of credits, ' +
          'the saved card is charged the amount off-session (one at a time per account, within the daily caps); the credits come ' +
          'with Stripe\'s confirmation. After 3 declined charges in a row it turns itself off (auto_top_up.failed tells it); a bank ' +
          'asking for authentication is told with a link (auto_top_up.action_required) and not retried. Only the fields sent change; ' +
          'enabled: true also clears an automatic disable.',
        tags: ['payments'],
        params: AccountParams,
        body: AutoTopUpInput,
        response: { 200: AutoTopUpSettings, ...errorResponses(400, 401, 403, 404) },
      },
    },
    async (req) => {
      const b = req.body;
      const amount = b.amount === undefined ? undefined : toMicros(b.amount);
      if (amount !== undefined && (amount < minimum || amount % MICROS_PER_CENT !== 0n)) {
        throw new ApiError(400, 'INVALID_TOP_UP_AMOUNT', `an automatic top-up is at least ${formatMicros(minimum)} and a whole number of cents; got ${b.amount}`);
      }
      await settings(req.params.id);
      await putAutoTopUpSettings(ctx.pool, req.params.id, {
        enabled: b.enabled, amount, threshold: b.threshold === undefined ? undefined : toMicros(b.threshold), dailyMaxCount: b.daily_max_count,
        dailyMaxAmount: b.daily_max_amount === undefined ? undefined : b.daily_max_amount === null ? null : toMicros(b.daily_max_amount),
      }, ctx.ledger.now());
      return settings(req.params.id);
    },
  );

  app.post(
    '/v1/accounts/:id/payments/:paymentId/refund',
    {
      onRequest: ctx.keys.allow('admin'),
      schema: {
        summary: 'Refund a payment (admin): its unspent credits back to the card',
        description:
          'Takes back what is left of the credits the payment granted (never taking the balance below zero, whole cents) and refunds ' +
          'that much on Stripe, once: the credits already spent are kept and recorded (credits_kept). A history entry of kind refund ' +
          'and a payment.refunded notification. Calling it again answers the same refund (and finishes one Stripe could not take).',
        tags: ['payments'],
        params: PaymentParams,
        body: RefundInput.nullish(),
        response: { 201: Refund, 200: Refund, ...errorResponses(400, 401, 403, 404, 502, 503) },
      },
    },
    async (req, reply) => {
      if (!stripe) throw notConfigured('a refund');
      try {
        const { refund, replayed } = await refundPayment({ order: ctx.ledger, stripe }, { accountId: req.params.id, paymentId: req.params.paymentId, reason: req.body?.reason });
        return reply.code(replayed ? 200 : 201).send(toRefund(refund));
      } catch (e) {
        if (e instanceof PaymentNotFoundError) throw new ApiError(404, 'PAYMENT_NOT_FOUND', e.message);
        return fromStripe(e);
      }
    },
  );
};
