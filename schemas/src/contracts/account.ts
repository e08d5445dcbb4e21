import { z } from 'zod';
import { Currency, Id, IsoTimestamp, MoneyInput, MoneyString, SignedMoneyString } from './common.js';

export const BillingMode = z.enum(['prepaid', 'postpaid']);
export type BillingMode = z.infer<typeof BillingMode>;

export const AccountInput = z.object({
  email: z.email(),
  currency: Currency,
  billing_mode: BillingMode,
});
export type AccountInput = z.infer<typeof AccountInput>;

export const Account = AccountInput.extend({ id: z.string(), created_at: z.string() });
export type Account = z.infer<typeof Account>;

/** The path of every route under /v1/accounts/{id}. */
export const AccountParams = z.object({ id: Id });

export const AccountCreated = Account.extend({
  api_key: z.string().describe('the account-scoped API key; shown only in this response, store it now'),
});
export type AccountCreated = z.infer<typeof AccountCreated>;

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

export const Balance = z.object({
  account_id: z.string(),
  currency: Currency,
  billing_mode: BillingMode,
  balance: SignedMoneyString.describe('unexpired grants remaining minus prepaid overdraft'),
  overdraft: MoneyString,
  postpaid_accrued_this_month: MoneyString,
  grants: z.array(Grant.pick({ id: true, kind: true, remaining: true, expires_at: true, priority: true })),
  ledger_seq: z.number().int(),
  source: z.enum(['redis', 'postgres']),
});
export type Balance = z.infer<typeof Balance>;
