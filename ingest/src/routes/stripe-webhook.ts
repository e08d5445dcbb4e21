import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { completeTopUp, type StripeEventRef, type TopUpEventOutcome } from '@meterstream/ledger/commands/complete-top-up';
import { failTopUp } from '@meterstream/ledger/commands/fail-top-up';
import { AUTO_TOP_UP_KIND, failAutoTopUp } from '@meterstream/ledger/commands/charge-auto-top-up';
import { completeAutoTopUp } from '@meterstream/ledger/commands/complete-auto-top-up';
import { savePaymentMethodFromSetup } from '@meterstream/ledger/commands/save-payment-method';
import { recordStripeEvent } from '@meterstream/platform/stores/stripe-events';
import { paymentMethodLabel, Stripe } from '@meterstream/platform/stripe';
import { markInvoicePaid, markPaymentFailed } from '@meterstream/invoicer/dunning';
import { ApiError, errorResponses } from '../errors.js';
import type { RouteContext } from './context.js';
import { fromStripe, notConfigured } from './top-ups.js';
import { stripeFromConfig } from '@meterstream/platform/stripe';

export const STRIPE_WEBHOOK_PATH = '/v1/stripe/webhook';

const Received = z.object({
  received: z.literal(true),
  outcome: z.enum(['applied', 'duplicate', 'settled', 'unknown', 'ignored'])
    .describe('applied: the event changed a top-up or the saved card; duplicate: this event id was applied before; settled: the top-up ' +
      'had reached its final state; unknown: not ours; ignored: a type meterstream does not act on'),
});
type Outcome = z.infer<typeof Received>['outcome'];

const sessionOf = (event: Stripe.Event) => event.data.object as Stripe.Checkout.Session;
const topUpIdOf = (s: Stripe.Checkout.Session) => s.metadata?.top_up_id ?? s.client_reference_id;
const idOf = (ref: string | { id: string } | null) => (ref === null ? null : typeof ref === 'string' ? ref : ref.id);

/**
 * Stripe's webhook: the one route without an API key, public by design. Its authentication is
 * Stripe's signature (Stripe-Signature, HMAC-SHA256 of "timestamp.body" under
 * STRIPE_WEBHOOK_SECRET, within STRIPE_WEBHOOK_TOLERANCE_S), checked on the raw body, so this
 * plugin parses every body as bytes; being its own encapsulated plugin, the other routes keep
 * their JSON parser. Each event id is applied once (stripe_events, in the transaction of its
 * change); types not acted on answer 200, so that Stripe stops resending them.
 */
export const stripeWebhookRoutes: FastifyPluginAsyncZod<RouteContext> = async (app, ctx) => {
  const stripe = stripeFromConfig(ctx.config);
  const secret = ctx.config.STRIPE_WEBHOOK_SECRET;
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer' }, (_req, body, done) => done(null, body));

  /** Applies a top-up event unless this event id was applied before (checked first, to spare Stripe a lookup). */
  async function onTopUp(event: Stripe.Event, apply: (ref: StripeEventRef) => Promise<TopUpEventOutcome>): Promise<Outcome> {
    const seen = await ctx.pool.query('SELECT 1 FROM stripe_events WHERE id = $1', [event.id]);
    if (seen.rowCount !== 0) return 'duplicate';
    return (await apply({ id: event.id, type: event.type })).outcome;
  }

  async function paid(event: Stripe.Event, s: Stripe.Checkout.Session, client: Stripe): Promise<Outcome> {
    const topUpId = topUpIdOf(s);
    if (!topUpId) return (await recordStripeEvent(ctx.pool, event.id, event.type)) ? 'unknown' : 'duplicate';
    return onTopUp(event, async (ref) => {
      const intentId = idOf(s.payment_intent);
      const intent = intentId === null ? null : await client.paymentIntents.retrieve(intentId, { expand: ['payment_method'] });
      return completeTopUp(ctx.ledger, {
        topUpId, event: ref, method: paymentMethodLabel(intent?.payment_method), paymentIntentId: intentId, invoiceIssuer: ctx.config.INVOICE_ISSUER,
      });
    });
  }

  async function failed(event: Stripe.Event, s: Stripe.Checkout.Session, state: 'expired' | 'failed'): Promise<Outcome> {
    const topUpId = topUpIdOf(s);
    if (s.mode !== 'payment' || !topUpId) return (await recordStripeEvent(ctx.pool, event.id, event.type)) ? 'ignored' : 'duplicate';
    return onTopUp(event, (ref) => failTopUp(ctx.ledger, { topUpId, event: ref, state }));
  }

  /** The invoicer's monthly invoice paid or not (invoicer/src/dunning.ts): each change applied once, guarded by the invoice's state. */
  async function onInvoice(event: Stripe.Event): Promise<Outcome> {
    const seen = await ctx.pool.query('SELECT 1 FROM stripe_events WHERE id = $1', [event.id]);
    if (seen.rowCount !== 0) return 'duplicate';
    // The event is recorded with the change (a concurrent delivery answers duplicate), and after an answer that changed nothing.
    const invoice = event.data.object as Stripe.Invoice;
    const ref = { stripeInvoiceId: invoice.id!, event: { id: event.id, type: event.type }, ...(invoice.attempt_count > 0 ? { attempt: invoice.attempt_count } : {}) };
    const done = event.type === 'invoice.paid' ? await markInvoicePaid(ctx.ledger, ref, ctx.cache.gate) : await markPaymentFailed(ctx.ledger, ref);
    await recordStripeEvent(ctx.pool, event.id, event.type);
    return done.outcome;
  }

  /** An automatic top-up's PaymentIntent succeeded (credits, once) or failed (declined; a held one waits for its cardholder). */
  async function autoTopUpEvent(event: Stripe.Event, client: Stripe): Promise<Outcome | undefined> {
    const intent = event.data.object as Stripe.PaymentIntent;
    const topUpId = intent.metadata?.top_up_id;
    if (intent.metadata?.kind !== AUTO_TOP_UP_KIND || !topUpId) return undefined;
    if (event.type === 'payment_intent.succeeded') {
      return onTopUp(event, async (ref) => {
        const paid = await client.paymentIntents.retrieve(intent.id, { expand: ['payment_method'] });
        return completeAutoTopUp(ctx.ledger, {
          topUpId, event: ref, method: paymentMethodLabel(paid.payment_method), paymentIntentId: intent.id, invoiceIssuer: ctx.config.INVOICE_ISSUER,
        });
      });
    }
    // The charger tells the cardholder with the link; the webhook only settles a decline.
    if (intent.status === 'requires_action') return undefined;
    const error = intent.last_payment_error;
    return onTopUp(event, (ref) => failAutoTopUp(ctx.ledger, {
      topUpId, event: ref, code: error?.decline_code ?? error?.code ?? 'payment_failed', message: error?.message ?? 'the payment failed', paymentIntentId: intent.id,
    }));
  }

  async function apply(event: Stripe.Event, client: Stripe): Promise<Outcome> {
    switch (event.type) {
      case 'checkout.session.completed': {
        const s = sessionOf(event);
        if (s.mode === 'setup') {
          const setupIntent = idOf(s.setup_intent);
          const customer = idOf(s.customer);
          if (setupIntent === null || customer === null) break;
          const saved = await savePaymentMethodFromSetup({ pool: ctx.pool, stripe: client }, { event: { id: event.id, type: event.type }, customerId: customer, setupIntentId: setupIntent });
          // The gate's card-required refusal clears at once, not when its cached config expires.
          if (saved.outcome === 'applied') await ctx.cache.gate.forgetConfig(saved.accountId).catch((e: unknown) => app.log.warn({ err: e }, 'could not drop the gate config'));
          return saved.outcome;
        }
        // unpaid: a delayed payment method (a bank debit); its async_payment_* event settles the top-up.
        if (s.mode === 'payment' && s.payment_status === 'paid') return paid(event, s, client);
        break;
      }
      case 'checkout.session.async_payment_succeeded':
        return paid(event, sessionOf(event), client);
      case 'checkout.session.async_payment_failed':
        return failed(event, sessionOf(event), 'failed');
      case 'checkout.session.expired':
        return failed(event, sessionOf(event), 'expired');
      // Automatic top-ups (their PaymentIntents carry metadata.kind auto_top_up; a Checkout one's events are ignored here).
      case 'payment_intent.succeeded':
      case 'payment_intent.payment_failed': {
        const outcome = await autoTopUpEvent(event, client);
        if (outcome !== undefined) return outcome;
        break;
      }
      case 'invoice.paid':
      case 'invoice.payment_failed':
        return onInvoice(event);
      default:
        break;
    }
    return (await recordStripeEvent(ctx.pool, event.id, event.type)) ? 'ignored' : 'duplicate';
  }

  app.post(
    STRIPE_WEBHOOK_PATH,
    {
      onRequest: ctx.keys.allow('public'),
      schema: {
        summary: "Stripe's webhook (no API key: Stripe's signature authenticates it)",
        description:
          'Register this URL in Stripe with the events checkout.session.completed, checkout.session.async_payment_succeeded, ' +
          'checkout.session.async_payment_failed, checkout.session.expired, payment_intent.succeeded and payment_intent.payment_failed (automatic top-ups), invoice.paid and invoice.payment_failed (monthly invoices). A missing, forged or stale Stripe-Signature answers ' +
          '400 INVALID_SIGNATURE and changes nothing. Every event id is applied once, in any order and however often Stripe delivers it.',
        tags: ['payments'],
        security: [],
        headers: z.looseObject({ 'stripe-signature': z.string().optional().describe('t=<unix seconds>,v1=<hex HMAC-SHA256>') }),
        response: { 200: Received, ...errorResponses(400, 503) },
      },
    },
    async (req) => {
      if (!stripe || secret === undefined) throw notConfigured('the Stripe webhook');
      const signature = req.headers['stripe-signature'];
      if (signature === undefined || !Buffer.isBuffer(req.body)) throw new ApiError(400, 'INVALID_SIGNATURE', 'a Stripe webhook needs its Stripe-Signature header and body');
      let event: Stripe.Event;
      try {
        event = stripe.webhooks.constructEvent(req.body, signature, secret, ctx.config.STRIPE_WEBHOOK_TOLERANCE_S, undefined, ctx.ledger.now());
      } catch (e) {
        if (e instanceof Stripe.errors.StripeSignatureVerificationError) throw new ApiError(400, 'INVALID_SIGNATURE', e.message);
        throw new ApiError(400, 'MALFORMED_EVENT', `not a Stripe event: ${(e as Error).message}`);
      }
      try {
        return { received: true as const, outcome: await apply(event, stripe) };
      } catch (e) {
        return fromStripe(e);
      }
    },
  );
};
