import { z } from 'zod';
import { Currency, Id, MoneyInput, MoneyString } from './common.js';
import { BillingAnchorDay, BillingMode } from './account.js';

/**
 * When an add-on's monthly price is more than the account's credits: 'overdraft' takes it anyway
 * (a prepaid balance goes below zero, a postpaid account accrues it for its invoice), 'suspend'
 * takes nothing and suspends the add-on with an addon.suspended notification.
 */
export const AddonShortfall = z.enum(['overdraft', 'suspend']);
export type AddonShortfall = z.infer<typeof AddonShortfall>;

/** An add-on id: lower-case letters, digits, - and _ (it is part of the ledger key addon:<id>:<period>). */
export const AddonId = z.string().regex(/^[a-z0-9][a-z0-9_-]{0,63}$/, 'an add-on id is 1 to 64 of a-z, 0-9, - and _, starting with a letter or digit');

export const PlanAddon = z.object({
  id: AddonId,
  name: z.string().trim().min(1).max(200),
  monthly_price: MoneyInput.describe('credits deducted at activation and at the start of each period while active (seed 003)'),
});
export type PlanAddon = z.infer<typeof PlanAddon>;

/** The gate holds credits this long before a hold lapses, unless the plan says otherwise. */
export const DEFAULT_HOLD_TTL_SECONDS = 900;

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
  addons: z.array(PlanAddon).max(100).default([]).describe('the add-ons accounts on the plan may activate; an add-on active on an account cannot be removed'),
  addon_shortfall: AddonShortfall.default('suspend')
    .describe('when credits do not cover an add-on: overdraft takes it anyway, suspend suspends the add-on and notifies'),
  auto_top_up: z.object({
    enabled: z.boolean(),
    amount: MoneyInput.refine((v) => !/^0*(\.0*)?$/.test(v), 'an auto top-up adds more than 0')
      .describe('added when credits run out (seed 003); the payments issue charges it'),
  }).default({ enabled: false, amount: '10' }).describe('the defaults of new accounts'),
  hold_ttl_seconds: z.number().int().min(1).max(86_400).default(DEFAULT_HOLD_TTL_SECONDS)
    .describe('how long a credit hold of the gate lives before it lapses'),
  provision_on_first_use: z.boolean().default(false)
    .describe("seed 002: a tenant's service key naming an unknown account id creates it on this plan (the tenant's default) with its first allowance"),
}).refine((p) => p.billing_mode === 'postpaid' || p.default_monthly_limit == null, {
  message: 'default_monthly_limit is for postpaid plans only', path: ['default_monthly_limit'],
}).refine((p) => new Set(p.addons.map((a) => a.id)).size === p.addons.length, {
  message: 'each add-on id once', path: ['addons'],
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
  addons: z.array(PlanAddon.extend({ monthly_price: MoneyString })),
  addon_shortfall: AddonShortfall,
  auto_top_up: z.object({ enabled: z.boolean(), amount: MoneyString }),
  hold_ttl_seconds: z.number().int(),
  provision_on_first_use: z.boolean(),
  created_at: z.string(),
  updated_at: z.string(),
});
export type Plan = z.infer<typeof Plan>;

export const PlanList = z.object({ plans: z.array(Plan) });

/** PUT /v1/accounts/{id}/plan: the plan from the account's next period on. */
export const AccountPlanInput = z.object({
  plan_id: Id.describe('a plan of the account\'s currency and billing mode; its current plan cancels a pending change'),
});
export type AccountPlanInput = z.infer<typeof AccountPlanInput>;

/** PUT /v1/accounts/{id}/billing-anchor-day */
export const BillingAnchorInput = z.object({
  billing_anchor_day: BillingAnchorDay,
});

/** The account's plan, a pending change and its current period (GET /v1/accounts/{id}/plan). */
export const AccountPlan = z.object({
  account_id: z.string(),
  plan_id: z.string(),
  plan_since: z.string().nullable().describe('when the current plan took effect; null: since the account was opened'),
  pending_plan_id: z.string().nullable().describe('the plan from pending_plan_at on'),
  pending_plan_at: z.string().nullable().describe('the start of the next period, when the pending plan takes effect'),
  billing_anchor_day: z.number().int(),
  period: z.object({
    id: z.string().describe('YYYY-MM: the month the period starts in'),
    starts_at: z.string(),
    ends_at: z.string(),
  }).describe('the current period: allowance and add-ons are granted and charged at its start'),
});
export type AccountPlan = z.infer<typeof AccountPlan>;
