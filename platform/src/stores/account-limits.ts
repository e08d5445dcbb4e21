import { z } from 'zod';
import { BillingMode, Currency } from '@meterstream/schemas';
import { AccountNotFoundError } from './accounts.js';
import { queryRows, type Db } from './rows.js';

/** An account's thresholds and limits (migration 011), its own (null: the plan's default or none) and in effect. */
export interface AccountLimitsRecord {
  accountId: string;
  currency: Currency;
  billingMode: BillingMode;
  lowBalanceThreshold: bigint | null;
  spendAlertThreshold: bigint | null;
  allowedLimit: bigint | null;
  monthlyLimit: bigint | null;
  effectiveLowBalanceThreshold: bigint;
  effectiveMonthlyLimit: bigint | null;
}

export interface AccountLimitsUpdate {
  lowBalanceThreshold: bigint | null;
  spendAlertThreshold: bigint | null;
  allowedLimit: bigint | null;
  monthlyLimit: bigint | null;
}

/** The database refused the settings: spend_alert_threshold above allowed_limit (constraint accounts_alert_within_limit). */
export class AlertAboveLimitError extends Error {
  override readonly name = 'AlertAboveLimitError';
}

const LimitsRow = z.object({
  id: z.string(), currency: Currency, billing_mode: BillingMode,
  low_balance_threshold: z.bigint().nullable(), spend_alert_threshold: z.bigint().nullable(), allowed_limit: z.bigint().nullable(),
  monthly_limit: z.bigint().nullable(), plan_low_balance_threshold: z.bigint(), plan_monthly_limit: z.bigint().nullable(),
}).transform((r): AccountLimitsRecord => ({
  accountId: r.id, currency: r.currency, billingMode: r.billing_mode,
  lowBalanceThreshold: r.low_balance_threshold, spendAlertThreshold: r.spend_alert_threshold, allowedLimit: r.allowed_limit, monthlyLimit: r.monthly_limit,
  effectiveLowBalanceThreshold: r.low_balance_threshold ?? r.plan_low_balance_threshold,
  effectiveMonthlyLimit: r.billing_mode === 'postpaid' ? r.monthly_limit ?? r.plan_monthly_limit : null,
}));

const SELECT = `SELECT a.id, a.currency, a.billing_mode, a.low_balance_threshold, a.spend_alert_threshold, a.allowed_limit, a.monthly_limit,
                       p.low_balance_threshold AS plan_low_balance_threshold, p.default_monthly_limit AS plan_monthly_limit
                  FROM accounts a JOIN plans p ON p.id = a.plan_id`;

export async function getAccountLimits(db: Db, accountId: string): Promise<AccountLimitsRecord | undefined> {
  const [row] = await queryRows(db, 'accounts', LimitsRow, `${SELECT} WHERE a.id = $1`, [accountId]);
  return row;
}

/**
 * Sets the four settings at once. A setting whose value in effect changes re-arms its alert
 * (core/thresholds.ts): the next change of the balance or spend judges it against the new value,
 * so lowering a threshold under a balance already notified, or raising one, tells again when crossed.
 */
export async function setAccountLimits(db: Db, accountId: string, u: AccountLimitsUpdate): Promise<AccountLimitsRecord> {
  try {
    const [row] = await queryRows(db, 'accounts', LimitsRow,
      `WITH updated AS (
         UPDATE accounts a
            SET low_balance_threshold = $2, spend_alert_threshold = $3, allowed_limit = $4, monthly_limit = $5,
                low_balance_notified = a.low_balance_notified
                  AND coalesce($2, p.low_balance_threshold) = coalesce(a.low_balance_threshold, p.low_balance_threshold),
                spend_alert_notified_month = CASE WHEN $3::bigint IS NOT DISTINCT FROM a.spend_alert_threshold THEN a.spend_alert_notified_month END,
                limit_reached_notified_month = CASE WHEN $4::bigint IS NOT DISTINCT FROM a.allowed_limit THEN a.limit_reached_notified_month END
           FROM plans p WHERE p.id = a.plan_id AND a.id = $1
         RETURNING a.*
       )
       SELECT a.id, a.currency, a.billing_mode, a.low_balance_threshold, a.spend_alert_threshold, a.allowed_limit, a.monthly_limit,
              p.low_balance_threshold AS plan_low_balance_threshold, p.default_monthly_limit AS plan_monthly_limit
         FROM updated a JOIN plans p ON p.id = a.plan_id`,
      [accountId, u.lowBalanceThreshold, u.spendAlertThreshold, u.allowedLimit, u.monthlyLimit]);
    if (!row) throw new AccountNotFoundError(accountId);
    return row;
  } catch (e) {
    if ((e as { constraint?: string }).constraint === 'accounts_alert_within_limit') {
      throw new AlertAboveLimitError('spend_alert_threshold must not be above allowed_limit');
    }
    throw e;
  }
}
