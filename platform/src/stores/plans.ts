import { z } from 'zod';
import { AddonShortfall, BillingMode, Currency, DEFAULT_HOLD_TTL_SECONDS } from '@meterstream/schemas';
import { inTransaction, type Pool } from '../postgres.js';
import { queryRows, type Db } from './rows.js';

/** An add-on a plan offers (plan_addons, migration 013). */
export interface PlanAddonRecord {
  id: string;
  name: string;
  /** Micro-units of the plan's currency, charged at activation and each period start. */
  monthlyPrice: bigint;
}

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
  /** By add-on id. */
  addons: PlanAddonRecord[];
  addonShortfall: AddonShortfall;
  /** seed 003: the defaults of new accounts; the payments issue acts on them. */
  autoTopUp: { enabled: boolean; amount: bigint };
  holdTtlSeconds: number;
  /** seed 002: as a tenant's default plan, unknown account ids of the tenant's keys are created on first use. */
  provisionOnFirstUse: boolean;
  createdAt: Date;
  updatedAt: Date;
}

/** What PUT /v1/plans/{id} sets; the settings of migration 013 have their defaults when left out. */
export type PlanSettings = Omit<PlanRecord, 'createdAt' | 'updatedAt' | 'addons' | 'addonShortfall' | 'autoTopUp' | 'holdTtlSeconds' | 'provisionOnFirstUse'>
  & Partial<Pick<PlanRecord, 'addons' | 'addonShortfall' | 'autoTopUp' | 'holdTtlSeconds' | 'provisionOnFirstUse'>>;

/** seed 003: USD 10, off until the account turns it on. */
const DEFAULT_AUTO_TOP_UP = { enabled: false, amount: 10_000_000n };

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

/** A plan update would drop add-ons that accounts on it (or moving to it) have active or suspended. */
export class AddonInUseError extends Error {
  override readonly name = 'AddonInUseError';
  constructor(readonly planId: string, readonly addons: readonly string[]) {
    super(`plan ${planId}: add-ons ${addons.join(', ')} are in use on its accounts; deactivate them there before removing them`);
  }
}

/** The plan POST /v1/accounts gives when it names none; migration 007 creates one per pair. */
export const defaultPlanId = (currency: Currency, billingMode: BillingMode): string => `default-${currency.toLowerCase()}-${billingMode}`;

const PlanColumns = z.object({
  id: z.string(), name: z.string(), currency: Currency, billing_mode: BillingMode,
  signup_gift_amount: z.bigint(), signup_gift_validity_days: z.number().int(),
  monthly_allowance_amount: z.bigint(), allowance_rollover_months: z.number().int(),
  default_monthly_limit: z.bigint().nullable(), low_balance_threshold: z.bigint(),
  addons: z.array(z.object({ id: z.string(), name: z.string(), monthly_price: z.string() })),
  addon_shortfall: AddonShortfall, auto_top_up_enabled: z.boolean(), auto_top_up_amount: z.bigint(), hold_ttl_seconds: z.number().int(),
  provision_on_first_use: z.boolean(), created_at: z.date(), updated_at: z.date(),
});
const toPlan = (r: z.infer<typeof PlanColumns>): PlanRecord => ({
  id: r.id, name: r.name, currency: r.currency, billingMode: r.billing_mode,
  signupGiftAmount: r.signup_gift_amount, signupGiftValidityDays: r.signup_gift_validity_days,
  monthlyAllowanceAmount: r.monthly_allowance_amount, allowanceRolloverMonths: r.allowance_rollover_months,
  defaultMonthlyLimit: r.default_monthly_limit, lowBalanceThreshold: r.low_balance_threshold,
  addons: r.addons.map((a) => ({ id: a.id, name: a.name, monthlyPrice: BigInt(a.monthly_price) })),
  addonShortfall: r.addon_shortfall, autoTopUp: { enabled: r.auto_top_up_enabled, amount: r.auto_top_up_amount }, holdTtlSeconds: r.hold_ttl_seconds,
  provisionOnFirstUse: r.provision_on_first_use, createdAt: r.created_at, updatedAt: r.updated_at,
});
/** A row of plans as pg returns it, parsed into the domain type. */
export const PlanRow = PlanColumns.transform(toPlan);
const AccountPlanRow = PlanColumns.extend({ account_id: z.string() }).transform((r) => [r.account_id, toPlan(r)] as const);

const TABLE_COLUMNS = `id, name, currency, billing_mode, signup_gift_amount, signup_gift_validity_days,
  monthly_allowance_amount, allowance_rollover_months, default_monthly_limit, low_balance_threshold,
  addon_shortfall, auto_top_up_enabled, auto_top_up_amount, hold_ttl_seconds, provision_on_first_use, created_at, updated_at`;

/** The plan's add-ons as JSON, by id (money as text: JSON numbers would lose micro-units). */
const addonsOf = (plan: string) => `coalesce((SELECT json_agg(json_build_object('id', pa.addon_id, 'name', pa.name, 'monthly_price', pa.monthly_price::text)
  ORDER BY pa.addon_id) FROM plan_addons pa WHERE pa.plan_id = ${plan}), '[]'::json) AS addons`;

const COLUMNS = `${TABLE_COLUMNS}, ${addonsOf('plans.id')}`;
const P_COLUMNS = `${TABLE_COLUMNS.split(',').map((c) => `p.${c.trim()}`).join(', ')}, ${addonsOf('p.id')}`;

/**
 * Creates the plan or replaces its settings and add-on list, in one transaction. A plan's currency
 * and billing mode cannot change while accounts use it (the accounts' composite foreign keys
 * refuse it: PlanInUseError); an add-on cannot leave the plan while an account on it, or moving to
 * it, has it active or suspended (AddonInUseError). The plan's row lock, then the add-on rows'
 * (activate-addon reads them FOR SHARE), serialize this with an activation.
 */
export async function upsertPlan(pool: Pool, plan: PlanSettings): Promise<{ plan: PlanRecord; created: boolean }> {
  const addons = plan.addons ?? [];
  const autoTopUp = plan.autoTopUp ?? DEFAULT_AUTO_TOP_UP;
  try {
    return await inTransaction(pool, async (c) => {
      const [{ created }] = (await c.query<{ created: boolean }>(
        `INSERT INTO plans (id, name, currency, billing_mode, signup_gift_amount, signup_gift_validity_days,
                            monthly_allowance_amount, allowance_rollover_months, default_monthly_limit, low_balance_threshold,
                            addon_shortfall, auto_top_up_enabled, auto_top_up_amount, hold_ttl_seconds, provision_on_first_use)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (id) DO UPDATE SET
           name = EXCLUDED.name, currency = EXCLUDED.currency, billing_mode = EXCLUDED.billing_mode,
           signup_gift_amount = EXCLUDED.signup_gift_amount, signup_gift_validity_days = EXCLUDED.signup_gift_validity_days,
           monthly_allowance_amount = EXCLUDED.monthly_allowance_amount, allowance_rollover_months = EXCLUDED.allowance_rollover_months,
           default_monthly_limit = EXCLUDED.default_monthly_limit, low_balance_threshold = EXCLUDED.low_balance_threshold,
           addon_shortfall = EXCLUDED.addon_shortfall, auto_top_up_enabled = EXCLUDED.auto_top_up_enabled,
           auto_top_up_amount = EXCLUDED.auto_top_up_amount, hold_ttl_seconds = EXCLUDED.hold_ttl_seconds,
           provision_on_first_use = EXCLUDED.provision_on_first_use, updated_at = now()
         RETURNING (xmax = 0) AS created`,
        [plan.id, plan.name, plan.currency, plan.billingMode, plan.signupGiftAmount, plan.signupGiftValidityDays,
          plan.monthlyAllowanceAmount, plan.allowanceRolloverMonths, plan.defaultMonthlyLimit, plan.lowBalanceThreshold,
          plan.addonShortfall ?? 'suspend', autoTopUp.enabled, autoTopUp.amount, plan.holdTtlSeconds ?? DEFAULT_HOLD_TTL_SECONDS, plan.provisionOnFirstUse ?? false])).rows as [{ created: boolean }];
      const removed = await c.query<{ addon_id: string }>(
        'DELETE FROM plan_addons WHERE plan_id = $1 AND NOT (addon_id = ANY($2::text[])) RETURNING addon_id', [plan.id, addons.map((a) => a.id)]);
      if (removed.rows.length > 0) {
        const inUse = await c.query<{ addon_id: string }>(
          `SELECT DISTINCT x.addon_id FROM account_addons x JOIN accounts a ON a.id = x.account_id
            WHERE x.state <> 'inactive' AND x.addon_id = ANY($2::text[]) AND (a.plan_id = $1 OR a.pending_plan_id = $1)
            ORDER BY x.addon_id`,
          [plan.id, removed.rows.map((r) => r.addon_id)]);
        if (inUse.rows.length > 0) throw new AddonInUseError(plan.id, inUse.rows.map((r) => r.addon_id));
      }
      await c.query(
        `INSERT INTO plan_addons (plan_id, addon_id, name, monthly_price)
         SELECT $1, id, name, monthly_price FROM json_to_recordset($2::json) AS v(id text, name text, monthly_price bigint)
         ON CONFLICT (plan_id, addon_id) DO UPDATE SET name = EXCLUDED.name, monthly_price = EXCLUDED.monthly_price`,
        [plan.id, JSON.stringify(addons.map((a) => ({ id: a.id, name: a.name, monthly_price: a.monthlyPrice.toString() })))]);
      const [stored] = await queryRows(c, 'plans', PlanRow, `SELECT ${COLUMNS} FROM plans WHERE id = $1`, [plan.id]);
      return { plan: stored!, created };
    });
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

/** An account's plan, a change it has pending and its billing anchor day (migration 013). */
export interface AccountPlanRecord {
  accountId: string;
  currency: Currency;
  billingMode: BillingMode;
  planId: string;
  /** When the current plan took effect; null: since the account was opened. */
  planSince: Date | null;
  pendingPlanId: string | null;
  /** The start of the period the pending plan takes effect at. */
  pendingPlanAt: Date | null;
  /** 1..28: the day of the month (UTC) the account's periods start on. */
  billingAnchorDay: number;
  closedAt: Date | null;
}

const AccountPlanColumns = z.object({
  id: z.string(), currency: Currency, billing_mode: BillingMode, plan_id: z.string(), plan_since: z.date().nullable(),
  pending_plan_id: z.string().nullable(), pending_plan_at: z.date().nullable(), billing_anchor_day: z.number().int(), closed_at: z.date().nullable(),
}).transform((r): AccountPlanRecord => ({
  accountId: r.id, currency: r.currency, billingMode: r.billing_mode, planId: r.plan_id, planSince: r.plan_since,
  pendingPlanId: r.pending_plan_id, pendingPlanAt: r.pending_plan_at, billingAnchorDay: r.billing_anchor_day, closedAt: r.closed_at,
}));
const ACCOUNT_PLAN_COLUMNS = 'id, currency, billing_mode, plan_id, plan_since, pending_plan_id, pending_plan_at, billing_anchor_day, closed_at';

/** The account's plan settings; `forUpdate` locks the account row (the ledger commands' lock). */
export async function getAccountPlan(db: Db, accountId: string, opts: { forUpdate?: boolean } = {}): Promise<AccountPlanRecord | undefined> {
  const [row] = await queryRows(db, 'accounts', AccountPlanColumns,
    `SELECT ${ACCOUNT_PLAN_COLUMNS} FROM accounts WHERE id = $1${opts.forUpdate ? ' FOR NO KEY UPDATE' : ''}`, [accountId]);
  return row;
}

/** Schedules (or, with null, cancels) the account's plan change; inside the caller's transaction. */
export async function setPendingPlan(db: Db, accountId: string, pending: { planId: string; at: Date } | null): Promise<void> {
  await db.query('UPDATE accounts SET pending_plan_id = $2, pending_plan_at = $3 WHERE id = $1', [accountId, pending?.planId ?? null, pending?.at ?? null]);
}

/** Sets the day the account's periods start on; undefined when there is no such account. */
export async function setBillingAnchorDay(db: Db, accountId: string, day: number): Promise<AccountPlanRecord | undefined> {
  const [row] = await queryRows(db, 'accounts', AccountPlanColumns,
    `UPDATE accounts SET billing_anchor_day = $2 WHERE id = $1 RETURNING ${ACCOUNT_PLAN_COLUMNS}`, [accountId, day]);
  return row;
}
