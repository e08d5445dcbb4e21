import { randomUUID } from 'node:crypto';
import { inTransaction, type Pool } from '@meterstream/platform/postgres';
import type { GrantInput, Grant } from '@meterstream/schemas';
import { formatMicros, toMicros } from '@meterstream/schemas';
import { compareBurnOrder, loadAccountStates, type AccountState } from './account-state.js';
import type { BalanceCache } from './balance-cache.js';

export class AccountNotFoundError extends Error {
  override readonly name = 'AccountNotFoundError';
}

/**
 * Adds credits to an account. A prepaid account that went below zero pays its overdraft off
 * from the new grant first, so the balance is always grants minus what is owed.
 */
export async function addGrant(pool: Pool, cache: BalanceCache, accountId: string, input: GrantInput): Promise<Grant> {
  const amount = toMicros(input.amount);
  const id = randomUUID();
  const { grant, state } = await inTransaction(pool, async (c) => {
    const state = (await loadAccountStates(c, [accountId], { forUpdate: true })).get(accountId);
    if (!state) throw new AccountNotFoundError(`account ${accountId} does not exist`);
    const paidOff = state.overdraft < amount ? state.overdraft : amount;
    const remaining = amount - paidOff;
    const inserted = await c.query<{ created_at: Date; created_seq: bigint }>(
      `INSERT INTO grants (id, account_id, kind, amount, remaining, expires_at, priority)
       VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING created_at, created_seq`,
      [id, accountId, input.kind, amount, remaining, input.expires_at ?? null, input.priority],
    );
    const row = inserted.rows[0]!;
    const seq = await c.query<{ ledger_seq: bigint }>(
      'UPDATE accounts SET overdraft = overdraft - $2, ledger_seq = ledger_seq + 1 WHERE id = $1 RETURNING ledger_seq',
      [accountId, paidOff],
    );
    const next: AccountState = {
      ...state,
      overdraft: state.overdraft - paidOff,
      ledgerSeq: seq.rows[0]!.ledger_seq,
      grants: remaining > 0n
        ? [...state.grants, {
            id, kind: input.kind, amount, remaining,
            expiresAt: input.expires_at ? Date.parse(input.expires_at) : null,
            priority: input.priority, createdSeq: row.created_seq,
          }].sort(compareBurnOrder)
        : state.grants,
    };
    const grant: Grant = {
      id, account_id: accountId, kind: input.kind, amount: formatMicros(amount), remaining: formatMicros(remaining),
      expires_at: input.expires_at ? new Date(input.expires_at).toISOString() : null,
      priority: input.priority, created_at: row.created_at.toISOString(),
    };
    return { grant, state: next };
  });
  // Postgres has committed. A failed cache write leaves Redis behind, which readers notice by
  // comparing its ledger seq with Postgres's (BalanceCache.readThrough) and repair.
  await cache.write([state]).catch(() => undefined);
  return grant;
}
