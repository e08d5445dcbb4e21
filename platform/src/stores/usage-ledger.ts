import { z } from 'zod';
import { queryRows, type Db } from './rows.js';

/**
 * Read-only figures of usage_ledger (one row per rated event) for reports, demos, benchmarks and
 * tests. The rows are written by the ledger alone (ledger/, rater/); the transaction history is
 * the ledger's read.
 */

export interface UsageTotals {
  /** rated events */
  events: bigint;
  /** their priced amount, micro-units */
  amount: bigint;
}

export interface AccountUsageTotals extends UsageTotals {
  accountId: string;
}

export interface ProductUsageTotals extends AccountUsageTotals {
  product: string;
}

const Totals = z.object({ events: z.bigint(), amount: z.bigint() });
const AccountTotalsRow = Totals.extend({ account_id: z.string() })
  .transform((r): AccountUsageTotals => ({ accountId: r.account_id, events: r.events, amount: r.amount }));
const ProductTotalsRow = Totals.extend({ account_id: z.string(), product: z.string() })
  .transform((r): ProductUsageTotals => ({ accountId: r.account_id, product: r.product, events: r.events, amount: r.amount }));

// count(*) is int8 (bigint); a sum over no rows is null, counted as zero.
const TOTALS = 'count(*) AS events, coalesce(sum(amount), 0)::bigint AS amount';
// $1 null: every account.
const OF_ACCOUNTS = '($1::text[] IS NULL OR account_id = ANY($1))';

/** Events and amount of the given accounts together, or of the whole ledger. */
export async function usageTotals(db: Db, accounts?: readonly string[]): Promise<UsageTotals> {
  const [totals] = await queryRows(db, 'usage_ledger', Totals, `SELECT ${TOTALS} FROM usage_ledger WHERE ${OF_ACCOUNTS}`, [accounts ?? null]);
  return totals!;
}

/** Per account, most events first (ties by account id); accounts without usage are absent. */
export async function usageTotalsByAccount(db: Db, accounts?: readonly string[]): Promise<AccountUsageTotals[]> {
  return queryRows(db, 'usage_ledger', AccountTotalsRow,
    `SELECT account_id, ${TOTALS} FROM usage_ledger WHERE ${OF_ACCOUNTS} GROUP BY account_id ORDER BY events DESC, account_id`,
    [accounts ?? null]);
}

/** Per account and product, by account and product. */
export async function usageTotalsByProduct(db: Db, accounts?: readonly string[]): Promise<ProductUsageTotals[]> {
  return queryRows(db, 'usage_ledger', ProductTotalsRow,
    `SELECT account_id, product, ${TOTALS} FROM usage_ledger WHERE ${OF_ACCOUNTS} GROUP BY account_id, product ORDER BY account_id, product`,
    [accounts ?? null]);
}

/** Which of these event ids (of any account) the ledger charged, as account and event id. */
export async function chargedEvents(db: Db, eventIds: readonly string[]): Promise<{ accountId: string; eventId: string }[]> {
  return queryRows(db, 'usage_ledger',
    z.object({ account_id: z.string(), event_id: z.string() }).transform((r) => ({ accountId: r.account_id, eventId: r.event_id })),
    'SELECT account_id, event_id FROM usage_ledger WHERE event_id = ANY($1)', [eventIds]);
}

/** Milliseconds from each event's time to its rating, for the events whose id starts with `prefix`. */
export async function ratingDelaysMs(db: Db, eventIdPrefix: string): Promise<number[]> {
  const rows = await queryRows(db, 'usage_ledger', z.object({ ms: z.number() }),
    `SELECT (extract(epoch FROM rated_at - event_time) * 1000)::float8 AS ms FROM usage_ledger WHERE starts_with(event_id, $1)`,
    [eventIdPrefix]);
  return rows.map((r) => r.ms);
}
