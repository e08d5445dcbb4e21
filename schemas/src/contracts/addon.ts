import { z } from 'zod';
import { AccountParams } from './account.js';
import { MoneyString } from './common.js';
import { AddonId } from './plan.js';

/**
 * An account's add-on: 'active' is charged at activation and at each period start; 'suspended' had
 * a period its credits did not cover (plan setting addon_shortfall: suspend) and is tried again at
 * the next period start or when activated again; 'inactive' was deactivated and costs nothing more.
 */
export const AddonState = z.enum(['active', 'suspended', 'inactive']);
export type AddonState = z.infer<typeof AddonState>;

export const AddonActivation = z.object({
  addon: AddonId.describe("one of the add-ons of the account's plan (GET /v1/plans)"),
});

export const AccountAddonParams = AccountParams.extend({ addon: AddonId });

export const AccountAddon = z.object({
  account_id: z.string(),
  addon: z.string(),
  name: z.string().nullable().describe("the plan's name for it; null when the plan no longer offers it"),
  state: AddonState,
  monthly_price: MoneyString.nullable().describe("the plan's current price; null when the plan no longer offers it"),
  last_period: z.string().describe('YYYY-MM: the last period charged, or suspended for'),
  activated_at: z.string(),
  updated_at: z.string(),
});
export type AccountAddon = z.infer<typeof AccountAddon>;

export const AccountAddonList = z.object({ addons: z.array(AccountAddon).describe('by add-on id, inactive ones included') });
