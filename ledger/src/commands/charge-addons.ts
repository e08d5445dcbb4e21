import { createHash } from 'node:crypto';
import type { PoolClient } from '@meterstream/platform/postgres';
import type { Logger } from '@meterstream/platform/logger';
import { accountsWithAddonsDue, listAccountAddons, saveAccountAddon } from '@meterstream/platform/stores/addons';
import { getAccountPlan, getPlan, type PlanRecord } from '@meterstream/platform/stores/plans';
import { formatMicros, type AddonShortfall, type LedgerEntry } from '@meterstream/schemas';
import { balanceAt, loadAccountStates, monthOf, type AccountState } from '../account-state.js';
import { burn } from '../core/burn.js';
import { addMonths, monthAt, monthsFromTo, periodAt, periodStart } from '../core/months.js';
import { findEntry, markEntriesPublished, publishEntries, recordEntries } from '../entries.js';
import { recordAlerts, recordNotifications } from '../outbox.js';
import type { WriteOrder } from '../write-order.js';

/** The one key of an add-on's charge for a period: what makes it once per (account, add-on, period). */
export const addonKey = (addon: string, period: string) => `addon:${addon}:${period}`;

/** One period of one add-on, at the price and with the shortfall setting of the plan in effect then. */
export interface AddonPeriod {
  addon: string;
  name: string;
  price: bigint;
  /** 'YYYY-MM' */
  period: string;
  shortfall: AddonShortfall;
}

export type Settled =
  /** The price left the balance now: one ledger entry of kind addon. */
  | { outcome: 'charged'; entry: LedgerEntry; state: AccountState }
  /** An earlier charge holds the key (a rerun, or reactivated within a period it was paid for). */
  | { outcome: 'paid'; state: AccountState }
  /** Credits did not cover it and the plan suspends: nothing moved. */
  | { outcome: 'suspended'; state: AccountState };

/**
 * Takes `amount` from the account inside the caller's transaction (state loaded forUpdate): the
 * grants pay in burn order (core/burn.ts), the rest goes to the prepaid overdraft or the month's
 * postpaid accrual. Returns the account after it; the caller records the ledger entry.
 */
export async function deduct(c: PoolClient, state: AccountState, amount: bigint, nowMs: number): Promise<AccountState> {
  const charged = burn(state, amount, nowMs);
  const next = charged.next;
  const left = new Map(next.grants.map((g) => [g.id, g.remaining]));
  const grants = charged.takes.map((t) => ({ id: t.grantId, remaining: (left.get(t.grantId) ?? 0n).toString() }));
  if (grants.length > 0) {
    await c.query('UPDATE grants g SET remaining = v.remaining FROM json_to_recordset($1::json) AS v(id text, remaining bigint) WHERE g.id = v.id',
      [JSON.stringify(grants)]);
  }
  if (charged.overdraft > 0n) await c.query('UPDATE accounts SET overdraft = $2 WHERE id = $1', [state.id, next.overdraft]);
  if (charged.postpaid > 0n) {
    await c.query(
      `INSERT INTO postpaid_usage (account_id, month, amount) VALUES ($1, ($2 || '-01')::date, $3)
       ON CONFLICT (account_id, month) DO UPDATE SET amount = postpaid_usage.amount + excluded.amount`,
      [state.id, monthOf(nowMs), charged.postpaid]);
  }
  return next;
}

/**
 * Settles one period of an add-on inside the caller's transaction, under the account's lock
 * (`state` loaded forUpdate): charged once per key addon:<addon>:<period>, the grants paying in
 * burn order as usage does (core/burn.ts), the rest going to the prepaid overdraft or the month's
 * postpaid accrual (shortfall 'overdraft'), or, with 'suspend' and too few credits, nothing taken
 * and an addon.suspended notification. Each outcome's notification is written in the same
 * transaction, once per (add-on, period).
 */
export async function settleAddonPeriod(c: PoolClient, state: AccountState, p: AddonPeriod, nowMs: number): Promise<Settled> {
  const key = addonKey(p.addon, p.period);
  if (await findEntry(c, state.id, key)) return { outcome: 'paid', state };
  const data = { account_id: state.id, addon: p.addon, month: p.period, currency: state.currency, amount: formatMicros(p.price) };
  const timestamp = new Date(nowMs).toISOString();
  const balance = balanceAt(state, nowMs);
  if (p.shortfall === 'suspend' && balance < p.price) {
    await recordNotifications(c, [{
      accountId: state.id, cause: `${key}:suspended`,
      payload: { type: 'addon.suspended', timestamp, data: { ...data, entry_id: null, balance_after: formatMicros(balance) } },
    }], nowMs);
    return { outcome: 'suspended', state };
  }

  const next = await deduct(c, state, p.price, nowMs);
  const [entry] = await recordEntries(c, [{
    account_id: state.id, kind: 'addon', amount: -p.price, currency: state.currency, grant_id: null, overdraft_paid: 0n,
    balance_after: balanceAt(next, nowMs), reason: `add-on ${p.name} (${p.addon}) for the period ${p.period}`, idempotency_key: key,
    request_hash: createHash('sha256').update(JSON.stringify([p.addon, p.period, p.price.toString()])).digest('hex'),
  }]);
  next.ledgerSeq = BigInt(entry!.seq);
  await recordNotifications(c, [{
    accountId: state.id, cause: key,
    payload: { type: 'addon.deducted', timestamp: entry!.created_at, data: { ...data, entry_id: entry!.entry_id, balance_after: entry!.balance_after } },
  }], nowMs);
  return { outcome: 'charged', entry: entry!, state: next };
}

/**
 * The plan in effect for `period`: the pending plan from the period its change takes effect, the
 * current one before, so a run at a period start charges the new plan's price whether or not the
 * allowance job has switched the plan yet.
 */
export async function planForPeriod(c: PoolClient, accountId: string, period: string): Promise<PlanRecord> {
  const account = (await getAccountPlan(c, accountId))!;
  const pending = account.pendingPlanId !== null && account.pendingPlanAt !== null
    && periodStart(period, account.billingAnchorDay) >= account.pendingPlanAt.getTime();
  return (await getPlan(c, pending ? account.pendingPlanId! : account.planId))!;
}

export interface AddonRun {
  /** Periods charged in this run, as (account, add-on, period). */
  charged: { accountId: string; addon: string; period: string }[];
  suspended: { accountId: string; addon: string; period: string }[];
  /** Periods an earlier (crashed or concurrent) run had charged already. */
  paid: number;
}

/**
 * The add-on job: every active or suspended add-on of an open account is settled for each period
 * from the one after its last to the account's current one (a late run settles the missed
 * periods, each under its own key and period), one transaction per account. A suspended add-on
 * is tried again each period and is active again once a period is charged. Exactly once per
 * (account, add-on, period) however often it runs, after a crash midway or two at once: the ledger
 * key, read under the account's lock. `accounts` limits the run (an operator's rerun; tests).
 */
export async function chargeAddons(
  order: WriteOrder,
  opts: { now?: number; accounts?: readonly string[]; log?: Logger } = {},
): Promise<AddonRun> {
  const nowMs = opts.now ?? order.now();
  const month = monthAt(nowMs);
  const run: AddonRun = { charged: [], suspended: [], paid: 0 };
  const due = await accountsWithAddonsDue(order.pool, { month, previous: addMonths(month, -1), day: new Date(nowMs).getUTCDate() }, opts);
  for (const accountId of due) {
    const done = await order.run<AddonRun>({
      name: 'charge-addons',
      async transaction(c) {
        const out: AddonRun = { charged: [], suspended: [], paid: 0 };
        const locked = (await loadAccountStates(c, [accountId], { forUpdate: true, nowMs })).get(accountId)!;
        let state = locked;
        let changed = false;
        const account = (await getAccountPlan(c, accountId))!;
        const current = periodAt(nowMs, account.billingAnchorDay);
        const entries: LedgerEntry[] = [];
        for (const addon of await listAccountAddons(c, accountId)) {
          if (addon.state === 'inactive') continue;
          let addonState = addon.state;
          let last = addon.lastPeriod;
          for (const period of monthsFromTo(addMonths(addon.lastPeriod, 1), current)) {
            const plan = await planForPeriod(c, accountId, period);
            // Never missing: neither a plan update nor a plan change can take away an add-on in use.
            const offer = plan.addons.find((o) => o.id === addon.addonId);
            if (!offer) throw new Error(`plan ${plan.id} does not offer add-on ${addon.addonId}, active on account ${accountId}`);
            const settled = await settleAddonPeriod(c, state, {
              addon: addon.addonId, name: offer.name, price: offer.monthlyPrice, period, shortfall: plan.addonShortfall,
            }, nowMs);
            state = settled.state;
            last = period;
            const at = { accountId, addon: addon.addonId, period };
            if (settled.outcome === 'charged') {
              entries.push(settled.entry);
              out.charged.push(at);
            } else if (settled.outcome === 'paid') {
              out.paid += 1;
            } else {
              out.suspended.push(at);
            }
            addonState = settled.outcome === 'suspended' ? 'suspended' : 'active';
          }
          if (last !== addon.lastPeriod) {
            await saveAccountAddon(c, { ...addon, state: addonState, lastPeriod: last, updatedAt: new Date(nowMs) });
            changed = true;
          }
        }
        // The balance alerts (low, zero) judge the account as all its charges left it.
        if (entries.length > 0) await recordAlerts(c, [{ before: locked, after: state }], nowMs, true);
        return {
          commit: changed,
          value: out,
          publish: async (send) => {
            await publishEntries(send, order.topics.entries, entries);
            await markEntriesPublished(order.pool, entries);
          },
          states: entries.length > 0 ? [state] : [],
        };
      },
    });
    run.charged.push(...done.charged);
    run.suspended.push(...done.suspended);
    run.paid += done.paid;
  }
  if (run.charged.length + run.suspended.length > 0) {
    opts.log?.info({ charged: run.charged.length, suspended: run.suspended.length, paid: run.paid }, 'add-ons charged');
  }
  return run;
}
