import { z } from 'zod';
import { Currency, Id, MoneyInput, MoneyString } from './common.js';
import { BillingMode } from './account.js';

/** What an admin sets with PUT /v1/plans/{id}; the amounts are in the plan's currency. */
export const PlanInput = z.object({
  name: z.string().trim().min(1).max(200),
  currency: Currency,
  billing_mode: BillingMode,
  signup_gift: z.object({
    amount: MoneyInput.describe('credited to a new account once per email address (seed 000); "0" for none'),
    validity_days: z.number().int().min(1).max(3660).describe('the gift expires this many days after the account was created'),
  }).default({ amount: '10', validity_days: 7 }),
  monthly_allowance: z.object({
    amount: MoneyInput.describe('granted at the start of each month (seed 003); "0" for none'),
    rollover_months: z.number().int().min(0).max(120).describe('how many months after its own an allowance stays usable'),
  }).default({ amount: '0', rollover_months: 2 }),
  default_monthly_limit: MoneyInput.nullable().optional()
    .describe('postpaid plans only: the monthly spending limit of new accounts (seed 001); default 100, null for none'),
  low_balance_threshold: MoneyInput.default('1').describe('default alert threshold of new accounts (seed 000)'),
}).refine((p) => p.billing_mode === 'postpaid' || p.default_monthly_limit == null, {
  message: 'default_monthly_limit is for postpaid plans only', path: ['default_monthly_limit'],
});
export type PlanInput = z.infer<typeof PlanInput>;

export const PlanParams = z.object({ id: Id });

export const Plan = z.object({
  id: z.string(),
  name: z.string(),
  currency: Currency,
  billing_mode: BillingMode,
  signup_gift: z.object({ amount: MoneyString, validity_days: z.number().int() }),
  monthly_allowance: z.object({ amount: MoneyString, rollover_months: z.number().int() }),
  default_monthly_limit: MoneyString.nullable(),
  low_balance_threshold: MoneyString,
  created_at: z.string(),
  updated_at: z.string(),
});
export type Plan = z.infer<typeof Plan>;

export const PlanList = z.object({ plans: z.array(Plan) });
