import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { PoolClient } from '@meterstream/platform/postgres';
import { queryRows, type Db } from '@meterstream/platform/stores/rows';
import { formatMicros, LimitKind, LimitRequestStatus, type Currency, type LimitRequest } from '@meterstream/schemas';
import { balanceAt, type AccountState } from './account-state.js';
import { markEntriesPublished, publishEntries, recordEntries } from './entries.js';
import type { Effects, WriteOrder } from './write-order.js';

// Limit increase requests (seed 001; migration 017): the rows, and the history entries that tell
// the account about them. Commands: commands/request-limit.ts, commands/decide-limit-request.ts.

export class LimitRequestNotFoundError extends Error {
  override readonly name = 'LimitRequestNotFoundError';
}

/** The request was decided the other way already: a decision is final. */
export class LimitRequestDecidedError extends Error {
  override readonly name = 'LimitRequestDecidedError';
}

const Row = z.object({
  id: z.string(),
  account_id: z.string(),
  limit_kind: LimitKind,
  requested_limit: z.bigint(),
  current_limit: z.bigint(),
  reason: z.string(),
  status: LimitRequestStatus,
  requested_by: z.string(),
  decided_by: z.string().nullable(),
  decision_note: z.string().nullable(),
  created_at: z.date(),
  decided_at: z.date().nullable(),
});
export type LimitRequestRow = z.infer<typeof Row>;

const COLUMNS = 'id, account_id, limit_kind, requested_limit, current_limit, reason, status, requested_by, decided_by, decision_note, created_at, decided_at';

export const toLimitRequest = (r: LimitRequestRow): LimitRequest => ({
  id: r.id, account_id: r.account_id, limit: r.limit_kind, requested_limit: formatMicros(r.requested_limit),
  current_limit: formatMicros(r.current_limit), reason: r.reason, status: r.status, requested_by: r.requested_by,
  decided_by: r.decided_by, decision_note: r.decision_note, created_at: r.created_at.toISOString(), decided_at: r.decided_at?.toISOString() ?? null,
});

/** Runs a statement returning limit_requests rows. */
export const limitRequestRows = (db: Db, sql: string, params: unknown[]) =>
  queryRows(db, 'limit_requests', Row, sql.replace('$COLUMNS', COLUMNS), params);

/** An account's requests, newest first. */
export async function listLimitRequests(db: Db, accountId: string): Promise<LimitRequest[]> {
  const rows = await limitRequestRows(db, 'SELECT $COLUMNS FROM limit_requests WHERE account_id = $1 ORDER BY created_at DESC, id DESC', [accountId]);
  return rows.map(toLimitRequest);
}

export const limitName = (kind: LimitKind) => (kind === 'monthly_limit' ? 'monthly limit' : 'allowed limit');
export const money = (micros: bigint, currency: Currency) => `${formatMicros(micros)} ${currency}`;

/**
 * The history entry of a step of a request (asked, approved, rejected): kind adjustment, amount 0
 * (no money moves), the reason saying what happened; once per (request, step) by its
 * idempotency key. Returns the command's effects: the entry published, the account's state
 * cached under its new ledger seq.
 */
export async function recordLimitStep<T>(
  c: PoolClient, order: WriteOrder, state: AccountState, nowMs: number,
  step: { requestId: string; step: 'requested' | 'approved' | 'rejected'; reason: string; value: T },
): Promise<Effects<T>> {
  const [entry] = await recordEntries(c, [{
    account_id: state.id, kind: 'adjustment', amount: 0n, currency: state.currency, grant_id: null, overdraft_paid: 0n,
    balance_after: balanceAt(state, nowMs), reason: step.reason,
    idempotency_key: `limit-request:${step.requestId}:${step.step}`,
    request_hash: createHash('sha256').update(JSON.stringify([step.requestId, step.step])).digest('hex'),
  }]);
  return {
    commit: true,
    value: step.value,
    publish: async (send) => {
      await publishEntries(send, order.topics.entries, [entry!]);
      await markEntriesPublished(order.pool, [entry!]);
    },
    states: [{ ...state, ledgerSeq: BigInt(entry!.seq) }],
  };
}
