import { recordPayment, type PaymentRecord } from '@meterstream/platform/stores/payments';
import { recordStripeEvent } from '@meterstream/platform/stores/stripe-events';
import { lockTopUp, settleTopUp, type TopUpRecord } from '@meterstream/platform/stores/top-ups';
import { formatMicros } from '@meterstream/schemas';
import type { PoolClient } from '@meterstream/platform/postgres';
import type { Effects, WriteOrder } from '../write-order.js';
import { addGrantCommand } from './add-grant.js';

/** The one key a top-up's outcome has in the ledger: its grant, or the entry of its failure. */
export const topUpKey = (topUpId: string) => `topup:${topUpId}`;

/** A Stripe event as it is recorded: applied once by its id. */
export interface StripeEventRef {
  id: string;
  type: string;
}

/**
 * What a top-up event did: applied (this event changed the top-up), duplicate (this event was
 * applied before), settled (the top-up had reached a final state through another event) or
 * unknown (no top-up of ours: the event is recorded and otherwise ignored).
 */
export type TopUpEventOutcome =
  | { outcome: 'applied'; topUp: TopUpRecord; payment?: PaymentRecord }
  | { outcome: 'duplicate' }
  | { outcome: 'settled'; topUp: TopUpRecord }
  | { outcome: 'unknown' };

export interface CompleteTopUpRequest {
  topUpId: string;
  event: StripeEventRef;
  /** The payment method as the payments list shows it ("visa •••• 4242"). */
  method: string;
  paymentIntentId: string | null;
  /** Whose invoice number the payment gets (INVOICE_ISSUER). */
  invoiceIssuer: string;
}

/**
 * A top-up paid (checkout.session.completed with payment_status paid, or
 * checkout.session.async_payment_succeeded): in one transaction the Stripe event is recorded, the
 * top-up becomes paid, its credits are granted (purchased, never expiring, paying an overdraft
 * off first: add-grant, keyed topup:<id>) and the payment is recorded with the issuer's next
 * invoice number. Any number of deliveries of any of the events, in any order, grant once: the
 * event id, the top-up's row lock and state, and the grant's idempotency key each stop a second.
 */
export async function completeTopUp(order: WriteOrder, req: CompleteTopUpRequest): Promise<TopUpEventOutcome> {
  return order.run<TopUpEventOutcome>({
    name: 'complete-top-up',
    async transaction(c) {
      if (!(await recordStripeEvent(c, req.event.id, req.event.type))) return { commit: false, value: { outcome: 'duplicate' } };
      const topUp = await lockTopUp(c, req.topUpId);
      if (!topUp) return { commit: true, value: { outcome: 'unknown' } };
      if (topUp.state !== 'pending') return { commit: true, value: { outcome: 'settled', topUp } };
      return payTopUp(c, order, topUp, topUpKey(topUp.id), req);
    },
  });
}

/**
 * Inside a top-up's transaction, once it is locked and pending: its credits granted (purchased,
 * never expiring, paying an overdraft off first; add-grant under `grantKey`), the top-up paid and
 * the payment recorded with the issuer's next invoice number. Checkout and automatic top-ups alike.
 */
export async function payTopUp(
  c: PoolClient, order: WriteOrder, topUp: TopUpRecord, grantKey: string,
  req: Pick<CompleteTopUpRequest, 'method' | 'paymentIntentId' | 'invoiceIssuer'>,
): Promise<Effects<TopUpEventOutcome>> {
  const granted = await addGrantCommand(order, {
    accountId: topUp.accountId,
    input: { kind: 'purchased', amount: formatMicros(topUp.amount), priority: 100 },
    idempotencyKey: grantKey,
  }).transaction(c);
  const grant = granted.value.grant;
  const nowMs = order.now();
  const settled = await settleTopUp(c, topUp.id, 'paid', grant.id, nowMs);
  const payment = await recordPayment(c, {
    accountId: topUp.accountId, topUpId: topUp.id, amount: topUp.amount, currency: topUp.currency, method: req.method,
    paymentIntentId: req.paymentIntentId, creditsGranted: topUp.amount, grantId: grant.id, invoiceIssuer: req.invoiceIssuer, paidAtMs: nowMs,
  });
  return { ...granted, commit: true, value: { outcome: 'applied', topUp: settled, payment } };
}
