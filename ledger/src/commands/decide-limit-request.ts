import type { LimitRequest } from '@meterstream/schemas';
import { loadAccountStates } from '../account-state.js';
import {
  limitName, limitRequestRows, LimitRequestDecidedError, LimitRequestNotFoundError, money, recordLimitStep, toLimitRequest,
} from '../limit-requests.js';
import type { WriteOrder } from '../write-order.js';

export { LimitRequestDecidedError, LimitRequestNotFoundError };

export interface DecideLimitRequest {
  accountId: string;
  requestId: string;
  decision: 'approve' | 'reject';
  /** Who decided: 'admin' (the operator's key). */
  decidedBy: string;
  note?: string | undefined;
}

export interface DecidedLimitRequest {
  request: LimitRequest;
  /** true: decided so before; nothing changed now. */
  replayed: boolean;
}

/**
 * The operator's decision on a request: approving sets the account's limit to the requested one;
 * either way the request is closed and the account's history gets an adjustment entry of amount
 * 0 saying what was decided. Idempotent: the same decision again answers the request as decided;
 * the other decision on a decided request throws LimitRequestDecidedError.
 */
export async function decideLimitRequest(order: WriteOrder, d: DecideLimitRequest): Promise<DecidedLimitRequest> {
  const status = d.decision === 'approve' ? 'approved' : 'rejected';
  return order.run<DecidedLimitRequest>({
    name: 'decide-limit-request',
    async transaction(c) {
      const nowMs = order.now();
      // The account's lock first, as every writer takes it, then the request's row.
      const state = (await loadAccountStates(c, [d.accountId], { forUpdate: true, nowMs })).get(d.accountId);
      const [row] = state
        ? await limitRequestRows(c, 'SELECT $COLUMNS FROM limit_requests WHERE id = $1 AND account_id = $2 FOR UPDATE', [d.requestId, d.accountId])
        : [];
      if (!state || !row) throw new LimitRequestNotFoundError(`account ${d.accountId} has no limit request ${d.requestId}`);
      if (row.status === status) return { commit: false, value: { request: toLimitRequest(row), replayed: true } };
      if (row.status !== 'pending') throw new LimitRequestDecidedError(`limit request ${d.requestId} was ${row.status} already`);

      const [decided] = await limitRequestRows(c,
        `UPDATE limit_requests SET status = $2, decided_by = $3, decision_note = $4, decided_at = $5 WHERE id = $1 RETURNING $COLUMNS`,
        [d.requestId, status, d.decidedBy, d.note ?? null, new Date(nowMs)]);
      const name = limitName(row.limit_kind);
      const requested = money(row.requested_limit, state.currency);
      let reason: string;
      if (d.decision === 'approve') {
        // The column is named by the enum, never by the caller's text.
        const column = row.limit_kind === 'monthly_limit' ? 'monthly_limit' : 'allowed_limit';
        const before = await c.query<{ limit: bigint | null }>(
          `SELECT coalesce(a.${column}, ${column === 'monthly_limit' ? 'p.default_monthly_limit' : 'NULL'}) AS limit
             FROM accounts a JOIN plans p ON p.id = a.plan_id WHERE a.id = $1`, [d.accountId]);
        // A new allowed limit re-arms its spend.limit_reached alert, as PUT /v1/accounts/{id}/limits does.
        const rearm = column === 'allowed_limit' ? ', limit_reached_notified_month = NULL' : '';
        await c.query(`UPDATE accounts SET ${column} = $2${rearm} WHERE id = $1`, [d.accountId, row.requested_limit]);
        const was = before.rows[0]!.limit;
        reason = `${name} raised (${d.requestId} approved): ${was === null ? 'none' : money(was, state.currency)} -> ${requested}`;
      } else {
        reason = `${name} increase to ${requested} rejected (${d.requestId})`;
      }
      if (d.note) reason += `: ${d.note}`;
      return recordLimitStep(c, order, state, nowMs, {
        requestId: d.requestId, step: status, value: { request: toLimitRequest(decided!), replayed: false }, reason,
      });
    },
  });
}
