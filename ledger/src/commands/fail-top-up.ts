import { createHash } from 'node:crypto';
import { recordStripeEvent } from '@meterstream/platform/stores/stripe-events';
import { lockTopUp, settleTopUp } from '@meterstream/platform/stores/top-ups';
import { formatMicros } from '@meterstream/schemas';
import { balanceAt, loadAccountStates } from '../account-state.js';
import { markEntriesPublished, publishEntries, recordEntries } from '../entries.js';
import type { WriteOrder } from '../write-order.js';
import { topUpKey, type StripeEventRef, type TopUpEventOutcome } from './complete-top-up.js';

export interface FailTopUpRequest {
  topUpId: string;
  event: StripeEventRef;
  /** expired: the Checkout session expired unpaid; failed: its delayed payment failed. */
  state: 'expired' | 'failed';
}

/**
 * A top-up that will never be paid (checkout.session.expired, checkout.session.async_payment_failed):
 * the top-up takes its final state and the account's history gets an entry of kind payment with
 * amount 0 under the top-up's key, so no grant can follow; no credits move. Applied once, like
 * complete-top-up, whatever the deliveries.
 */
export async function failTopUp(order: WriteOrder, req: FailTopUpRequest): Promise<TopUpEventOutcome> {
  return order.run<TopUpEventOutcome>({
    name: 'fail-top-up',
    async transaction(c) {
      if (!(await recordStripeEvent(c, req.event.id, req.event.type))) return { commit: false, value: { outcome: 'duplicate' } };
      const topUp = await lockTopUp(c, req.topUpId);
      if (!topUp) return { commit: true, value: { outcome: 'unknown' } };
      if (topUp.state !== 'pending') return { commit: true, value: { outcome: 'settled', topUp } };
      const nowMs = order.now();
      const state = (await loadAccountStates(c, [topUp.accountId], { forUpdate: true, nowMs })).get(topUp.accountId)!;
      const what = req.state === 'expired' ? 'its Checkout session expired unpaid' : 'the payment failed';
      const [entry] = await recordEntries(c, [{
        account_id: topUp.accountId, kind: 'payment', amount: 0n, currency: topUp.currency, grant_id: null, overdraft_paid: 0n,
        balance_after: balanceAt(state, nowMs), reason: `top-up ${topUp.id} of ${formatMicros(topUp.amount)} ${topUp.currency}: ${what}`,
        idempotency_key: topUpKey(topUp.id),
        request_hash: createHash('sha256').update(JSON.stringify([topUp.id, req.state])).digest('hex'),
      }]);
      const settled = await settleTopUp(c, topUp.id, req.state, null, nowMs);
      return {
        commit: true,
        value: { outcome: 'applied', topUp: settled },
        publish: async (send) => {
          await publishEntries(send, order.topics.entries, [entry!]);
          await markEntriesPublished(order.pool, [entry!]);
        },
        states: [{ ...state, ledgerSeq: BigInt(entry!.seq) }],
      };
    },
  });
}
