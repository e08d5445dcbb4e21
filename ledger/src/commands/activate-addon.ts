import { AccountNotFoundError } from '@meterstream/platform/stores/accounts';
import { getAccountAddon, lockPlanAddon, saveAccountAddon, type AccountAddonRecord } from '@meterstream/platform/stores/addons';
import { getAccountPlan, getPlan } from '@meterstream/platform/stores/plans';
import { loadAccountStates } from '../account-state.js';
import { periodAt } from '../core/months.js';
import { markEntriesPublished, publishEntries } from '../entries.js';
import { recordAlerts } from '../outbox.js';
import type { WriteOrder } from '../write-order.js';
import { settleAddonPeriod, type Settled } from './charge-addons.js';

export { AccountNotFoundError };

/** The account's plan (or the plan it is moving to) does not offer the add-on. */
export class AddonNotOfferedError extends Error {
  override readonly name = 'AddonNotOfferedError';
}

export interface ActivatedAddon {
  addon: AccountAddonRecord;
  /** What activating did for the current period; null: it was active already. */
  settled: Settled['outcome'] | null;
}

/**
 * Activates an add-on of the account's plan (seed 003): its monthly price is deducted now for the
 * current period (settleAddonPeriod: once per add-on and period, so deactivating and activating
 * again within a period it was paid for costs nothing more), and then at each period start by the
 * add-on job. When credits do not cover it and the plan suspends, the add-on is recorded suspended
 * (with its notification) and nothing moves; activating it again tries again. Active already: a
 * no-op. A pending plan change must offer it too, so that it never runs on a plan without a price.
 */
export async function activateAddon(order: WriteOrder, req: { accountId: string; addon: string }): Promise<ActivatedAddon> {
  return order.run<ActivatedAddon>({
    name: 'activate-addon',
    async transaction(c) {
      const nowMs = order.now();
      // A closed account is as unknown: nothing is charged or scheduled on it.
      const state = (await loadAccountStates(c, [req.accountId], { forUpdate: true, nowMs, excludeClosed: true })).get(req.accountId);
      if (!state) throw new AccountNotFoundError(req.accountId);
      const account = (await getAccountPlan(c, req.accountId))!;
      const offer = await lockPlanAddon(c, account.planId, req.addon);
      if (!offer) throw new AddonNotOfferedError(`plan ${account.planId} does not offer add-on ${req.addon}`);
      if (account.pendingPlanId !== null && !(await lockPlanAddon(c, account.pendingPlanId, req.addon))) {
        throw new AddonNotOfferedError(`add-on ${req.addon}: plan ${account.pendingPlanId}, which the account moves to on ${account.pendingPlanAt!.toISOString()}, does not offer it`);
      }
      const earlier = await getAccountAddon(c, req.accountId, req.addon);
      if (earlier?.state === 'active') return { commit: false, value: { addon: earlier, settled: null } };

      const period = periodAt(nowMs, account.billingAnchorDay);
      const plan = (await getPlan(c, account.planId))!;
      const settled = await settleAddonPeriod(c, state, { addon: req.addon, name: offer.name, price: offer.monthlyPrice, period, shortfall: plan.addonShortfall }, nowMs);
      const now = new Date(nowMs);
      await saveAccountAddon(c, {
        accountId: req.accountId, addonId: req.addon, state: settled.outcome === 'suspended' ? 'suspended' : 'active', lastPeriod: period,
        activatedAt: earlier?.state === 'suspended' ? earlier.activatedAt : now, updatedAt: now,
      });
      const addon = (await getAccountAddon(c, req.accountId, req.addon))!;
      const entries = settled.outcome === 'charged' ? [settled.entry] : [];
      if (entries.length > 0) await recordAlerts(c, [{ before: state, after: settled.state }], nowMs, true);
      return {
        commit: true,
        value: { addon, settled: settled.outcome },
        publish: async (send) => {
          await publishEntries(send, order.topics.entries, entries);
          await markEntriesPublished(order.pool, entries);
        },
        states: entries.length > 0 ? [settled.state] : [],
      };
    },
  });
}
