import type { Pool } from '@meterstream/platform/postgres';
import type { Logger } from '@meterstream/platform/logger';
import { formatMicros } from '@meterstream/schemas';
import { addMonths, allowanceExpiry, monthAt, monthsFromTo } from '../core/months.js';
import type { WriteOrder } from '../write-order.js';
import { addGrant } from './add-grant.js';

/** The ledger key of an account's allowance for one month: what makes it once per (account, month). */
export const allowanceKey = (month: string) => `allowance:${month}`;
const KEY_PREFIX = allowanceKey('');

export interface AllowanceDue {
  accountId: string;
  /** 'YYYY-MM' */
  month: string;
  amount: bigint;
  rolloverMonths: number;
}

/**
 * Grants one month's allowance through add-grant: kind allowance, expiring at the start of month
 * + 1 + rollover (core/months.ts), keyed allowance:<month>. Granting it again is a replay: the
 * same credits once. Exported for whoever grants a new account its first month.
 */
export async function grantAllowance(order: WriteOrder, due: AllowanceDue): Promise<{ replayed: boolean }> {
  const { replayed } = await addGrant(order, {
    accountId: due.accountId,
    idempotencyKey: allowanceKey(due.month),
    input: {
      kind: 'allowance', amount: formatMicros(due.amount), priority: 100,
      expires_at: new Date(allowanceExpiry(due.month, due.rolloverMonths)).toISOString(),
    },
  });
  return { replayed };
}

interface Candidate {
  account_id: string;
  amount: bigint;
  rollover: number;
  created_month: string;
  last_month: string | null;
}

/**
 * Accounts whose plan has an allowance and that have not had this month's yet (none, or a later
 * one, holds the key), with the last month they had one.
 */
async function candidates(db: Pool, month: string, accounts: readonly string[] | undefined): Promise<Candidate[]> {
  const r = await db.query<Candidate>(
    `SELECT a.id AS account_id, p.monthly_allowance_amount AS amount, p.allowance_rollover_months AS rollover,
            to_char(a.created_at AT TIME ZONE 'UTC', 'YYYY-MM') AS created_month,
            (SELECT max(substr(e.idempotency_key, length($2) + 1)) FROM ledger_entries e
              WHERE e.account_id = a.id AND e.kind = 'grant' AND starts_with(e.idempotency_key, $2)) AS last_month
       FROM accounts a JOIN plans p ON p.id = a.plan_id
      WHERE p.monthly_allowance_amount > 0 AND a.closed_at IS NULL
        AND ($3::text[] IS NULL OR a.id = ANY($3::text[]))
        AND NOT EXISTS (SELECT 1 FROM ledger_entries e WHERE e.account_id = a.id AND e.idempotency_key = $2 || $1)
      ORDER BY a.id`,
    [month, KEY_PREFIX, accounts ?? null],
  );
  return r.rows;
}

/**
 * The months an account is owed at `nowMs`, oldest first: those after the last it had (only the
 * current one if it never had one: a plan that gains an allowance does not pay for the months
 * before), none before the account was created, and none whose allowance would already have
 * expired (a late run has nothing usable to give for those).
 */
export function monthsOwed(c: Omit<Candidate, 'account_id' | 'amount'>, nowMs: number): string[] {
  const current = monthAt(nowMs);
  const from = c.last_month === null ? current : addMonths(c.last_month, 1);
  return monthsFromTo(from, current).filter((m) => m >= c.created_month && allowanceExpiry(m, c.rollover) > nowMs);
}

export interface AllowanceRun {
  /** Grants this run added, as (account, month). */
  granted: { accountId: string; month: string }[];
  /** Grants an earlier (crashed or concurrent) run had added already. */
  replayed: number;
}

/**
 * The monthly allowance job: every open account whose plan has an allowance gets each month it is
 * owed (monthsOwed), one add-grant each. Exactly once per (account, month) however often it runs,
 * whether an earlier run crashed midway or two run at once: the ledger key allowance:<month>
 * decides, under the account's lock. `accounts` limits the run to some accounts (an operator's
 * rerun; tests, which share one database).
 */
export async function grantAllowances(
  order: WriteOrder,
  opts: { now?: number; accounts?: readonly string[]; log?: Logger } = {},
): Promise<AllowanceRun> {
  const nowMs = opts.now ?? order.now();
  const run: AllowanceRun = { granted: [], replayed: 0 };
  for (const c of await candidates(order.pool, monthAt(nowMs), opts.accounts)) {
    for (const month of monthsOwed(c, nowMs)) {
      const { replayed } = await grantAllowance(order, { accountId: c.account_id, month, amount: c.amount, rolloverMonths: c.rollover });
      if (replayed) run.replayed += 1;
      else run.granted.push({ accountId: c.account_id, month });
    }
  }
  if (run.granted.length + run.replayed > 0) opts.log?.info({ month: monthAt(nowMs), granted: run.granted.length, replayed: run.replayed }, 'monthly allowances granted');
  return run;
}
