import { z } from 'zod';
import { queryRows, type Db } from '@meterstream/platform/stores/rows';
import { LedgerEntryKind, Unit, type TransactionKind } from '@meterstream/schemas';

const common = { seq: z.bigint(), id: z.string(), at: z.date(), balance_after: z.bigint() };

/**
 * One row of an account's history, as read: a usage row (usage_ledger) or a ledger entry
 * (ledger_entries). Money is micro-units; an entry's amount is signed (positive adds credits), a
 * usage row's is what it deducted.
 */
const HistoryRow = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('usage'), ...common, amount: z.bigint(),
    product: z.string(), quantity: z.bigint(), unit: Unit, rated_at: z.date(),
  }),
  z.object({
    kind: LedgerEntryKind, ...common, amount: z.bigint(),
    grant_id: z.string().nullable(), overdraft_paid: z.bigint(), reason: z.string().nullable(),
  }),
]);
export type HistoryRow = z.infer<typeof HistoryRow>;

/** A position in the history: rows strictly older than it come next. */
export interface HistoryPosition {
  seq: bigint;
  id: string;
}

export interface HistoryQuery {
  limit: number;
  after?: HistoryPosition | undefined;
  kind?: TransactionKind | undefined;
  /** Only rows at or after this time (a usage row's event time, an entry's commit time). */
  from?: Date | undefined;
  /** Only rows strictly before this time. */
  to?: Date | undefined;
}

/**
 * An account's history newest first: usage rows and ledger entries merged by the ledger seq they
 * share, (seq, id) descending so that a position is stable while new rows arrive. Each table
 * gives at most `limit` rows through its (account_id, seq) index before the merge.
 */
export async function readHistory(db: Db, accountId: string, q: HistoryQuery): Promise<HistoryRow[]> {
  const wantUsage = q.kind === undefined || q.kind === 'usage';
  const wantEntries = q.kind !== 'usage';
  const params: unknown[] = [accountId, q.after?.seq ?? null, q.after?.id ?? null, q.limit, q.from ?? null, q.to ?? null];
  // seq <= $2 is what the index can use; the (seq, id) comparison breaks a tie. The time range
  // filters rows only: the position stays a seq, so a cursor means the same with any range.
  const older = (id: string, at: string) => `($2::bigint IS NULL OR (seq <= $2 AND (seq < $2 OR ${id} < $3::text)))
    AND ($5::timestamptz IS NULL OR ${at} >= $5) AND ($6::timestamptz IS NULL OR ${at} < $6)`;
  const parts: string[] = [];
  if (wantUsage) {
    parts.push(`(SELECT 'usage' AS kind, seq, event_id AS id, event_time AS at, amount, balance_after,
                        product, quantity, unit, rated_at, NULL AS grant_id, NULL::bigint AS overdraft_paid, NULL AS reason
                   FROM usage_ledger WHERE account_id = $1 AND ${older('event_id', 'event_time')}
                  ORDER BY seq DESC, event_id DESC LIMIT $4)`);
  }
  if (wantEntries) {
    params.push(q.kind ?? null);
    parts.push(`(SELECT kind, seq, entry_id AS id, created_at AS at, amount, balance_after,
                        NULL AS product, NULL::bigint AS quantity, NULL AS unit, NULL::timestamptz AS rated_at, grant_id, overdraft_paid, reason
                   FROM ledger_entries WHERE account_id = $1 AND ${older('entry_id', 'created_at')} AND ($7::text IS NULL OR kind = $7)
                  ORDER BY seq DESC, entry_id DESC LIMIT $4)`);
  }
  return queryRows(db, 'usage_ledger + ledger_entries', HistoryRow,
    `SELECT * FROM (${parts.join(' UNION ALL ')}) h ORDER BY seq DESC, id DESC LIMIT $4`, params);
}
