import type { Pool } from '@meterstream/platform/postgres';
import { tenantsOfAccounts } from '@meterstream/platform/stores/tenants';
import { provisionAccount, type Provisioned } from '@meterstream/ledger/commands/provision-account';
import type { WriteOrder } from '@meterstream/ledger/write-order';
import type { BatchVerdict } from './event-batch.js';

/**
 * What a tenant's service key may do with an account id: use it (own: the tenant's, created now
 * or before), nothing (foreign: another tenant's or no tenant's account: FORBIDDEN), or send its
 * events unchecked (unknown: no such account and the tenant does not provision; the rater
 * dead-letters them UNKNOWN_ACCOUNT, as it does for any unknown account).
 */
export type TenantAccess = 'own' | 'foreign' | 'unknown';

const ACCESS: Record<Provisioned, TenantAccess> = { created: 'own', own: 'own', foreign: 'foreign', off: 'unknown' };

/**
 * Resolves the accounts a tenant's request names, provisioning the unknown ones on first use
 * (provision-account: with the tenant default plan's provision_on_first_use). An account never
 * changes tenant, so each found account's tenant is remembered (bounded): a tenant's steady
 * traffic costs no query. Unknown accounts are not remembered (provisioning may be turned on, the
 * account may be opened); each is provisioned once per request, and concurrent requests of this
 * instance for one new id share one provisioning.
 */
export class AccountProvisioner {
  /** account id -> its tenant (null: an account of no tenant), insertion-ordered for eviction. */
  private readonly tenantOf = new Map<string, string | null>();
  private readonly inFlight = new Map<string, Promise<Provisioned>>();

  constructor(private readonly pool: Pool, private readonly ledger: WriteOrder, private readonly maxCached = 100_000) {}

  /** Each named account's access for the tenant; call it before producing the events. */
  async resolve(tenantId: string, accountIds: Iterable<string>): Promise<Map<string, TenantAccess>> {
    const access = new Map<string, TenantAccess>();
    const missing: string[] = [];
    for (const id of new Set(accountIds)) {
      const cached = this.tenantOf.get(id);
      if (cached === undefined) missing.push(id);
      else access.set(id, cached === tenantId ? 'own' : 'foreign');
    }
    if (missing.length === 0) return access;
    const found = await tenantsOfAccounts(this.pool, missing);
    for (const id of missing) {
      const owner = found.get(id);
      if (owner !== undefined) {
        this.remember(id, owner);
        access.set(id, owner === tenantId ? 'own' : 'foreign');
        continue;
      }
      // One at a time: first uses are rare, and a burst of new ids must not take the whole pool.
      const outcome = await this.provision(tenantId, id);
      if (outcome === 'created' || outcome === 'own') this.remember(id, tenantId);
      access.set(id, ACCESS[outcome]);
    }
    return access;
  }

  /** The gate's (POST /v1/authorize) way in: one account's access, provisioned on first use. */
  async resolveOne(tenantId: string, accountId: string): Promise<TenantAccess> {
    return (await this.resolve(tenantId, [accountId])).get(accountId)!;
  }

  private provision(tenantId: string, accountId: string): Promise<Provisioned> {
    const key = `${tenantId}\u0000${accountId}`;
    let pending = this.inFlight.get(key);
    if (!pending) {
      pending = provisionAccount(this.ledger, { tenantId, accountId })
        .then((r) => r.outcome)
        .finally(() => this.inFlight.delete(key));
      this.inFlight.set(key, pending);
    }
    return pending;
  }

  private remember(accountId: string, tenantId: string | null): void {
    if (this.tenantOf.size >= this.maxCached) this.tenantOf.delete(this.tenantOf.keys().next().value!);
    this.tenantOf.set(accountId, tenantId);
  }
}

const perApp = new WeakMap<WriteOrder, AccountProvisioner>();

/**
 * The app's one provisioner (one per route context's ledger), so that the routes resolving tenant
 * accounts (POST /v1/events, the gate's POST /v1/authorize) share its cache.
 */
export function provisionerOf(ctx: { pool: Pool; ledger: WriteOrder }): AccountProvisioner {
  let provisioner = perApp.get(ctx.ledger);
  if (!provisioner) perApp.set(ctx.ledger, provisioner = new AccountProvisioner(ctx.pool, ctx.ledger));
  return provisioner;
}

/**
 * A tenant key's batch after judgeEvents (which judged everything but access): its accounts
 * resolved, unknown ones provisioned on first use, and each event of another tenant's account
 * rejected on its own (FORBIDDEN), as an account key's events for another account are.
 */
export async function screenTenantEvents(
  provisioner: AccountProvisioner, tenantId: string, verdict: BatchVerdict, count: number,
): Promise<BatchVerdict> {
  const access = await provisioner.resolve(tenantId, verdict.events.map((e) => e.account_id));
  if (![...access.values()].includes('foreign')) return verdict;
  // The accepted events are the indexes judgeEvents did not reject, in order.
  const rejectedAt = new Set(verdict.rejected.map((r) => r.index));
  const out: BatchVerdict = { events: [], rejected: [...verdict.rejected] };
  let next = 0;
  for (let index = 0; index < count; index++) {
    if (rejectedAt.has(index)) continue;
    const event = verdict.events[next++]!;
    if (access.get(event.account_id) !== 'foreign') out.events.push(event);
    else out.rejected.push({ index, id: event.id, code: 'FORBIDDEN', message: `this API key cannot send events for account ${event.account_id}` });
  }
  out.rejected.sort((a, b) => a.index - b.index);
  return out;
}
