import { z } from 'zod';
import { queryRows, type Db } from './rows.js';

export interface DeadLetterCount {
  code: string;
  pending: number;
  replayed: number;
  lastAt: Date;
}

const CountRow = z
  .object({ code: z.string(), pending: z.number().int(), replayed: z.number().int(), last_at: z.date() })
  .transform((r): DeadLetterCount => ({ code: r.code, pending: r.pending, replayed: r.replayed, lastAt: r.last_at }));

/** How many events the rater dead-lettered, per code (of one account, or of all). */
export async function deadLetterCounts(db: Db, filter: { accountId?: string } = {}): Promise<DeadLetterCount[]> {
  return queryRows(db, 'dead_letters', CountRow,
    `SELECT code, (count(*) FILTER (WHERE replayed_at IS NULL))::int AS pending, (count(*) FILTER (WHERE replayed_at IS NOT NULL))::int AS replayed,
            max(created_at) AS last_at
       FROM dead_letters WHERE $1::text IS NULL OR account_id = $1 GROUP BY code ORDER BY code`,
    [filter.accountId ?? null]);
}
