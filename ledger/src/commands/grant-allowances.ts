import { z } from 'zod';
import type { Pool } from '@meterstream/platform/postgres';
import { queryRows } from '@meterstream/platform/stores/rows';
import type { Logger } from '@meterstream/platform/logger';
import { formatMicros } from '@meterstream/schemas';
import { addMonths, allowanceExpiry, monthAt, monthsFromTo, periodAt } from '../core/months.js';
import type { WriteOrder } from '../write-order.js';
import { addGrant, type AddGrantRequest } from './add-grant.js';

/** The ledger key of an account's allowance for one month: what makes it once per (account, month). */
export const allowanceKey = (month: string) => `allowance:${month}`;
const KEY_PREFIX = allowanceKey('');

export interface AllowanceDue {
  accountId: string;
  /** 'YYYY-MM' */
  month: string;
  amount: bigint;
  rolloverMonths: number;
  /** The account's billing anchor day (1 by default): the periods start on it. */
  anchorDay?: number;
}

/**
 * One month's allowance as an add-grant request: kind allowance, expiring at the start of month
 * + 1 + rollover (core/months.ts), keyed allowance:<month>. Granting it again is a replay: the
 * same credits once. Exported for whoever grants a new account its first month inside its own
 * transaction (provision-account).
 */
export const allowanceGrant = (due: AllowanceDue): AddGrantRequest => ({
  accountId: due.accountId,
  idempotencyKey: allowanceKey(due.month),
  input: {
    kind: 'allowance', amount: formatMicros(due.amount), priority: 100,
    expires_at: new Date(allowanceExpiry(due.month, due.rolloverMonths, due.anchorDay)).toISOString(),
  },
});

/** Grants one month's allowance (allowanceGrant) in a command of its own. */
export async function grantAllowance(order: WriteOrder, due: AllowanceDue): Promise<{ replayed: boolean }> {
  const { replayed } = await addGrant(order, allowanceGrant(due));
  return { replayed };
}

/** An account's plans as the allowance job sees them: its current plan and a change it has due. */
export interface AllowanceSchedule {
  anchorDay: number;
  createdMs: number;
  /** The last period the account had an allowance for (its newest allowance key); null: never. */
  lastPeriod: string | null;
  current: { amount: bigint; rollover: number; sinceMs: number | null };
  /** A pending plan change (PUT /v1/accounts/{id}/plan) and when it takes effect. */
  pending: { amount: bigint; rollover: number; atMs: number } | null;
}

export interface AllowanceOwed {
  period: string;
  /** Whose allowance: the current plan's, or that of the pending plan, which takes effect first. */
  plan: 'current' | 'pending';
  amount: bigint;
  rollover: number;
}

/**
 * The periods an account is owed at `nowMs`, oldest first, each with the plan in effect then: those
 * after the last it had (only the current one if it never had one: a plan that gains an allowance
 * does not pay for the periods before), none before the account was opened or before its current
 * plan took effect, none whose allowance would already have expired (a late run has nothing usable
 * to give for those), and none of a plan without allowance. A pending change due by `nowMs` is in
 * effect from the period its instant starts. Pure.
 */
export function allowancesOwed(s: AllowanceSchedule, nowMs: number): AllowanceOwed[] {
  const d = s.anchorDay;
  const current = periodAt(nowMs, d);
  const switchAt = s.pending !== null && s.pending.atMs <= nowMs ? periodAt(s.pending.atMs, d) : null;
  const firstEver = switchAt !== null && switchAt < current ? switchAt : current;
  const from = s.lastPeriod === null ? firstEver : addMonths(s.lastPeriod, 1);
  const opened = periodAt(s.createdMs, d);
  const since = s.current.sinceMs === null ? opened : periodAt(s.current.sinceMs, d);
  const out: AllowanceOwed[] = [];
  for (const period of monthsFromTo(from, current)) {
    const plan = switchAt !== null && period >= switchAt ? 'pending' : 'current';
    const { amount, rollover } = plan === 'pending' ? s.pending! : s.current;
    if (amount === 0n || period < opened || (plan === 'current' && period < since)) continue;
    if (allowanceExpiry(period, rollover, d) <= nowMs) continue;
    out.push({ period, plan, amount, rollover });
  }
  return out;
}

const CandidateRow = z.object({
  account_id: z.string(), anchor_day: z.number().int(), created_at: z.date(), plan_since: z.date().nullable(),
  amount: z.bigint(), rollover: z.number().int(),
  pending_plan_id: z.string().nullable(), pending_plan_at: z.date().nullable(),
  pending_amount: z.bigint().nullable(), pending_rollover: z.number().int().nullable(),
  last_period: z.string().nullable(),
});
type CandidateRow = z.infer<typeof CandidateRow>;

/**
 * Open accounts that may be owed something at `nowMs`: their plan has an allowance and they have not
 * had their current period's yet (none, or a later one, holds the key), or a plan change of theirs
 * is due. The current period depends on each account's anchor day: the month of `nowMs` from that
 * day on, the month before until then.
 */
async function candidates(db: Pool, nowMs: number, accounts: readonly string[] | undefined): Promise<CandidateRow[]> {
  const month = monthAt(nowMs);
  return queryRows(db, 'accounts', CandidateRow,
    `SELECT a.id AS account_id, a.billing_anchor_day AS anchor_day, a.created_at, a.plan_since,
            p.monthly_allowance_amount AS amount, p.allowance_rollover_months AS rollover,
            a.pending_plan_id, a.pending_plan_at, np.monthly_allowance_amount AS pending_amount, np.allowance_rollover_months AS pending_rollover,
            (SELECT max(substr(e.idempotency_key, length($4) + 1)) FROM ledger_entries e
              WHERE e.account_id = a.id AND e.kind = 'grant' AND starts_with(e.idempotency_key, $4)) AS last_period
       FROM accounts a JOIN plans p ON p.id = a.plan_id LEFT JOIN plans np ON np.id = a.pending_plan_id
      WHERE a.closed_at IS NULL AND ($6::text[] IS NULL OR a.id = ANY($6::text[]))
        AND ((p.monthly_allowance_amount > 0 AND NOT EXISTS (
               SELECT 1 FROM ledger_entries e WHERE e.account_id = a.id
                  AND e.idempotency_key = $4 || CASE WHEN $3 >= a.billing_anchor_day THEN $1 ELSE $2 END))
             OR a.pending_plan_at <= to_timestamp($5::double precision / 1000))
      ORDER BY a.id`,
    [month, addMonths(month, -1), new Date(nowMs).getUTCDate(), KEY_PREFIX, nowMs, accounts ?? null],
  );
}

export interface AllowanceRun {
  /** Grants this run added, as (account, period). */
  granted: { accountId: string; month: string }[];
  /** Grants an earlier (crashed or concurrent) run had added already. */
  replayed: number;
  /** Accounts whose pending plan took effect in this run. */
  switched: string[];
}

/**
 * The monthly allowance job: every open account whose plan has an allowance gets each period it
 * is owed (allowancesOwed), one add-grant each, and a plan change that is due takes effect, its
 * plan granting from its first period on. Exactly once per (account, period) however often it
 * runs, whether an earlier run crashed midway or two run at once: the ledger key
 * allowance:<period> decides, under the account's lock. The periods before a change are granted
 * before the switch, so a run that dies after it grants what is left on the new plan only.
 * `accounts` limits the run to some accounts (an operator's rerun; tests, which share one database).
 */
export async function grantAllowances(
  order: WriteOrder,
  opts: { now?: number; accounts?: readonly string[]; log?: Logger } = {},
): Promise<AllowanceRun> {
  const nowMs = opts.now ?? order.now();
  const run: AllowanceRun = { granted: [], replayed: 0, switched: [] };
  for (const c of await candidates(order.pool, nowMs, opts.accounts)) {
    const pending = c.pending_plan_id !== null && c.pending_plan_at !== null
      ? { id: c.pending_plan_id, amount: c.pending_amount!, rollover: c.pending_rollover!, atMs: c.pending_plan_at.getTime() } : null;
    const owed = allowancesOwed({
      anchorDay: c.anchor_day, createdMs: c.created_at.getTime(), lastPeriod: c.last_period,
      current: { amount: c.amount, rollover: c.rollover, sinceMs: c.plan_since?.getTime() ?? null }, pending,
    }, nowMs);
    const due = pending !== null && pending.atMs <= nowMs ? pending : null;
    const grant = async (o: AllowanceOwed) => {
      const { replayed } = await grantAllowance(order, {
        accountId: c.account_id, month: o.period, amount: o.amount, rolloverMonths: o.rollover, anchorDay: c.anchor_day,
      });
      if (replayed) run.replayed += 1;
      else run.granted.push({ accountId: c.account_id, month: o.period });
    };
    for (const o of owed.filter((x) => x.plan === 'current')) await grant(o);
    if (due !== null && await switchPlan(order.pool, c.account_id, due)) run.switched.push(c.account_id);
    for (const o of owed.filter((x) => x.plan === 'pending')) await grant(o);
  }
  if (run.granted.length + run.replayed + run.switched.length > 0) {
    opts.log?.info({ granted: run.granted.length, replayed: run.replayed, switched: run.switched.length }, 'monthly allowances granted');
  }
  return run;
}

/**
 * The pending plan becomes the account's plan, from the instant it was due; false when another run
 * switched it already (or the change was replaced meanwhile).
 */
async function switchPlan(db: Pool, accountId: string, due: { id: string; atMs: number }): Promise<boolean> {
  const r = await db.query(
    `UPDATE accounts SET plan_id = pending_plan_id, plan_since = pending_plan_at, pending_plan_id = NULL, pending_plan_at = NULL
      WHERE id = $1 AND pending_plan_id = $2 AND pending_plan_at = to_timestamp($3::double precision / 1000)`,
    [accountId, due.id, due.atMs],
  );
  return r.rowCount === 1;
}
