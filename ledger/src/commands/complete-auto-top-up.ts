import { attachPaymentIntent, lockAutoTopUp, resetFailures } from '@meterstream/platform/stores/auto-top-ups';
import { recordStripeEvent } from '@meterstream/platform/stores/stripe-events';
import type { WriteOrder } from '../write-order.js';
import { autoTopUpKey } from './charge-auto-top-up.js';
import { payTopUp, type StripeEventRef, type TopUpEventOutcome } from './complete-top-up.js';

export interface CompleteAutoTopUpRequest {
  topUpId: string;
  event: StripeEventRef;
  /** The payment method as the payments list shows it ("visa •••• 4242"). */
  method: string;
  paymentIntentId: string;
  invoiceIssuer: string;
}

/**
 * An automatic top-up paid (payment_intent.succeeded): in one transaction the event is recorded,
 * the top-up becomes paid, its credits are granted (purchased, never expiring, paying an
 * overdraft off first; key autotopup:<id>), the payment is recorded with its invoice number and
 * the run of failures ends. Any number of deliveries grant once: the event id, the top-up's lock
 * and state, and the grant's key each stop a second.
 */
export async function completeAutoTopUp(order: WriteOrder, req: CompleteAutoTopUpRequest): Promise<TopUpEventOutcome> {
  return order.run<TopUpEventOutcome>({
    name: 'complete-auto-top-up',
    async transaction(c) {
      if (!(await recordStripeEvent(c, req.event.id, req.event.type))) return { commit: false, value: { outcome: 'duplicate' } };
      const topUp = await lockAutoTopUp(c, req.topUpId);
      if (!topUp) return { commit: true, value: { outcome: 'unknown' } };
      if (topUp.state !== 'pending') return { commit: true, value: { outcome: 'settled', topUp } };
      // The charger may have stopped between Stripe's answer and recording it.
      await attachPaymentIntent(c, topUp.id, req.paymentIntentId);
      const paid = await payTopUp(c, order, topUp, autoTopUpKey(topUp.id), req);
      await resetFailures(c, topUp.accountId);
      return paid;
    },
  });
}
