import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { PlanNotFoundError } from './plans.js';
import { queryRows, type Db } from './rows.js';

export class TenantNotFoundError extends Error {
  override readonly name = 'TenantNotFoundError';
}
export class TenantExistsError extends Error {
  override readonly name = 'TenantExistsError';
}

/** An operator selling usage to accounts of its own (migration 011), with service keys of its own. */
export interface TenantRecord {
  id: string;
  name: string;
  defaultPlanId: string;
  createdAt: Date;
}

export const TenantRow = z
  .object({ id: z.string(), name: z.string(), default_plan_id: z.string(), created_at: z.date() })
  .transform((r): TenantRecord => ({ id: r.id, name: r.name, defaultPlanId: r.default_plan_id, createdAt: r.created_at }));

const COLUMNS = 'id, name, default_plan_id, created_at';

export async function createTenant(db: Db, input: { id?: string; name: string; defaultPlanId: string }): Promise<TenantRecord> {
  const id = input.id ?? `ten_${randomBytes(12).toString('hex')}`;
  try {
    const [tenant] = await queryRows(db, 'tenants', TenantRow,
      `INSERT INTO tenants (id, name, default_plan_id) VALUES ($1, $2, $3) RETURNING ${COLUMNS}`, [id, input.name, input.defaultPlanId]);
    return tenant!;
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === '23503') throw new PlanNotFoundError(input.defaultPlanId);
    if (code === '23505') throw new TenantExistsError(`tenant ${id} already exists`);
    throw e;
  }
}

export async function getTenant(db: Db, id: string): Promise<TenantRecord | undefined> {
  const [tenant] = await queryRows(db, 'tenants', TenantRow, `SELECT ${COLUMNS} FROM tenants WHERE id = $1`, [id]);
  return tenant;
}

/**
 * The tenant of each of these accounts that exists (null: an account of no tenant), in one query:
 * what a tenant key's access to a batch of accounts is judged by.
 */
export async function tenantsOfAccounts(db: Db, accountIds: readonly string[]): Promise<Map<string, string | null>> {
  const rows = await queryRows(db, 'accounts', z.object({ id: z.string(), tenant_id: z.string().nullable() }),
    'SELECT id, tenant_id FROM accounts WHERE id = ANY($1::text[])', [[...new Set(accountIds)]]);
  return new Map(rows.map((r) => [r.id, r.tenant_id]));
}
