import { randomBytes } from 'node:crypto';
import { toMicros, type LimitKind, type LimitRequest, type LimitRequestInput } from '@meterstream/schemas';
import { loadAccountStates } from '../account-state.js';
import { limitName, limitRequestRows, money, recordLimitStep, toLimitRequest } from '../limit-requests.js';
import type { WriteOrder } from '../write-order.js';
import { AccountNotFoundError } from './add-grant.js';

export { AccountNotFoundError };

/** The account has no such limit to raise (a prepaid account's monthly limit, an allowed limit never set). */
export class LimitNotSetError extends Error {
  override readonly name = 'LimitNotSetError';
}

/** The requested limit is not above the current one. */
export class NotAnIncreaseError extends Error {
  override readonly name = 'NotAnIncreaseError';
}

/** A request for this limit is waiting for a decision already. */
export class LimitRequestPendingError extends Error {
  override readonly name = 'LimitRequestPendingError';
  constructor(readonly pendingId: string, kind: LimitKind) {
    super(`request ${pendingId} for the ${limitName(kind)} is waiting for a decision`);
  }
}

export interface RequestLimit {
  accountId: string;
  input: LimitRequestInput;
  /** The id of the API key that asked, or 'admin'. */
  requestedBy: string;
}

/**
 * A member asks for a higher limit (seed 001): the request is stored pending and the account's
 * history gets an adjustment entry of amount 0 saying so. Under the account's lock, so at most
 * one request per limit waits at a time.
 */
export async function requestLimit(order: WriteOrder, { accountId, input, requestedBy }: RequestLimit): Promise<LimitRequest> {
  return order.run<LimitRequest>({
    name: 'request-limit',
    async transaction(c) {
      const nowMs = order.now();
      const state = (await loadAccountStates(c, [accountId], { forUpdate: true, nowMs })).get(accountId);
      if (!state) throw new AccountNotFoundError(accountId);
      const limits = await c.query<{ monthly: bigint | null; allowed: bigint | null }>(
        `SELECT coalesce(a.monthly_limit, p.default_monthly_limit) AS monthly, a.allowed_limit AS allowed
           FROM accounts a JOIN plans p ON p.id = a.plan_id WHERE a.id = $1`, [accountId]);
      const { monthly, allowed } = limits.rows[0]!;
      const current = input.limit === 'monthly_limit' ? monthly : allowed;
      const name = limitName(input.limit);
      if (current === null) throw new LimitNotSetError(`account ${accountId} has no ${name} to raise`);
      const requested = toMicros(input.requested_limit);
      if (requested <= current) {
        throw new NotAnIncreaseError(`requested_limit must be above the current ${name} of ${money(current, state.currency)}`);
      }
      const pending = await c.query<{ id: string }>(
        "SELECT id FROM limit_requests WHERE account_id = $1 AND limit_kind = $2 AND status = 'pending'", [accountId, input.limit]);
      if (pending.rows[0]) throw new LimitRequestPendingError(pending.rows[0].id, input.limit);

      const id = `lr_${randomBytes(12).toString('hex')}`;
      const [row] = await limitRequestRows(c,
        `INSERT INTO limit_requests (id, account_id, limit_kind, requested_limit, current_limit, reason, status, requested_by, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7, $8) RETURNING $COLUMNS`,
        [id, accountId, input.limit, requested, current, input.reason, requestedBy, new Date(nowMs)]);
      return recordLimitStep(c, order, state, nowMs, {
        requestId: id, step: 'requested', value: toLimitRequest(row!),
        reason: `${name} increase requested (${id}): ${money(current, state.currency)} -> ${money(requested, state.currency)}: ${input.reason}`,
      });
    },
  });
}
