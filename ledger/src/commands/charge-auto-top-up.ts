import { createHash } from 'node:crypto';
import type { Logger } from '@meterstream/platform/logger';
import { inTransaction } from '@meterstream/platform/postgres';
import {
  attachPaymentIntent, awaitingAction, countFailure, dueAutoTopUps, failuresInARow, lockAutoTopUp, setFailureCode, type DueAutoTopUp,
} from '@meterstream/platform/stores/auto-top-ups';
import { recordStripeEvent } from '@meterstream/platform/stores/stripe-events';
import { settleTopUp } from '@meterstream/platform/stores/top-ups';
import { Stripe, stripeFailure, toCents } from '@meterstream/platform/stripe';
import { formatMicros } from '@meterstream/schemas';
import { balanceAt, loadAccountStates } from '../account-state.js';
import { markEntriesPublished, publishEntries, recordEntries } from '../entries.js';
import { recordNotifications } from '../outbox.js';
import type { WriteOrder } from '../write-order.js';
import type { StripeEventRef, TopUpEventOutcome } from './complete-top-up.js';
import { ensureCustomer } from './ensure-customer.js';

/** Failures in a row (declined, or waiting for the cardholder) after which automatic top-ups turn themselves off. */
export const MAX_CONSECUTIVE_FAILURES = 3;

/** The one key an automatic top-up's outcome has in the ledger: its grant, or the entry of its failure. */
export const autoTopUpKey = (topUpId: string) => `autotopup:${topUpId}`;

/** Stripe's idempotency key of its PaymentIntent: one per top-up, however many chargers try it. */
export const autoTopUpChargeKey = (topUpId: string) => `meterstream:autotopup:${topUpId}`;

/** metadata.kind of the PaymentIntents of automatic top-ups (a Checkout top-up's PaymentIntent carries top_up_id too). */
export const AUTO_TOP_UP_KIND = 'auto_top_up';

export interface ChargeDeps {
  order: WriteOrder;
  stripe: Stripe;
  log: Pick<Logger, 'info' | 'warn'>;
  /** Where the cardholder authenticates a charge the bank held ({PAYMENT_INTENT} is replaced). */
  actionUrl: string;
}

/** How long a charge waiting for its cardholder holds back further automatic top-ups; then it is canceled. */
export const ACTION_TTL_MS = 24 * 3_600_000;

export interface Charged {
  /** PaymentIntents created (or found by their key): credits follow with payment_intent.succeeded. */
  charged: number;
  /** Charges left unauthenticated past their time, canceled. */
  expired: number;
  failed: number;
  actionRequired: number;
  /** Left for the next run: Stripe could not be reached. */
  postponed: number;
}

/**
 * Charges the triggered automatic top-ups (the scheduler's job, woken by each trigger's commit):
 * one off-session PaymentIntent each on the account's saved card, confirmed at once, under the
 * Stripe idempotency key of the top-up, so two chargers, a crash and its rerun, or a retry create
 * one. The top-up stays pending until Stripe's webhook (complete-auto-top-up). A decline fails it
 * (history entry, notification, one more failure in a row); a bank asking for authentication
 * leaves it pending with the link (notification), never retried; one still unauthenticated after
 * actionTtlMs (a day) is canceled and fails. Stripe unreachable: left for the next run. `accountIds` limits it to some accounts (tests share one database).
 */
export async function chargeAutoTopUps(
  deps: ChargeDeps, opts: { accountIds?: readonly string[]; limit?: number; actionTtlMs?: number } = {},
): Promise<Charged> {
  const done: Charged = { charged: 0, expired: 0, failed: 0, actionRequired: 0, postponed: 0 };
  const cutoff = deps.order.now() - (opts.actionTtlMs ?? ACTION_TTL_MS);
  for (const t of await awaitingAction(deps.order.pool, opts.accountIds, cutoff, opts.limit ?? 100)) done[await expireAction(deps, t)] += 1;
  for (const t of await dueAutoTopUps(deps.order.pool, opts.accountIds, opts.limit ?? 100)) done[await chargeOne(deps, t)] += 1;
  return done;
}

async function chargeOne(deps: ChargeDeps, t: DueAutoTopUp): Promise<keyof Charged> {
  const { order, stripe } = deps;
  if (t.paymentMethod === null) {
    await failAutoTopUp(order, { topUpId: t.id, code: 'no_payment_method', message: 'no card is saved', paymentIntentId: null });
    return 'failed';
  }
  try {
    const customer = await ensureCustomer(order.pool, stripe, {
      accountId: t.accountId, email: t.email, currency: t.currency, stripeCustomerId: t.stripeCustomerId, paymentMethod: t.paymentMethod,
    });
    const intent = await stripe.paymentIntents.create({
      amount: toCents(t.amount), currency: t.currency.toLowerCase(), customer, payment_method: t.paymentMethod, off_session: true, confirm: true,
      description: `meterstream automatic top-up: ${formatMicros(t.amount)} ${t.currency}`,
      metadata: { kind: AUTO_TOP_UP_KIND, top_up_id: t.id, account_id: t.accountId },
    }, { idempotencyKey: autoTopUpChargeKey(t.id) });
    await attachPaymentIntent(order.pool, t.id, intent.id);
    return 'charged';
  } catch (e) {
    if (e instanceof Stripe.errors.StripeCardError) {
      const intentId = e.payment_intent?.id ?? null;
      if (e.code === 'authentication_required' && intentId !== null) {
        await requireAction(deps, { topUpId: t.id, paymentIntentId: intentId });
        return 'actionRequired';
      }
      await failAutoTopUp(order, { topUpId: t.id, code: e.decline_code ?? e.code ?? 'card_declined', message: e.message, paymentIntentId: intentId });
      return 'failed';
    }
    if (stripeFailure(e) === 'unavailable') {
      deps.log.warn({ err: (e as Error).message, topUp: t.id }, 'Stripe unavailable: the automatic top-up is charged at the next run');
      return 'postponed';
    }
    // Stripe refused the request itself (e.g. a card removed on Stripe): not retried.
    if (stripeFailure(e) === 'refused' || e instanceof RangeError) {
      await failAutoTopUp(order, { topUpId: t.id, code: 'charge_refused', message: (e as Error).message, paymentIntentId: null });
      return 'failed';
    }
    throw e;
  }
}

/**
 * A charge whose cardholder never authenticated it: canceled on Stripe, then failed (without
 * counting a second failure), so that automatic top-ups can start again. Should the cardholder
 * have completed it meanwhile, Stripe refuses the cancel and the webhook's success stands.
 */
async function expireAction(deps: ChargeDeps, t: { id: string; paymentIntentId: string }): Promise<keyof Charged> {
  try {
    await deps.stripe.paymentIntents.cancel(t.paymentIntentId, { cancellation_reason: 'abandoned' });
  } catch (e) {
    if (stripeFailure(e) === undefined) throw e;
    deps.log.warn({ err: (e as Error).message, topUp: t.id }, 'could not cancel an unauthenticated automatic top-up; left as it is');
    return 'postponed';
  }
  await failAutoTopUp(deps.order, {
    topUpId: t.id, code: 'authentication_expired', message: 'the cardholder did not authenticate the charge in time', paymentIntentId: t.paymentIntentId,
    counted: true,
  });
  return 'expired';
}

/**
 * The bank asks the cardholder to authenticate (authentication_required): the top-up stays
 * pending (it blocks further automatic top-ups: no retry loop) with the link in checkout_url,
 * counts as a failure in a row, and the account is told once with the link. Paid when the
 * cardholder completes it (payment_intent.succeeded).
 */
async function requireAction(deps: ChargeDeps, req: { topUpId: string; paymentIntentId: string }): Promise<void> {
  const actionUrl = deps.actionUrl.replace('{PAYMENT_INTENT}', encodeURIComponent(req.paymentIntentId));
  const nowMs = deps.order.now();
  await inTransaction(deps.order.pool, async (c) => {
    const topUp = await lockAutoTopUp(c, req.topUpId);
    if (!topUp || topUp.state !== 'pending') return;
    if (!(await attachPaymentIntent(c, topUp.id, req.paymentIntentId, { code: 'authentication_required', actionUrl }))) return;
    await countFailure(c, topUp.accountId, MAX_CONSECUTIVE_FAILURES, 'the card needs authentication too often', nowMs);
    await recordNotifications(c, [{
      accountId: topUp.accountId, cause: `auto_top_up.action_required:${topUp.id}`,
      payload: {
        type: 'auto_top_up.action_required', timestamp: new Date(nowMs).toISOString(),
        data: { account_id: topUp.accountId, top_up_id: topUp.id, amount: formatMicros(topUp.amount), currency: topUp.currency, action_url: actionUrl },
      },
    }], nowMs);
  });
}

export interface FailAutoTopUpRequest {
  topUpId: string;
  code: string;
  message: string;
  paymentIntentId: string | null;
  /** When Stripe's webhook reports it (payment_intent.payment_failed): applied once by its id. */
  event?: StripeEventRef;
  /** The failure was counted already (a charge that waited for its cardholder). */
  counted?: boolean;
}

/**
 * An automatic top-up that will not be paid: it fails, the account's history gets an entry of
 * kind payment with amount 0 under its key (no grant can follow), the failure counts (at
 * MAX_CONSECUTIVE_FAILURES in a row automatic top-ups turn off) and the account is told
 * (auto_top_up.failed). Once, whether the charger or the webhook reports it first.
 */
export async function failAutoTopUp(order: WriteOrder, req: FailAutoTopUpRequest): Promise<TopUpEventOutcome> {
  return order.run<TopUpEventOutcome>({
    name: 'fail-auto-top-up',
    async transaction(c) {
      if (req.event && !(await recordStripeEvent(c, req.event.id, req.event.type))) return { commit: false, value: { outcome: 'duplicate' } };
      const topUp = await lockAutoTopUp(c, req.topUpId);
      if (!topUp) return { commit: true, value: { outcome: 'unknown' } };
      if (topUp.state !== 'pending') return { commit: true, value: { outcome: 'settled', topUp } };
      const nowMs = order.now();
      const state = (await loadAccountStates(c, [topUp.accountId], { forUpdate: true, nowMs })).get(topUp.accountId)!;
      const [entry] = await recordEntries(c, [{
        account_id: topUp.accountId, kind: 'payment', amount: 0n, currency: topUp.currency, grant_id: null, overdraft_paid: 0n,
        balance_after: balanceAt(state, nowMs),
        reason: `automatic top-up ${topUp.id} of ${formatMicros(topUp.amount)} ${topUp.currency} failed: ${req.code}`.slice(0, 500),
        idempotency_key: autoTopUpKey(topUp.id),
        request_hash: createHash('sha256').update(JSON.stringify([topUp.id, 'failed'])).digest('hex'),
      }]);
      await setFailureCode(c, topUp.id, req.code, req.paymentIntentId);
      const settled = await settleTopUp(c, topUp.id, 'failed', null, nowMs);
      const { failures, disabled } = req.counted
        ? { failures: await failuresInARow(c, topUp.accountId), disabled: false }
        : await countFailure(c, topUp.accountId, MAX_CONSECUTIVE_FAILURES, `${MAX_CONSECUTIVE_FAILURES} automatic top-ups failed in a row`, nowMs);
      await recordNotifications(c, [{
        accountId: topUp.accountId, cause: `auto_top_up.failed:${topUp.id}`,
        payload: {
          type: 'auto_top_up.failed', timestamp: new Date(nowMs).toISOString(),
          data: {
            account_id: topUp.accountId, top_up_id: topUp.id, amount: formatMicros(topUp.amount), currency: topUp.currency,
            code: req.code, message: req.message, consecutive_failures: failures, disabled,
          },
        },
      }], nowMs);
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
