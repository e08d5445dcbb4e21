import type { Pool } from '@meterstream/platform/postgres';
import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import { billingProfile } from '@meterstream/platform/stores/payments';
import type { Stripe } from '@meterstream/platform/stripe';
import { ensureCustomer } from './ensure-customer.js';

export { AccountNotFoundError };

/**
 * Starts saving a card (seed 001: "you'll need to add your credit card"): a Stripe Checkout
 * session in setup mode on the account's customer. The card becomes the account's default payment
 * method when the webhook reports the session complete (save-payment-method).
 */
export async function startCardSetup(
  deps: { pool: Pool; stripe: Stripe },
  req: { accountId: string; successUrl: string; cancelUrl: string },
): Promise<{ checkoutUrl: string; paymentMethod: string | null }> {
  const profile = await billingProfile(deps.pool, req.accountId);
  if (!profile) throw new AccountNotFoundError(req.accountId);
  const customer = await ensureCustomer(deps.pool, deps.stripe, profile);
  const session = await deps.stripe.checkout.sessions.create({
    mode: 'setup',
    customer,
    currency: profile.currency.toLowerCase(),
    client_reference_id: profile.accountId,
    metadata: { account_id: profile.accountId },
    setup_intent_data: { metadata: { account_id: profile.accountId } },
    success_url: req.successUrl,
    cancel_url: req.cancelUrl,
  });
  if (session.url === null) throw new Error(`Stripe returned Checkout session ${session.id} without a URL`);
  return { checkoutUrl: session.url, paymentMethod: profile.paymentMethod };
}
