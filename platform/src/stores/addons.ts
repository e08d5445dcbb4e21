import { z } from 'zod';
import { AddonState } from '@meterstream/schemas';
import type { PlanAddonRecord } from './plans.js';
import { queryRows, type Db } from './rows.js';

/** An account's add-on (account_addons, migration 013) with its plan's name and price for it. */
export interface AccountAddonRecord {
  accountId: string;
  addonId: string;
  state: AddonState;
  /** 'YYYY-MM': the last period charged, or suspended for. */
  lastPeriod: string;
  activatedAt: Date;
  updatedAt: Date;
  /** What the account's current plan offers it as; null when it no longer does. */
  offer: PlanAddonRecord | null;
}

const AccountAddonRow = z.object({
  account_id: z.string(), addon_id: z.string(), state: AddonState, last_period: z.string(), activated_at: z.date(), updated_at: z.date(),
  name: z.string().nullable(), monthly_price: z.bigint().nullable(),
}).transform((r): AccountAddonRecord => ({
  accountId: r.account_id, addonId: r.addon_id, state: r.state, lastPeriod: r.last_period, activatedAt: r.activated_at, updatedAt: r.updated_at,
  offer: r.name === null || r.monthly_price === null ? null : { id: r.addon_id, name: r.name, monthlyPrice: r.monthly_price },
}));

const SELECT = `SELECT x.account_id, x.addon_id, x.state, x.last_period, x.activated_at, x.updated_at, pa.name, pa.monthly_price
  FROM account_addons x JOIN accounts a ON a.id = x.account_id
  LEFT JOIN plan_addons pa ON pa.plan_id = a.plan_id AND pa.addon_id = x.addon_id`;

/** The account's add-ons, inactive ones included, by add-on id. */
export async function listAccountAddons(db: Db, accountId: string): Promise<AccountAddonRecord[]> {
  return queryRows(db, 'account_addons', AccountAddonRow, `${SELECT} WHERE x.account_id = $1 ORDER BY x.addon_id`, [accountId]);
}

export async function getAccountAddon(db: Db, accountId: string, addonId: string): Promise<AccountAddonRecord | undefined> {
  const [row] = await queryRows(db, 'account_addons', AccountAddonRow, `${SELECT} WHERE x.account_id = $1 AND x.addon_id = $2`, [accountId, addonId]);
  return row;
}

/** Writes the add-on's state; inside the transaction of the charge (or suspension) it records. */
export async function saveAccountAddon(
  db: Db, a: { accountId: string; addonId: string; state: AddonState; lastPeriod: string; activatedAt: Date; updatedAt: Date },
): Promise<void> {
  await db.query(
    `INSERT INTO account_addons (account_id, addon_id, state, last_period, activated_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6)
     ON CONFLICT (account_id, addon_id) DO UPDATE SET
       state = EXCLUDED.state, last_period = EXCLUDED.last_period, activated_at = EXCLUDED.activated_at, updated_at = EXCLUDED.updated_at`,
    [a.accountId, a.addonId, a.state, a.lastPeriod, a.activatedAt, a.updatedAt]);
}

const OfferRow = z.object({ addon_id: z.string(), name: z.string(), monthly_price: z.bigint() })
  .transform((r): PlanAddonRecord => ({ id: r.addon_id, name: r.name, monthlyPrice: r.monthly_price }));

/**
 * The plan's offer of the add-on, read FOR SHARE: a plan update removing it (upsertPlan) waits for
 * the caller's commit and then sees the add-on in use.
 */
export async function lockPlanAddon(db: Db, planId: string, addonId: string): Promise<PlanAddonRecord | undefined> {
  const [row] = await queryRows(db, 'plan_addons', OfferRow,
    'SELECT addon_id, name, monthly_price FROM plan_addons WHERE plan_id = $1 AND addon_id = $2 FOR SHARE', [planId, addonId]);
  return row;
}

/** The add-ons of the account that are active or suspended and that `planId` does not offer. */
export async function addonsNotOffered(db: Db, accountId: string, planId: string): Promise<string[]> {
  const r = await db.query<{ addon_id: string }>(
    `SELECT x.addon_id FROM account_addons x
      WHERE x.account_id = $1 AND x.state <> 'inactive'
        AND NOT EXISTS (SELECT 1 FROM plan_addons pa WHERE pa.plan_id = $2 AND pa.addon_id = x.addon_id)
      ORDER BY x.addon_id`, [accountId, planId]);
  return r.rows.map((row) => row.addon_id);
}

/**
 * Open accounts with an add-on, active or suspended, not settled for their current period yet:
 * `at.month` from the account's anchor day on (`at.day` is today's day of the month, UTC),
 * `at.previous` (the month before) until then.
 */
export async function accountsWithAddonsDue(
  db: Db, at: { month: string; previous: string; day: number }, opts: { accounts?: readonly string[] } = {},
): Promise<string[]> {
  const r = await db.query<{ account_id: string }>(
    `SELECT DISTINCT x.account_id FROM account_addons x JOIN accounts a ON a.id = x.account_id
      WHERE x.state <> 'inactive' AND a.closed_at IS NULL AND ($4::text[] IS NULL OR a.id = ANY($4::text[]))
        AND x.last_period < CASE WHEN $3 >= a.billing_anchor_day THEN $1 ELSE $2 END
      ORDER BY x.account_id`,
    [at.month, at.previous, at.day, opts.accounts ?? null]);
  return r.rows.map((row) => row.account_id);
}
