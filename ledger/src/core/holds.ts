import type { GateRefusal } from '@meterstream/schemas';
import { monthOf, type AccountState } from '../account-state.js';
import { usableAt } from './burn.js';

/** What besides its credits bounds an account's spend (accounts and plans columns, monthly_spend). */
export interface GateLimits {
  /** accounts.suspended_at is set. */
  suspended: boolean;
  /** Postpaid: a payment method is on file; without one only free credits may be spent (seed 001). */
  hasPaymentMethod: boolean;
  /** Postpaid: accounts.monthly_limit ?? plans.default_monthly_limit; null: no limit. */
  monthlyLimit: bigint | null;
  /** Any mode: accounts.allowed_limit, the hard monthly cap on spend; null: none. */
  allowedLimit: bigint | null;
  /** Usage charged this month (monthly_spend), for the allowed limit. */
  monthSpend: bigint;
}

export interface HoldRequest {
  state: AccountState;
  limits: GateLimits;
  /** The amounts of the account's open holds, expired ones left out. */
  held: bigint;
  /** The price of the call. */
  amount: bigint;
  nowMs: number;
  /** When the hold would expire: a grant that lapses before it does not back it. */
  expiresMs: number;
}

/**
 * The credits that back a hold lasting until atMs: grants still usable then, minus what a prepaid
 * account owes. A capture burns grants at the call's own time, which is before the hold expires,
 * so every grant counted here is still there to pay it.
 */
export function creditsUntil(state: AccountState, atMs: number): bigint {
  let sum = 0n;
  for (const g of state.grants) if (usableAt(g, atMs)) sum += g.remaining;
  return sum - state.overdraft;
}

/** Postpaid usage beyond the free credits this month (the state may have been loaded last month). */
export const postpaidThisMonth = (state: AccountState, nowMs: number): bigint =>
  state.postpaidMonth === monthOf(nowMs) ? state.postpaidAmount : 0n;

/**
 * Whether the account may hold `amount` more, and if not, why (the refusal the gate answers):
 * - suspended accounts spend nothing;
 * - with an allowed limit, this month's spend plus open holds plus the call stays within it (seed 004);
 * - prepaid: credits minus open holds cover the call (seed 002);
 * - postpaid: free credits go first (seed 001); past them a payment method is required, and then
 *   the monthly limit minus this month's postpaid usage extends what the credits cover.
 * The gate's Lua script (gate-cache.ts) decides the same, in Redis; this is its specification.
 */
export function decideHold(r: HoldRequest): GateRefusal | null {
  const { state, limits, held, amount } = r;
  if (limits.suspended) return 'ACCOUNT_SUSPENDED';
  if (limits.allowedLimit !== null && limits.monthSpend + held + amount > limits.allowedLimit) return 'ALLOWED_LIMIT_REACHED';
  const credits = creditsUntil(state, r.expiresMs);
  if (credits - held >= amount) return null;
  if (state.billingMode === 'prepaid') return 'PAYMENT_REQUIRED';
  if (!limits.hasPaymentMethod) return 'CARD_REQUIRED';
  if (limits.monthlyLimit === null) return null;
  const limitLeft = limits.monthlyLimit - postpaidThisMonth(state, r.nowMs);
  return credits + limitLeft - held >= amount ? null : 'MONTHLY_LIMIT_REACHED';
}

/** What an event capturing a hold is charged: its price, never more than the hold. */
export const captureCharge = (price: bigint, holdAmount: bigint): bigint => (price < holdAmount ? price : holdAmount);
