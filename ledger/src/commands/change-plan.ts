import { createHash } from 'node:crypto';
import { addonsNotOffered } from '@meterstream/platform/stores/addons';
import { getAccountPlan, getPlan, PlanNotFoundError, setPendingPlan, type AccountPlanRecord } from '@meterstream/platform/stores/plans';
import { balanceAt, loadAccountStates } from '../account-state.js';
import { nextPeriodStart } from '../core/months.js';
import { IdempotencyConflictError, markEntriesPublished, publishEntries, recordEntries } from '../entries.js';
import { recordNotifications } from '../outbox.js';
import type { WriteOrder } from '../write-order.js';
import { AccountNotFoundError } from './activate-addon.js';

export { AccountNotFoundError, IdempotencyConflictError, PlanNotFoundError };

/** The change cannot be made as asked (another currency or billing mode, an add-on the plan lacks, no change): HTTP 400. */
export class PlanChangeRefusedError extends Error {
  override readonly name = 'PlanChangeRefusedError';
  constructor(readonly code: 'PLAN_MISMATCH' | 'BILLING_MODE_CHANGE' | 'ADDON_NOT_OFFERED' | 'PLAN_UNCHANGED', message: string) {
    super(message);
  }
}

export interface ChangePlanRequest {
  accountId: string;
  planId: string;
  /** The caller's key: the same key with the same plan schedules the change once. */
  idempotencyKey: string;
}

export interface ChangedPlan {
  /** The account's plan state after the change (or, for a replay, as it stands now). */
  account: AccountPlanRecord;
  replayed: boolean;
}

const requestHash = (planId: string) => createHash('sha256').update(JSON.stringify(['plan_change', planId])).digest('hex');

/**
 * Schedules the account's move to another plan at the start of its next period (its billing anchor
 * day, 00:00 UTC), when the allowance job switches it and grants the new plan's allowance; naming
 * the current plan cancels a pending change. The change is a ledger entry of kind plan_change
 * (amount 0: the history shows it) and a plan.changed notification, in one transaction with the
 * account's pending plan. The new plan must have the account's currency and billing mode: a
 * billing mode is not switched under an account (its overdraft, postpaid accrual, limits and
 * invoices are kept per mode), and must offer every add-on the account has in use. Idempotent by
 * key: the same key and plan again answers the account as it stands, moving nothing.
 */
export async function changePlan(order: WriteOrder, req: ChangePlanRequest): Promise<ChangedPlan> {
  return order.run<ChangedPlan>({
    name: 'change-plan',
    async transaction(c) {
      const nowMs = order.now();
      // A closed account is as unknown: nothing is charged or scheduled on it.
      const state = (await loadAccountStates(c, [req.accountId], { forUpdate: true, nowMs, excludeClosed: true })).get(req.accountId);
      if (!state) throw new AccountNotFoundError(req.accountId);
      const account = (await getAccountPlan(c, req.accountId))!;
      const earlier = await c.query<{ kind: string; request_hash: string }>(
        'SELECT kind, request_hash FROM ledger_entries WHERE account_id = $1 AND idempotency_key = $2', [req.accountId, req.idempotencyKey]);
      if (earlier.rows[0]) {
        if (earlier.rows[0].kind !== 'plan_change' || earlier.rows[0].request_hash !== requestHash(req.planId)) {
          throw new IdempotencyConflictError(req.accountId, req.idempotencyKey);
        }
        return { commit: false, value: { account, replayed: true } };
      }

      const plan = await getPlan(c, req.planId);
      if (!plan) throw new PlanNotFoundError(req.planId);
      if (plan.currency !== account.currency) {
        throw new PlanChangeRefusedError('PLAN_MISMATCH', `plan ${plan.id} is in ${plan.currency}; account ${account.accountId} is in ${account.currency}`);
      }
      if (plan.billingMode !== account.billingMode) {
        throw new PlanChangeRefusedError('BILLING_MODE_CHANGE',
          `plan ${plan.id} is ${plan.billingMode}; account ${account.accountId} is ${account.billingMode}, and a plan change keeps the billing mode ` +
          '(its balance, overdraft, monthly limit and invoices are kept per mode): open an account on the other mode instead');
      }
      const cancel = plan.id === account.planId;
      if (cancel && account.pendingPlanId === null) {
        throw new PlanChangeRefusedError('PLAN_UNCHANGED', `account ${account.accountId} is on plan ${plan.id} already, with no change pending`);
      }
      const missing = cancel ? [] : await addonsNotOffered(c, account.accountId, plan.id);
      if (missing.length > 0) {
        throw new PlanChangeRefusedError('ADDON_NOT_OFFERED', `plan ${plan.id} does not offer the add-ons ${missing.join(', ')} in use on the account: deactivate them first`);
      }

      const effectiveAt = new Date(nextPeriodStart(nowMs, account.billingAnchorDay));
      await setPendingPlan(c, account.accountId, cancel ? null : { planId: plan.id, at: effectiveAt });
      const [entry] = await recordEntries(c, [{
        account_id: account.accountId, kind: 'plan_change', amount: 0n, currency: state.currency, grant_id: null, overdraft_paid: 0n,
        balance_after: balanceAt(state, nowMs),
        reason: cancel
          ? `change to plan ${account.pendingPlanId} cancelled: plan ${plan.id} stays`
          : `plan ${account.planId} -> ${plan.id} from ${effectiveAt.toISOString()}`,
        idempotency_key: req.idempotencyKey, request_hash: requestHash(plan.id),
      }]);
      await recordNotifications(c, [{
        accountId: account.accountId, cause: `plan_change:${entry!.entry_id}`,
        payload: {
          type: 'plan.changed', timestamp: entry!.created_at,
          data: {
            account_id: account.accountId, from_plan: account.planId, to_plan: plan.id,
            effective_at: (cancel ? new Date(nowMs) : effectiveAt).toISOString(),
          },
        },
      }], nowMs);
      return {
        commit: true,
        value: { account: (await getAccountPlan(c, account.accountId))!, replayed: false },
        publish: async (send) => {
          await publishEntries(send, order.topics.entries, [entry!]);
          await markEntriesPublished(order.pool, [entry!]);
        },
        states: [{ ...state, ledgerSeq: BigInt(entry!.seq) }],
      };
    },
  });
}
