import Stripe from 'stripe';
import { z } from 'zod';

export { Stripe };

/** The Stripe settings every process that calls Stripe reads (ingest, scheduler, invoicer). */
export const StripeConfig = z.object({
  STRIPE_SECRET_KEY: z.string().regex(/^(sk|rk)_(test|live)_\w+$/, 'a Stripe secret key, sk_test_... or sk_live_...').optional().describe(
    'Stripe secret key (sk_test_... for Stripe test mode) for top-ups, saved cards, automatic top-ups and invoices; unset: top-up routes answer 503 STRIPE_NOT_CONFIGURED, automatic top-ups wait, invoices are written but not sent.',
  ),
  STRIPE_API_BASE: z.url({ protocol: /^https?$/ }).optional().describe(
    "Where the Stripe API is, when not api.stripe.com: the project's Stripe-shaped server in tests and the demo (tests/support/stripe-server.ts). Unset with a real key: Stripe itself.",
  ),
});
export type StripeConfig = z.infer<typeof StripeConfig>;

/** The client the settings describe; undefined without a secret key. */
export function stripeFromConfig(c: StripeConfig): Stripe | undefined {
  if (!c.STRIPE_SECRET_KEY) return undefined;
  return createStripe({ secretKey: c.STRIPE_SECRET_KEY, ...(c.STRIPE_API_BASE ? { apiBase: c.STRIPE_API_BASE } : {}) });
}

export interface StripeSettings {
  /** sk_test_... or sk_live_... */
  secretKey: string;
  /**
   * Where the API is, when not api.stripe.com: the project's Stripe-shaped server in tests and the
   * demo (tests/support/stripe-server.ts), e.g. http://127.0.0.1:12111.
   */
  apiBase?: string;
  timeoutMs?: number;
}

/**
 * The official client, on Stripe itself or, with apiBase, on the server at that address (its
 * host, port and protocol options): the same calls either way. Network retries reuse the
 * request's idempotency key, so a retried POST never creates a second object.
 */
export function createStripe(s: StripeSettings): Stripe {
  const base = s.apiBase === undefined ? undefined : new URL(s.apiBase);
  const protocol = base?.protocol === 'http:' ? 'http' : 'https';
  return new Stripe(s.secretKey, {
    ...(base ? { host: base.hostname, port: base.port === '' ? (protocol === 'http' ? 80 : 443) : Number(base.port), protocol } : {}),
    maxNetworkRetries: 2,
    timeout: s.timeoutMs ?? 20_000,
    telemetry: false,
  });
}

/**
 * What a failed Stripe call means for our caller: 'unavailable' (Stripe unreachable, failing or
 * limiting: retry later) or 'refused' (Stripe judged the request; retrying it changes nothing).
 * undefined: not a Stripe error.
 */
export function stripeFailure(e: unknown): 'unavailable' | 'refused' | undefined {
  if (!(e instanceof Stripe.errors.StripeError)) return undefined;
  if (e instanceof Stripe.errors.StripeConnectionError || e instanceof Stripe.errors.StripeAPIError || e instanceof Stripe.errors.StripeRateLimitError) {
    return 'unavailable';
  }
  return 'refused';
}

/** Stripe amounts are integers in the currency's minor unit; ours are micro-units (USD and EUR: 1 cent = 10,000). */
export const MICROS_PER_CENT = 10_000n;

export const toCents = (micros: bigint): number => {
  if (micros % MICROS_PER_CENT !== 0n) throw new RangeError(`${micros} micro-units is not a whole number of cents`);
  return Number(micros / MICROS_PER_CENT);
};

/** How a payment method reads in the payments list: "visa •••• 4242", or its type. */
export function paymentMethodLabel(pm: Stripe.PaymentMethod | string | null | undefined): string {
  if (pm === null || pm === undefined || typeof pm === 'string') return 'card';
  if (pm.type === 'card' && pm.card) return `${pm.card.brand} •••• ${pm.card.last4}`;
  return pm.type;
}
