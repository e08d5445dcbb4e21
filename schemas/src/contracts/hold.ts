import { z } from 'zod';
import { Currency, Id, IsoTimestamp, MoneyString, Quantity } from './common.js';

/** A hold on an account's credits, made by POST /v1/authorize before a billable call runs. */
export const HoldId = z.string().regex(/^hold_[0-9a-f]{24}$/, 'a hold id from POST /v1/authorize (hold_ and 24 hex digits)');

export const AuthorizeInput = z.object({
  account_id: Id,
  product: Id,
  max_quantity: Quantity.describe('the most of the product the call may use, in its unit (decimal, like a usage event\'s quantity): priced with the current price book'),
});
export type AuthorizeInput = z.infer<typeof AuthorizeInput>;

export const Hold = z.object({
  hold_id: HoldId,
  account_id: z.string(),
  amount: MoneyString.describe('the price of max_quantity: the most the call can be charged'),
  currency: Currency,
  expires_at: IsoTimestamp.describe('after this the hold frees its amount (a capture still comes, charged at most the amount)'),
});
export type Hold = z.infer<typeof Hold>;

export const HoldStatus = z.enum(['open', 'captured', 'released', 'expired']);
export type HoldStatus = z.infer<typeof HoldStatus>;

/** A hold as it stands (POST /v1/holds/{id}/release answers it). */
export const HoldState = Hold.extend({
  status: HoldStatus,
  captured: MoneyString.nullable().describe('what the usage event that captured it was charged; null unless captured'),
});
export type HoldState = z.infer<typeof HoldState>;

export const HoldParams = z.object({ id: HoldId });

/**
 * Why the gate refuses a call, with its HTTP status and message. A refusal is terminal for its
 * Idempotency-Key: a retry answers the same.
 */
export const GATE_REFUSALS = {
  /** Prepaid: the balance minus open holds does not cover the price (seed 002). */
  PAYMENT_REQUIRED: { status: 402, message: 'insufficient credits' },
  /** Postpaid: the monthly limit minus this month's spend and open holds does not cover it (seed 001). */
  MONTHLY_LIMIT_REACHED: {
    status: 402,
    message: 'the monthly spending limit is reached; ask the account owner to request a limit increase (POST /v1/accounts/{id}/limit-requests), or wait for the next month',
  },
  /** Any mode: the hard monthly allowed limit would be passed (seed 004). */
  ALLOWED_LIMIT_REACHED: { status: 402, message: 'the allowed monthly limit is reached: credit-consuming features are blocked until the limit is raised or the month resets' },
  /** Postpaid without a payment method whose free credits do not cover the call (seed 001). */
  CARD_REQUIRED: { status: 402, message: 'the free credits are used up: add a payment method to keep going' },
  /** accounts.suspended_at is set: an invoice stayed unpaid (seed 001). */
  ACCOUNT_SUSPENDED: { status: 403, message: 'the account is suspended for non-payment' },
} as const;
export type GateRefusal = keyof typeof GATE_REFUSALS;
export const GateRefusalCode = z.enum(Object.keys(GATE_REFUSALS) as [GateRefusal, ...GateRefusal[]]);
