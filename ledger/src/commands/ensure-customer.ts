import type { Db } from '@meterstream/platform/stores/rows';
import { saveStripeCustomer, type BillingProfile } from '@meterstream/platform/stores/payments';
import type { Stripe } from '@meterstream/platform/stripe';

/**
 * The account's Stripe customer, created the first time a payment needs one. Stripe's idempotency
 * key makes concurrent first calls create one customer; Postgres keeps the first it was told.
 */
export async function ensureCustomer(db: Db, stripe: Stripe, profile: BillingProfile): Promise<string> {
  if (profile.stripeCustomerId !== null) return profile.stripeCustomerId;
  const customer = await stripe.customers.create(
    { ...(profile.email === null ? {} : { email: profile.email }), metadata: { account_id: profile.accountId } },
    { idempotencyKey: `meterstream:customer:${profile.accountId}` },
  );
  return saveStripeCustomer(db, profile.accountId, customer.id);
}
