import { ledgerMonthToDate, postpaidAccounts } from '@meterstream/platform/stores/invoices';
import { addMonths, monthStart } from '@meterstream/ledger/core/months';
import { formatMicros } from '@meterstream/schemas';
import { monthToDate } from './queries.js';
import type { InvoicerDeps } from './run.js';

export interface MonthReconciliation {
  month: string;
  accounts: number;
  /** the postpaid accounts whose figures for the month differ, with the invoice's state if any */
  differences: { accountId: string; clickhouse: string; ledger: string; difference: string; invoice: string | null }[];
  /** per currency: postpaid usage of the month in ClickHouse and in the ledger (decimal) */
  totals: Record<string, { clickhouse: string; ledger: string }>;
}

/**
 * ClickHouse against the ledger for the events of a month, every postpaid account (or the given
 * ones): what an operator runs on an invoice held for review (`invoicer reconcile --month`), before
 * re-running it. Reads only.
 */
export async function reconcileMonth(deps: InvoicerDeps, opts: { month: string; accounts?: readonly string[] }): Promise<MonthReconciliation> {
  const window = { cutoff: deps.order.now(), from: monthStart(opts.month), to: monthStart(addMonths(opts.month, 1)) };
  const out: MonthReconciliation = { month: opts.month, accounts: 0, differences: [], totals: {} };
  const sums = new Map<string, { ch: bigint; pg: bigint }>();
  let after = '';
  const batchSize = deps.batchSize ?? 1000;
  for (;;) {
    const accounts = await postpaidAccounts(deps.order.pool, { after, limit: batchSize, ...(opts.accounts ? { only: opts.accounts } : {}) });
    if (accounts.length === 0) break;
    after = accounts.at(-1)!.id;
    const ids = accounts.map((a) => a.id);
    const [usage, ledger, invoices] = await Promise.all([
      monthToDate(deps.ch, deps.database, { accounts: ids, ...window }),
      ledgerMonthToDate(deps.order.pool, ids, window),
      deps.order.pool.query<{ account_id: string; state: string }>('SELECT account_id, state FROM invoices WHERE account_id = ANY($1) AND month = $2', [ids, opts.month]),
    ]);
    const ch = new Map(usage.map((u) => [u.account_id, u.postpaid]));
    const state = new Map(invoices.rows.map((r) => [r.account_id, r.state]));
    for (const a of accounts) {
      const c = ch.get(a.id) ?? 0n;
      const p = ledger.get(a.id) ?? 0n;
      const t = sums.get(a.currency) ?? { ch: 0n, pg: 0n };
      t.ch += c;
      t.pg += p;
      sums.set(a.currency, t);
      if (c !== p) {
        out.differences.push({ accountId: a.id, clickhouse: formatMicros(c), ledger: formatMicros(p), difference: formatMicros(c - p), invoice: state.get(a.id) ?? null });
      }
    }
    out.accounts += accounts.length;
    if (accounts.length < batchSize) break;
  }
  out.totals = Object.fromEntries([...sums].map(([cur, t]) => [cur, { clickhouse: formatMicros(t.ch), ledger: formatMicros(t.pg) }]));
  return out;
}
