import { z } from 'zod';
import { Currency, MoneyInput, MoneyString } from './common.js';
import { AccountParams } from './account.js';

export const TopUpInput = z.object({
  amount: MoneyInput.describe(
    "in the account's currency, whole cents: one of the presets (GET /v1/accounts/{id}/top-ups) or a custom amount of at least the minimum",
  ),
});
export type TopUpInput = z.infer<typeof TopUpInput>;

export const TopUpState = z.enum(['pending', 'paid', 'expired', 'failed']);
export type TopUpState = z.infer<typeof TopUpState>;

export const TopUp = z.object({
  id: z.string(),
  account_id: z.string(),
  amount: MoneyString,
  currency: Currency,
  state: TopUpState.describe('pending until Stripe reports the Checkout session paid (credits granted), expired or failed'),
  checkout_url: z.string().nullable().describe('the Stripe Checkout page to send the buyer to'),
  grant_id: z.string().nullable().describe('the purchased grant, once paid'),
  created_at: z.string(),
  settled_at: z.string().nullable(),
});
export type TopUp = z.infer<typeof TopUp>;

export const TopUpList = z.object({
  currency: Currency,
  presets: z.array(MoneyString).describe('the amounts offered as buttons (seed 004: 10, 50, 100, 300, 500, 1000)'),
  minimum: MoneyString.describe('the smallest custom amount'),
  top_ups: z.array(TopUp).describe('newest first, at most 100'),
});

export const PaymentMethodSetup = z.object({
  checkout_url: z.string().describe('the Stripe Checkout page (setup mode) where the card is entered'),
  payment_method: z.string().nullable().describe("the account's current default payment method, if any"),
});

export const PaymentStatus = z.enum(['succeeded']);

export const Payment = z.object({
  id: z.string(),
  account_id: z.string(),
  top_up_id: z.string(),
  amount: MoneyString,
  currency: Currency,
  date: z.string().describe('when the payment succeeded'),
  method: z.string().describe('e.g. "visa •••• 4242"'),
  status: PaymentStatus,
  credits_granted: MoneyString,
  invoice_number: z.string(),
  invoice_url: z.string().describe('the PDF invoice (same authorization as this list)'),
  refund: z.object({
    id: z.string(),
    amount: MoneyString.describe('money given back: the credits of the payment still unspent when it was refunded'),
    state: z.enum(['pending', 'succeeded']).describe('pending until Stripe confirms the refund'),
    date: z.string().describe('when the refund was made'),
  }).nullable().describe('its refund, if one was made (POST …/payments/{paymentId}/refund)'),
});
export type Payment = z.infer<typeof Payment>;

export const PaymentList = z.object({ payments: z.array(Payment).describe('newest first') });

export const PaymentParams = AccountParams.extend({ paymentId: z.string().regex(/^pay_[0-9a-f]{24}$/, 'a payment id is pay_ and 24 hex digits') });
