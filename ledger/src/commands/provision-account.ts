import { z } from 'zod';
import { BillingMode, Currency, type Grant } from '@meterstream/schemas';
import { queryRows } from '@meterstream/platform/stores/rows';
import { TenantNotFoundError } from '@meterstream/platform/stores/tenants';
import { monthAt } from '../core/months.js';
import type { WriteOrder } from '../write-order.js';
import { addGrantCommand } from './add-grant.js';
import { allowanceGrant } from './grant-allowances.js';

export { TenantNotFoundError };

/**
 * What a tenant's first use of an account id found:
 *   created — it was unknown and is now the tenant's, on the tenant's default plan;
 *   own     — it is the tenant's already (made earlier, or by a concurrent first call);
 *   foreign — it belongs to another tenant, or to none (an account opened by sign-up);
 *   off     — it is unknown and the tenant's default plan does not provision on first use.
 */
export type Provisioned = 'created' | 'own' | 'foreign' | 'off';

export interface ProvisionResult {
  outcome: Provisioned;
  /** The month's allowance granted with the account (created only; null when the plan has none). */
  allowance: Grant | null;
}

const DefaultPlan = z.object({
  plan_id: z.string(), currency: Currency, billing_mode: BillingMode, provision_on_first_use: z.boolean(),
  monthly_allowance_amount: z.bigint(), allowance_rollover_months: z.number().int(),
});
const Owner = z.object({ tenant_id: z.string().nullable() });

/**
 * Provisions an account on a tenant's first billable use (seed 002): when the account id is
 * unknown and the tenant's default plan has provision_on_first_use, one transaction creates it
 * (that id, the tenant's, the default plan, created now by the ledger's clock, no email: hence no
 * owner member and no signup gift) and grants this month's allowance through the monthly job's
 * request (allowance:<month>), so the job sees it granted and never grants it twice.
 * Exactly once under concurrent first calls: the account's primary key lets one INSERT through;
 * the others wait for it to commit and find the account (own). Nothing is published or cached
 * unless the account was created.
 */
export async function provisionAccount(order: WriteOrder, req: { tenantId: string; accountId: string }): Promise<ProvisionResult> {
  return order.run<ProvisionResult>({
    name: 'provision-account',
    async transaction(c) {
      const [plan] = await queryRows(c, 'tenants', DefaultPlan,
        `SELECT p.id AS plan_id, p.currency, p.billing_mode, p.provision_on_first_use, p.monthly_allowance_amount, p.allowance_rollover_months
           FROM tenants t JOIN plans p ON p.id = t.default_plan_id WHERE t.id = $1`, [req.tenantId]);
      if (!plan) throw new TenantNotFoundError(`tenant ${req.tenantId} does not exist`);
      const nowMs = order.now();
      const inserted = plan.provision_on_first_use && (await c.query(
        `INSERT INTO accounts (id, email, currency, billing_mode, plan_id, tenant_id, created_at)
         VALUES ($1, NULL, $2, $3, $4, $5, to_timestamp($6::double precision / 1000))
         ON CONFLICT (id) DO NOTHING`,
        [req.accountId, plan.currency, plan.billing_mode, plan.plan_id, req.tenantId, nowMs],
      )).rowCount === 1;
      if (!inserted) {
        const [existing] = await queryRows(c, 'accounts', Owner, 'SELECT tenant_id FROM accounts WHERE id = $1', [req.accountId]);
        const outcome: Provisioned = !existing ? 'off' : existing.tenant_id === req.tenantId ? 'own' : 'foreign';
        return { commit: false, value: { outcome, allowance: null } };
      }
      if (plan.monthly_allowance_amount === 0n) return { commit: true, value: { outcome: 'created', allowance: null } };
      const granted = await addGrantCommand(order, allowanceGrant({
        accountId: req.accountId, month: monthAt(nowMs), amount: plan.monthly_allowance_amount, rolloverMonths: plan.allowance_rollover_months,
      })).transaction(c);
      return { ...granted, value: { outcome: 'created', allowance: granted.value.grant } };
    },
  });
}
