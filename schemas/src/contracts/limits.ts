import { z } from 'zod';
import { Currency, MoneyInput, MoneyString } from './common.js';
import { BillingMode } from './account.js';
import { toMicros } from '../money.js';

/** a <= b as money; a malformed amount is the field's own error, reported by its schema. */
function notAbove(a: string, b: string): boolean {
  try {
    return toMicros(a) <= toMicros(b);
  } catch {
    return true;
  }
}

const setting = (what: string) => MoneyInput.nullable().default(null).describe(what);

/**
 * The account's thresholds and limits (seeds 000, 001, 004), set with PUT /v1/accounts/{id}/limits:
 * the whole set at once, an omitted or null setting falling back to the plan's default (where the
 * plan has one) or to none. Amounts in the account's currency.
 */
export const AccountLimitsInput = z.object({
  low_balance_threshold: setting("balance.low is sent when a prepaid balance falls below it (seed 000); null: the plan's default"),
  spend_alert_threshold: setting("spend.alert_threshold is sent once a month when the month's spend reaches it (seed 004); never above allowed_limit; null: none"),
  allowed_limit: setting('the hard cap on a month\'s spend, any billing mode (seed 004): spend.limit_reached is sent when reached; null: none'),
  monthly_limit: setting("postpaid accounts only: the monthly limit over which usage is refused (seed 001); null: the plan's default"),
}).refine((l) => l.spend_alert_threshold === null || l.allowed_limit === null || notAbove(l.spend_alert_threshold, l.allowed_limit), {
  message: 'spend_alert_threshold must not be above allowed_limit',
  path: ['spend_alert_threshold'],
});
export type AccountLimitsInput = z.infer<typeof AccountLimitsInput>;

const effective = (what: string) => MoneyString.nullable().describe(what);

export const AccountLimits = z.object({
  account_id: z.string(),
  currency: Currency,
  billing_mode: BillingMode,
  low_balance_threshold: MoneyString.nullable().describe("the account's own setting; null: the plan's default"),
  spend_alert_threshold: MoneyString.nullable(),
  allowed_limit: MoneyString.nullable(),
  monthly_limit: MoneyString.nullable().describe("the account's own setting; null: the plan's default"),
  effective: z.object({
    low_balance_threshold: MoneyString.describe('the threshold in force: the account\'s, else the plan\'s'),
    spend_alert_threshold: effective('null: no spending alert'),
    allowed_limit: effective('null: no cap'),
    monthly_limit: effective('postpaid: the account\'s, else the plan\'s; null: none (and always for prepaid)'),
  }),
  month: z.string().describe('the current month, YYYY-MM (UTC)'),
  spent_this_month: MoneyString.describe('usage charged this month, by the events\' own time (what the alerts and the allowed limit count)'),
  remaining_this_month: MoneyString.nullable().describe('allowed_limit minus spent_this_month, at least 0; null without an allowed limit'),
});
export type AccountLimits = z.infer<typeof AccountLimits>;
