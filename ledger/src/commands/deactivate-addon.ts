import type { Pool } from '@meterstream/platform/postgres';
import { getAccountAddon, saveAccountAddon, type AccountAddonRecord } from '@meterstream/platform/stores/addons';
import { inTransaction } from '@meterstream/platform/postgres';

export class AddonNotActivatedError extends Error {
  override readonly name = 'AddonNotActivatedError';
}

/**
 * Deactivates the account's add-on: no deduction from the next period on, and no refund of the
 * current one (seed 003). Moves no money, so it needs no ledger entry; under the account's lock,
 * so the add-on job never charges a period after it. Inactive already: answered as it is.
 */
export async function deactivateAddon(pool: Pool, req: { accountId: string; addon: string; nowMs: number }): Promise<AccountAddonRecord> {
  return inTransaction(pool, async (c) => {
    await c.query('SELECT 1 FROM accounts WHERE id = $1 FOR NO KEY UPDATE', [req.accountId]);
    const addon = await getAccountAddon(c, req.accountId, req.addon);
    if (!addon) throw new AddonNotActivatedError(`add-on ${req.addon} was never activated on account ${req.accountId}`);
    if (addon.state === 'inactive') return addon;
    const updatedAt = new Date(req.nowMs);
    await saveAccountAddon(c, { ...addon, state: 'inactive', updatedAt });
    return { ...addon, state: 'inactive', updatedAt };
  });
}
