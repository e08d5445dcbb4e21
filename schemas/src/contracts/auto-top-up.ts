import { z } from 'zod';
import { Currency, MoneyInput, MoneyString, SignedMoneyString } from './common.js';

/** PUT /v1/accounts/{id}/auto-top-up: what is sent changes, the rest stays. */
export const AutoTopUpInput = z.object({
  enabled: z.boolean().optional().describe('turning it on also clears an automatic disable after failed charges'),
  amount: MoneyInput.optional().describe("charged on the saved card each time, in the account's currency, whole cents (default: the plan's, 10)"),
  threshold: MoneyInput.optional().describe('a top-up starts when the spendable balance falls to or below this (default 0)'),
  daily_max_count: z.number().int().min(1).max(100).optional().describe('at most this many automatic top-ups per UTC day (default 3)'),
  daily_max_amount: MoneyInput.nullable().optional().describe('at most this much per UTC day; null: daily_max_count times amount'),
}).strict();
export type AutoTopUpInput = z.infer<typeof AutoTopUpInput>;

export const AutoTopUpSettings = z.object({
  account_id: z.string(),
  enabled: z.boolean(),
  amount: MoneyString,
  currency: Currency,
  threshold: MoneyString,
  daily_max_count: z.number().int(),
  daily_max_amount: MoneyString.describe('in effect: the one set, or daily_max_count times amount'),
  consecutive_failures: z.number().int().describe('declined charges (or charges waiting for the cardholder) since the last success'),
  disabled_reason: z.string().nullable().describe('why it turned itself off (after repeated failures); null when it did not'),
  has_payment_method: z.boolean().describe('automatic top-ups charge the saved card: none is saved, none starts'),
  today: z.object({ count: z.number().int(), amount: MoneyString }).describe('the automatic top-ups started this UTC day'),
  in_flight: z.string().nullable().describe('the automatic top-up under way (at most one), if any'),
});
export type AutoTopUpSettings = z.infer<typeof AutoTopUpSettings>;

/** data of auto_top_up.failed: the card was declined; after N in a row the automation is off. */
export const AutoTopUpFailed = z.object({
  account_id: z.string(),
  top_up_id: z.string(),
  amount: MoneyString,
  currency: Currency,
  code: z.string().describe("Stripe's decline code, e.g. card_declined"),
  message: z.string(),
  consecutive_failures: z.number().int(),
  disabled: z.boolean().describe('true: this failure turned automatic top-ups off'),
});

/** data of auto_top_up.action_required: the bank wants the cardholder to authenticate the charge; not retried. */
export const AutoTopUpActionRequired = z.object({
  account_id: z.string(),
  top_up_id: z.string(),
  amount: MoneyString,
  currency: Currency,
  action_url: z.string().describe('where the cardholder completes the payment'),
});

/** data of payment.refunded: what went back to the card and what the account keeps or lost. */
export const PaymentRefunded = z.object({
  account_id: z.string(),
  payment_id: z.string(),
  refund_id: z.string(),
  currency: Currency,
  amount_refunded: MoneyString.describe('back to the card'),
  credits_reversed: MoneyString.describe('the unspent credits of the payment taken back'),
  credits_kept: MoneyString.describe('its credits already spent (or not reversible without going below zero): not refunded'),
  balance_after: SignedMoneyString,
});

export const RefundInput = z.object({
  reason: z.string().max(500).optional(),
}).strict();

export const Refund = z.object({
  id: z.string(),
  payment_id: z.string(),
  account_id: z.string(),
  currency: Currency,
  amount_refunded: MoneyString,
  credits_reversed: MoneyString,
  credits_kept: MoneyString,
  state: z.enum(['pending', 'succeeded']).describe('pending: the credits are reversed, Stripe has not taken the refund yet (retry)'),
  stripe_refund_id: z.string().nullable(),
  created_at: z.string(),
});
export type Refund = z.infer<typeof Refund>;
