import { createHash } from 'node:crypto';
import {
  insertRefund, markRefunded, refundablePayment, refundOfPayment, type RefundRecord,
} from '@meterstream/platform/stores/auto-top-ups';
import { MICROS_PER_CENT, toCents, type Stripe } from '@meterstream/platform/stripe';
import { formatMicros } from '@meterstream/schemas';
import { balanceAt, loadAccountStates, type AccountState } from '../account-state.js';
import { markEntriesPublished, publishEntries, recordEntries } from '../entries.js';
import { recordNotifications } from '../outbox.js';
import type { WriteOrder } from '../write-order.js';

export class PaymentNotFoundError extends Error {
  override readonly name = 'PaymentNotFoundError';
}

/** The one key a payment's refund has in the ledger. */
export const refundKey = (paymentId: string) => `refund:${paymentId}`;

export interface RefundPaymentRequest {
  accountId: string;
  paymentId: string;
  reason?: string;
}

export interface RefundedPayment {
  refund: RefundRecord;
  /** true: the payment was refunded before; nothing moved now. */
  replayed: boolean;
}

/**
 * Refunds a payment (admin): in one transaction the unspent part of its credits, what is left of
 * its grant and never more than takes the balance to zero, rounded down to whole cents, is taken
 * back (a history entry of kind refund, keyed refund:<payment>); what was spent is recorded as
 * kept; the account is told (payment.refunded). Then Stripe refunds that much of the payment,
 * under the key meterstream:refund:<payment>: one refund however often this runs. A Stripe
 * failure leaves the refund pending with its credits reversed; the same call again finishes it.
 */
export async function refundPayment(deps: { order: WriteOrder; stripe: Stripe }, req: RefundPaymentRequest): Promise<RefundedPayment> {
  const { order } = deps;
  const payment = await refundablePayment(order.pool, req.accountId, req.paymentId);
  if (!payment) throw new PaymentNotFoundError(`account ${req.accountId} has no payment ${req.paymentId}`);
  const { refund, replayed } = await order.run<RefundedPayment>({
    name: 'refund-payment',
    async transaction(c) {
      const nowMs = order.now();
      const state = (await loadAccountStates(c, [payment.accountId], { forUpdate: true, nowMs })).get(payment.accountId)!;
      const earlier = await refundOfPayment(c, payment.id);
      if (earlier) return { commit: false, value: { refund: earlier, replayed: true } };
      const remaining = state.grants.find((g) => g.id === payment.grantId)?.remaining ?? 0n;
      const balance = balanceAt(state, nowMs);
      const reversible = remaining < balance ? remaining : balance > 0n ? balance : 0n;
      const reversed = reversible - (reversible % MICROS_PER_CENT);
      const kept = payment.creditsGranted - reversed;
      const after: AccountState = {
        ...state,
        grants: state.grants.map((g) => (g.id === payment.grantId ? { ...g, remaining: g.remaining - reversed } : g)).filter((g) => g.remaining > 0n),
      };
      const balanceAfter = balanceAt(after, nowMs);
      if (reversed > 0n) await c.query('UPDATE grants SET remaining = remaining - $2 WHERE id = $1', [payment.grantId, reversed]);
      const currency = payment.currency;
      const [entry] = await recordEntries(c, [{
        account_id: payment.accountId, kind: 'refund', amount: -reversed, currency, grant_id: payment.grantId, overdraft_paid: 0n,
        balance_after: balanceAfter,
        reason: `refund of payment ${payment.id}: ${formatMicros(reversed)} ${currency} of credits reversed, ${formatMicros(kept)} ${currency} already spent kept${req.reason ? ` (${req.reason})` : ''}`.slice(0, 500),
        idempotency_key: refundKey(payment.id),
        request_hash: createHash('sha256').update(JSON.stringify([payment.id, reversed.toString()])).digest('hex'),
      }]);
      after.ledgerSeq = BigInt(entry!.seq);
      const refund = await insertRefund(c, {
        paymentId: payment.id, accountId: payment.accountId, currency, creditsReversed: reversed, creditsKept: kept, amount: reversed,
        reason: req.reason ?? null, nowMs,
      });
      await recordNotifications(c, [{
        accountId: payment.accountId, cause: `payment.refunded:${payment.id}`,
        payload: {
          type: 'payment.refunded', timestamp: new Date(nowMs).toISOString(),
          data: {
            account_id: payment.accountId, payment_id: payment.id, refund_id: refund.id, currency, amount_refunded: formatMicros(reversed),
            credits_reversed: formatMicros(reversed), credits_kept: formatMicros(kept), balance_after: formatMicros(balanceAfter),
          },
        },
      }], nowMs);
      return {
        commit: true,
        value: { refund, replayed: false },
        publish: async (send) => {
          await publishEntries(send, order.topics.entries, [entry!]);
          await markEntriesPublished(order.pool, [entry!]);
        },
        states: [after],
      };
    },
  });
  if (refund.state === 'succeeded') return { refund, replayed };
  const stripeRefund = await deps.stripe.refunds.create({
    amount: toCents(refund.amount),
    ...(payment.paymentIntentId === null ? {} : { payment_intent: payment.paymentIntentId }),
    metadata: { payment_id: payment.id, refund_id: refund.id, account_id: payment.accountId },
  }, { idempotencyKey: `meterstream:refund:${payment.id}` });
  return { refund: await markRefunded(order.pool, refund.id, stripeRefund.id), replayed };
}
