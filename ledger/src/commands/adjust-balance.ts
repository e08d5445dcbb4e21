import { createHash } from 'node:crypto';
import { type LedgerEntry } from '@meterstream/schemas';
import { balanceAt, loadAccountStates, type AccountState } from '../account-state.js';
import { findEntry, IdempotencyConflictError, markEntriesPublished, publishEntries, recordEntries } from '../entries.js';
import { recordAlerts } from '../outbox.js';
import type { WriteOrder } from '../write-order.js';
import { deduct } from './charge-addons.js';
import { AccountNotFoundError, insertGrant } from './add-grant.js';

export { AccountNotFoundError, IdempotencyConflictError };

export interface AdjustBalanceRequest {
  accountId: string;
  /** Signed micro-units, never zero: positive adds credits, negative takes them. */
  amount: bigint;
  reason: string;
  /** The caller's key: the same key with the same request adjusts once. */
  idempotencyKey: string;
}

export interface Adjusted {
  /** The ledger entry of kind adjustment, as first recorded (a replay answers it again). */
  entry: LedgerEntry;
  replayed: boolean;
}

const requestHash = (amount: bigint, reason: string) =>
  createHash('sha256').update(JSON.stringify(['adjustment', amount.toString(), reason])).digest('hex');

/**
 * An operator's correction with its reason (issue 9), once per idempotency key: a positive amount
 * adds a promotional grant without expiry (paying a prepaid overdraft off first, as any grant);
 * a negative one takes credits as usage does, in burn order, the rest going to the prepaid
 * overdraft or the month's postpaid accrual. Either way one ledger entry of kind adjustment
 * carrying the reason. The same key with another amount or reason throws IdempotencyConflictError.
 */
export async function adjustBalance(order: WriteOrder, { accountId, amount, reason, idempotencyKey }: AdjustBalanceRequest): Promise<Adjusted> {
  const hash = requestHash(amount, reason);
  return order.run<Adjusted>({
    name: 'adjust-balance',
    async transaction(c) {
      const nowMs = order.now();
      const state = (await loadAccountStates(c, [accountId], { forUpdate: true, nowMs })).get(accountId);
      if (!state) throw new AccountNotFoundError(accountId);
      const earlier = await findEntry(c, accountId, idempotencyKey);
      if (earlier) {
        const same = await c.query('SELECT 1 FROM ledger_entries WHERE account_id = $1 AND idempotency_key = $2 AND kind = $3 AND request_hash = $4',
          [accountId, idempotencyKey, 'adjustment', hash]);
        if (same.rowCount === 0) throw new IdempotencyConflictError(accountId, idempotencyKey);
        return { commit: false, value: { entry: earlier, replayed: true } };
      }

      let next: AccountState;
      let grantId: string | null = null;
      let paidOff = 0n;
      if (amount > 0n) {
        ({ id: grantId, paidOff, next } = await insertGrant(c, state, { kind: 'promotional', amount, expiresAt: null, expiresAtText: null, priority: 100 }));
      } else {
        next = await deduct(c, state, -amount, nowMs);
      }
      const [entry] = await recordEntries(c, [{
        account_id: accountId, kind: 'adjustment', amount, currency: state.currency, grant_id: grantId, overdraft_paid: paidOff,
        balance_after: balanceAt(next, nowMs), reason, idempotency_key: idempotencyKey, request_hash: hash,
      }]);
      next.ledgerSeq = BigInt(entry!.seq);
      // A deduction may cross the low/zero thresholds; a credit only re-arms them.
      await recordAlerts(c, [{ before: state, after: next }], nowMs, amount < 0n);
      return {
        commit: true,
        value: { entry: entry!, replayed: false },
        publish: async (send) => {
          await publishEntries(send, order.topics.entries, [entry!]);
          await markEntriesPublished(order.pool, [entry!]);
        },
        states: [next],
      };
    },
  });
}
