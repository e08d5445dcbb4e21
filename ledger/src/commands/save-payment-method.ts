import { inTransaction, type Pool } from '@meterstream/platform/postgres';
import { accountOfCustomer, savePaymentMethod } from '@meterstream/platform/stores/payments';
import { recordStripeEvent } from '@meterstream/platform/stores/stripe-events';
import type { Stripe } from '@meterstream/platform/stripe';
import type { StripeEventRef } from './complete-top-up.js';

/**
 * A Checkout session in setup mode completed: its SetupIntent's payment method becomes the
 * account's default, here (accounts.payment_method, what the gate's "card required" refusal
 * looks for) and on the Stripe customer (invoice_settings.default_payment_method, what
 * off-session charges use). The account is the session's customer's. Applied once per event;
 * the Stripe update is idempotent, so a redelivery after a crash between the two is harmless.
 */
export async function savePaymentMethodFromSetup(
  deps: { pool: Pool; stripe: Stripe },
  req: { event: StripeEventRef; customerId: string; setupIntentId: string },
): Promise<{ outcome: 'applied'; accountId: string; paymentMethod: string } | { outcome: 'duplicate' | 'unknown' }> {
  const intent = await deps.stripe.setupIntents.retrieve(req.setupIntentId);
  const pm = intent.payment_method;
  const paymentMethod = typeof pm === 'string' ? pm : pm?.id;
  const usable = paymentMethod !== undefined && intent.status === 'succeeded';
  if (usable) await deps.stripe.customers.update(req.customerId, { invoice_settings: { default_payment_method: paymentMethod } });
  return inTransaction(deps.pool, async (c) => {
    if (!(await recordStripeEvent(c, req.event.id, req.event.type))) return { outcome: 'duplicate' as const };
    const accountId = await accountOfCustomer(c, req.customerId);
    if (!usable || accountId === undefined) return { outcome: 'unknown' as const };
    await savePaymentMethod(c, accountId, paymentMethod);
    return { outcome: 'applied' as const, accountId, paymentMethod };
  });
}
