import { z } from 'zod';
import { BillingMode, Currency } from '@meterstream/schemas';
import { queryRows, type Db } from './rows.js';

/** A plan (migration 007); amounts are micro-units of its currency. */
export interface PlanRecord {
  id: string;
  name: string;
  currency: Currency;
  billingMode: BillingMode;
  signupGiftAmount: bigint;
  signupGiftValidityDays: number;
  monthlyAllowanceAmount: bigint;
  /** How many months after its own an allowance stays usable. */
  allowanceRolloverMonths: number;
  /** Postpaid plans only; null: no limit (and always null on prepaid plans). */
  defaultMonthlyLimit: bigint | null;
  lowBalanceThreshold: bigint;
  createdAt: Date;
  updatedAt: Date;
}

export type PlanSettings = Omit<PlanRecord, 'createdAt' | 'updatedAt'>;

export class PlanNotFoundError extends Error {
  override readonly name = 'PlanNotFoundError';
  constructor(readonly planId: string) {
    super(`plan ${planId} does not exist`);
  }
}

export class PlanInUseError extends Error {
  override readonly name = 'PlanInUseError';
  constructor(readonly planId: string) {
    super(`plan ${planId} has accounts: its currency and billing mode cannot change`);
  }
}

/** The plan POST /v1/accounts gives when it names none; migration 007 creates one per pair. */
export const defaultPlanId = (currency: Currency, billingMode: BillingMode): string => `default-${currency.toLowerCase()}-${billingMode}`;

const PlanColumns = z.object({
  id: z.string(), name: z.string(), currency: Currency, billing_mode: BillingMode,
  signup_gift_amount: z.bigint(), signup_gift_validity_days: z.number().int(),
  monthly_allowance_amount: z.bigint(), allowance_rollover_months: z.number().int(),
  default_monthly_limit: z.bigint().nullable(), low_balance_threshold: z.bigint(),
  created_at: z.date(), updated_at: z.date(),
});
const toPlan = (r: z.infer<typeof PlanColumns>): PlanRecord => ({
  id: r.id, name: r.name, currency: r.currency, billingMode: r.billing_mode,
  signupGiftAmount: r.signup_gift_amount, signupGiftValidityDays: r.signup_gift_validity_days,
  monthlyAllowanceAmount: r.monthly_allowance_amount, allowanceRolloverMonths: r.allowance_rollover_months,
  defaultMonthlyLimit: r.default_monthly_limit, lowBalanceThreshold: r.low_balance_threshold,
  createdAt: r.created_at, updatedAt: r.updated_at,
});
/** A row of plans as pg returns it, parsed into the domain type. */
export const PlanRow = PlanColumns.transform(toPlan);
const UpsertedRow = PlanColumns.extend({ created: z.boolean() }).transform((r) => ({ plan: toPlan(r), created: r.created }));
const AccountPlanRow = PlanColumns.extend({ account_id: z.string() }).transform((r) => [r.account_id, toPlan(r)] as const);

const COLUMNS = `id, name, currency, billing_mode, signup_gift_amount, signup_gift_validity_days,
  monthly_allowance_amount, allowance_rollover_months, default_monthly_limit, low_balance_threshold, created_at, updated_at`;

const P_COLUMNS = COLUMNS.split(',').map((c) => `p.${c.trim()}`).join(', ');

/**
 * Creates the plan or replaces its settings. A plan's currency and billing mode cannot change
 * while accounts use it (the accounts' composite foreign key refuses it: PlanInUseError).
 */
export async function upsertPlan(db: Db, plan: PlanSettings): Promise<{ plan: PlanRecord; created: boolean }> {
  try {
    const [upserted] = await queryRows(db, 'plans', UpsertedRow,
      `INSERT INTO plans (id, name, currency, billing_mode, signup_gift_amount, signup_gift_validity_days,
                          monthly_allowance_amount, allowance_rollover_months, default_monthly_limit, low_balance_threshold)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
       ON CONFLICT (id) DO UPDATE SET
         name = EXCLUDED.name, currency = EXCLUDED.currency, billing_mode = EXCLUDED.billing_mode,
         signup_gift_amount = EXCLUDED.signup_gift_amount, signup_gift_validity_days = EXCLUDED.signup_gift_validity_days,
         monthly_allowance_amount = EXCLUDED.monthly_allowance_amount, allowance_rollover_months = EXCLUDED.allowance_rollover_months,
         default_monthly_limit = EXCLUDED.default_monthly_limit, low_balance_threshold = EXCLUDED.low_balance_threshold,
         updated_at = now()
       RETURNING ${COLUMNS}, (xmax = 0) AS created`,
      [plan.id, plan.name, plan.currency, plan.billingMode, plan.signupGiftAmount, plan.signupGiftValidityDays,
        plan.monthlyAllowanceAmount, plan.allowanceRolloverMonths, plan.defaultMonthlyLimit, plan.lowBalanceThreshold]);
    return upserted!;
  } catch (e) {
    if ((e as { code?: string }).code === '23503') throw new PlanInUseError(plan.id);
    throw e;
  }
}

export async function getPlan(db: Db, id: string): Promise<PlanRecord | undefined> {
  const [plan] = await queryRows(db, 'plans', PlanRow, `SELECT ${COLUMNS} FROM plans WHERE id = $1`, [id]);
  return plan;
}

/** Every plan, by id. */
export async function listPlans(db: Db): Promise<PlanRecord[]> {
  return queryRows(db, 'plans', PlanRow, `SELECT ${COLUMNS} FROM plans ORDER BY id`);
}

/** The plan of each given account (one query), for jobs that act per account (the monthly allowance). */
export async function plansOfAccounts(db: Db, accountIds: readonly string[]): Promise<Map<string, PlanRecord>> {
  const rows = await queryRows(db, 'plans', AccountPlanRow,
    `SELECT a.id AS account_id, ${P_COLUMNS}
       FROM accounts a JOIN plans p ON p.id = a.plan_id WHERE a.id = ANY($1::text[])`,
    [accountIds]);
  return new Map(rows);
}

/**
 * Open accounts (closed_at null) whose plan grants a monthly allowance, with that plan, ordered by
 * account id; `afterId` pages through them.
 */
export async function accountsWithAllowance(db: Db, opts: { afterId?: string; limit: number }): Promise<[string, PlanRecord][]> {
  const rows = await queryRows(db, 'plans', AccountPlanRow,
    `SELECT a.id AS account_id, ${P_COLUMNS}
       FROM accounts a JOIN plans p ON p.id = a.plan_id
      WHERE a.closed_at IS NULL AND p.monthly_allowance_amount > 0 AND a.id > $1
      ORDER BY a.id LIMIT $2`,
    [opts.afterId ?? '', opts.limit]);
  return rows.map(([id, plan]) => [id, plan]);
}
