import { z } from 'zod';
import { Currency, Id, IsoTimestamp, MoneyInput, MoneyString, SignedMoneyString } from './common.js';

export const BillingMode = z.enum(['prepaid', 'postpaid']);
export type BillingMode = z.infer<typeof BillingMode>;

export const BillingAnchorDay = z.number().int().min(1).max(28).describe('the day of the month (UTC) the account\'s periods start on');

export const AccountInput = z.object({
  // Trimmed before the check; the signup gift counts addresses normalized further (README, "Signup gift").
  email: z.string().trim().check(z.email()),
  currency: Currency,
  billing_mode: BillingMode,
  plan_id: Id.optional().describe('a plan of this currency and billing mode (GET /v1/plans); by default default-<currency>-<billing_mode>, e.g. default-usd-prepaid'),
  billing_anchor_day: BillingAnchorDay.optional().describe('the day of the month (UTC, 1 to 28) its periods start on; by default 1 (calendar months); PUT /v1/accounts/{id}/billing-anchor-day changes it later'),
});
export type AccountInput = z.infer<typeof AccountInput>;

export const Account = AccountInput.extend({
  email: z.string().nullable().describe('null: provisioned by a tenant\'s first billable use (no signup, no signup gift)'),
  id: z.string(),
  plan_id: z.string(),
  billing_anchor_day: BillingAnchorDay,
  created_at: z.string(),
  closed_at: z.string().nullable().describe('set by DELETE /v1/accounts/{id}: its keys no longer work, its records stay readable by the admin'),
});
export type Account = z.infer<typeof Account>;

/** The path of every route under /v1/accounts/{id}. */
export const AccountParams = z.object({ id: Id });

export const GrantKind = z.enum(['gift', 'promotional', 'allowance', 'purchased']);
export type GrantKind = z.infer<typeof GrantKind>;

export const GrantInput = z.object({
  kind: GrantKind,
  amount: MoneyInput,
  expires_at: IsoTimestamp.optional(),
  priority: z.number().int().min(0).max(1000).default(100).describe('lower burns first'),
});
export type GrantInput = z.infer<typeof GrantInput>;

export const Grant = z.object({
  id: z.string(),
  account_id: z.string(),
  kind: GrantKind,
  amount: MoneyString,
  remaining: MoneyString,
  expires_at: z.string().nullable(),
  priority: z.number().int(),
  created_at: z.string(),
});
export type Grant = z.infer<typeof Grant>;

export const AccountCreated = Account.extend({
  api_key: z.string().describe('the account-scoped API key; shown only in this response, store it now'),
  signup_gift: Grant.nullable()
    .describe("the plan's signup gift, once per email address (trimmed, lower-cased); null when the plan has none or the address had it before"),
});
export type AccountCreated = z.infer<typeof AccountCreated>;

export const Balance = z.object({
  account_id: z.string(),
  currency: Currency,
  billing_mode: BillingMode,
  balance: SignedMoneyString.describe('unexpired grants remaining minus prepaid overdraft'),
  overdraft: MoneyString,
  postpaid_accrued_this_month: MoneyString,
  grants: z.array(Grant.pick({ id: true, kind: true, remaining: true, expires_at: true, priority: true }).extend({
    expiring_soon: z.boolean().describe('a gift that expires within 24 hours (seed 000)'),
  })),
  ledger_seq: z.number().int(),
  source: z.enum(['redis', 'postgres']),
  held: MoneyString.describe('the open holds of the spend gate (POST /v1/authorize) not yet captured, released or expired'),
  spendable: SignedMoneyString.describe('balance minus held: what further holds can draw on'),
  spent_this_month: MoneyString.nullable()
    .describe("usage charged this month (UTC, by the events' own time): what the spending alert and the allowed limit count (GET .../limits); null when Postgres is unreachable and the balance came from Redis"),
  pending_top_ups: z.array(z.object({ id: z.string(), amount: MoneyString, created_at: z.string(), checkout_url: z.string().nullable() }))
    .nullable().describe('Checkout top-ups not paid yet, oldest first (seed 003); null when Postgres is unreachable and the balance came from Redis'),
  suspended: z.object({
    since: z.string(),
    reason: z.string().nullable().describe('why, as the suspension transaction records it (e.g. the unpaid invoice)'),
  }).nullable().describe('set while API access is suspended (the gate refuses ACCOUNT_SUSPENDED); null otherwise, and when Postgres is unreachable and the balance came from Redis'),
});
export type Balance = z.infer<typeof Balance>;
