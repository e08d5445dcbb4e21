import { createHash } from 'node:crypto';
import type { PoolClient } from '@meterstream/platform/postgres';
import { balanceAt, loadAccountStates, type AccountState } from '../account-state.js';
import { markEntriesPublished, publishEntries, recordEntries, type NewLedgerEntry } from '../entries.js';
import { recordAlerts } from '../outbox.js';
import type { WriteOrder } from '../write-order.js';

export interface ExpiredGrants {
  accounts: number;
  grants: number;
  /** Micro-units that left the balances. */
  lost: bigint;
}

/** The one key an expiry has: a grant expires once. */
export const expiryKey = (grantId: string) => `expiry:${grantId}`;

/** Accounts holding a grant with something left that expired at or before `atMs`. */
async function accountsWithExpired(c: PoolClient, atMs: number, limit: number, accounts: readonly string[] | undefined): Promise<string[]> {
  const r = await c.query<{ account_id: string }>(
    `SELECT DISTINCT account_id FROM grants
      WHERE remaining > 0 AND expires_at <= to_timestamp($1::double precision / 1000)
        AND ($3::text[] IS NULL OR account_id = ANY($3::text[]))
      ORDER BY account_id LIMIT $2`,
    [atMs, limit, accounts ?? null],
  );
  return r.rows.map((row) => row.account_id);
}

/**
 * Takes what is left of every grant expired at `now` (order.now() by default) out of the
 * account: remaining goes to 0 and a ledger entry of kind expiry records the amount lost (negative),
 * keyed expiry:<grant id>; then the entries are published and the accounts cached, so Redis and the
 * balance API show the expiry without waiting for the next event. Usage already excludes expired
 * grants by its own timestamp (core/burn.ts usableAt); this makes the loss a row in the history.
 * One transaction per `batchSize` accounts, until none is left; running it twice, or two
 * schedulers at once, expires each grant once (the account lock, then remaining = 0). `accounts`
 * limits it to some accounts (tests, which share one database).
 */
export async function expireGrants(
  order: WriteOrder,
  opts: { now?: number; batchSize?: number; accounts?: readonly string[] } = {},
): Promise<ExpiredGrants> {
  const atMs = opts.now ?? order.now();
  const batchSize = opts.batchSize ?? 500;
  const total: ExpiredGrants = { accounts: 0, grants: 0, lost: 0n };
  for (;;) {
    const batch = await order.run<ExpiredGrants>({
      name: 'expire-grants',
      async transaction(c) {
        const ids = await accountsWithExpired(c, atMs, batchSize, opts.accounts);
        const states = await loadAccountStates(c, ids, { forUpdate: true, nowMs: atMs });
        const entries: NewLedgerEntry[] = [];
        const next: AccountState[] = [];
        const done: ExpiredGrants = { accounts: 0, grants: 0, lost: 0n };
        for (const state of states.values()) {
          const expired = state.grants.filter((g) => g.expiresAt !== null && g.expiresAt <= atMs);
          if (expired.length === 0) continue;
          const after: AccountState = { ...state, grants: state.grants.filter((g) => !expired.includes(g)) };
          const balanceAfter = balanceAt(after, atMs);
          for (const g of expired) {
            entries.push({
              account_id: state.id, kind: 'expiry', amount: -g.remaining, currency: state.currency, grant_id: g.id,
              overdraft_paid: 0n, balance_after: balanceAfter, reason: `${g.kind} grant expired at ${new Date(g.expiresAt!).toISOString()}`,
              idempotency_key: expiryKey(g.id),
              request_hash: createHash('sha256').update(JSON.stringify([g.id, g.remaining.toString()])).digest('hex'),
            });
            done.lost += g.remaining;
          }
          done.accounts += 1;
          done.grants += expired.length;
          next.push(after);
        }
        if (entries.length === 0) return { commit: false, value: done };
        await c.query('UPDATE grants SET remaining = 0 WHERE id = ANY($1::text[])', [entries.map((e) => e.grant_id)]);
        const recorded = await recordEntries(c, entries);
        for (const state of next) {
          state.ledgerSeq = BigInt(Math.max(...recorded.filter((e) => e.account_id === state.id).map((e) => e.seq)));
        }
        // Credits leaving may take a balance under its alert thresholds.
        await recordAlerts(c, next.map((after) => ({ before: states.get(after.id)!, after })), atMs, true);
        return {
          commit: true,
          value: done,
          publish: async (send) => {
            await publishEntries(send, order.topics.entries, recorded);
            await markEntriesPublished(order.pool, recorded);
          },
          states: next,
        };
      },
    });
    total.accounts += batch.accounts;
    total.grants += batch.grants;
    total.lost += batch.lost;
    if (batch.accounts < batchSize) return total;
  }
}
