import type { Logger } from '@meterstream/platform/logger';
import type { Pool } from '@meterstream/platform/postgres';
import { releaseHold as releaseStored, type HoldRecord } from '@meterstream/platform/stores/holds';
import type { GateCache } from '../gate-cache.js';

/**
 * Releases an open hold: its call failed and costs nothing. Postgres first (the truth), then the
 * gate in Redis frees the amount; should Redis not answer, the hold's expiry frees it there, so a
 * failed release only refuses more than needed meanwhile. Releasing a released or expired hold
 * answers it as it stands; a captured one stays captured. undefined: no such hold. onlyAccount:
 * a hold of another account is answered as it stands, not released.
 */
export async function releaseHold(
  deps: { pool: Pool; gate: GateCache; log: Pick<Logger, 'info' | 'warn'>; now: () => number }, holdId: string,
  opts: { onlyAccount?: string } = {},
): Promise<HoldRecord | undefined> {
  const r = await releaseStored(deps.pool, holdId, new Date(deps.now()), opts.onlyAccount);
  if (!r) return undefined;
  if (r.released) {
    await deps.gate.close(r.hold.accountId, [holdId]).catch((e: unknown) => {
      deps.log.warn({ err: (e as Error).message, holdId }, 'Redis did not free a released hold; its expiry will');
    });
  }
  return r.hold;
}
