import { createHash } from 'node:crypto';
import type { Pool } from '@meterstream/platform/postgres';
import { billingProfile } from '@meterstream/platform/stores/payments';
import { attachCheckoutSession, claimTopUp, type TopUpRecord } from '@meterstream/platform/stores/top-ups';
import { toCents, type Stripe } from '@meterstream/platform/stripe';
import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import { formatMicros } from '@meterstream/schemas';
import { IdempotencyConflictError } from '../entries.js';
import { ensureCustomer } from './ensure-customer.js';

export { AccountNotFoundError, IdempotencyConflictError };

export interface StartTopUpRequest {
  accountId: string;
  /** Micro-units of the account's currency, whole cents. */
  amount: bigint;
  /** The caller's key: the same key with the same amount gives the same top-up and Checkout page. */
  idempotencyKey: string;
  /** Where Checkout sends the buyer back ({CHECKOUT_SESSION_ID} is replaced by Stripe). */
  successUrl: string;
  cancelUrl: string;
}

export interface StartedTopUp {
  topUp: TopUpRecord;
  /** true: an earlier request with this key created it. */
  replayed: boolean;
}

/** The Stripe idempotency key of a top-up's Checkout session: one session per top-up, however often it is asked for. */
export const checkoutKey = (topUpId: string) => `meterstream:topup:${topUpId}`;

/**
 * Starts a top-up (seed 004): a pending top-up and a Stripe Checkout session in payment mode for
 * its amount, on the account's Stripe customer (created now if it has none). No money moves here:
 * the credits come with the webhook that reports the session paid (complete-top-up). The row is
 * written before Stripe is called, so a crash or a Stripe outage in between leaves a top-up
 * without a session, which the retry (same Idempotency-Key) completes with the same session
 * (Stripe's idempotency key is the top-up's id); such a row is never shown as pending.
 */
export async function startTopUp(deps: { pool: Pool; stripe: Stripe; now: () => number }, req: StartTopUpRequest): Promise<StartedTopUp> {
  const profile = await billingProfile(deps.pool, req.accountId);
  if (!profile) throw new AccountNotFoundError(req.accountId);
  const requestHash = createHash('sha256').update(JSON.stringify([req.amount.toString(), profile.currency])).digest('hex');
  const { topUp, created } = await claimTopUp(deps.pool, {
    accountId: req.accountId, amount: req.amount, currency: profile.currency, idempotencyKey: req.idempotencyKey, requestHash, nowMs: deps.now(),
  });
  if (topUp.requestHash !== requestHash) throw new IdempotencyConflictError(req.accountId, req.idempotencyKey);
  if (topUp.checkoutUrl !== null) return { topUp, replayed: !created };

  const customer = await ensureCustomer(deps.pool, deps.stripe, profile);
  const metadata = { top_up_id: topUp.id, account_id: topUp.accountId };
  const session = await deps.stripe.checkout.sessions.create({
    mode: 'payment',
    customer,
    client_reference_id: topUp.id,
    line_items: [{
      quantity: 1,
      price_data: {
        currency: topUp.currency.toLowerCase(),
        unit_amount: toCents(topUp.amount),
        product_data: { name: `meterstream credits: ${formatMicros(topUp.amount)} ${topUp.currency}` },
      },
    }],
    metadata,
    payment_intent_data: { metadata },
    success_url: req.successUrl,
    cancel_url: req.cancelUrl,
  }, { idempotencyKey: checkoutKey(topUp.id) });
  if (session.url === null) throw new Error(`Stripe returned Checkout session ${session.id} without a URL`);
  return { topUp: await attachCheckoutSession(deps.pool, topUp.id, session.id, session.url), replayed: !created };
}
