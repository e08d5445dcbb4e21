import { ledgerMonthToDate, postpaidAccounts, saveStatements, type DailyStatement } from '@meterstream/platform/stores/invoices';
import { monthAt, monthStart } from '@meterstream/ledger/core/months';
import { formatMicros } from '@meterstream/schemas';
import { monthToDate } from './queries.js';
import type { InvoicerDeps } from './run.js';

/**
 * Events rated within this margin before the refresh are left to the next one on both sides: the
 * sink copies to ClickHouse a moment after the ledger commits, and that lag is no drift.
 */
export const SINK_MARGIN_MS = 5 * 60_000;

export interface Refresh {
  day: string;
  accounts: number;
  /** accounts whose ClickHouse and ledger figures differ, with the amounts (decimal) */
  drift: { accountId: string; clickhouse: string; ledger: string; difference: string }[];
}

/**
 * The 08:00 UTC refresh (seed 001: "your monthly cost is updated daily at 08:00 UTC"): each postpaid
 * account's month-to-date cost from ClickHouse (one read per batch of accounts) is stored as the
 * day's statement beside the ledger's figure for the same events; every difference is an operator
 * alert naming the accounts and amounts. Rerunning the same day rewrites that day's statements.
 */
export async function refreshStatements(deps: InvoicerDeps, opts: { accounts?: readonly string[] } = {}): Promise<Refresh> {
  const nowMs = deps.order.now();
  const month = monthAt(nowMs);
  const day = new Date(nowMs).toISOString().slice(0, 10);
  const window = { cutoff: nowMs - SINK_MARGIN_MS, from: monthStart(month), to: nowMs };
  const out: Refresh = { day, accounts: 0, drift: [] };
  const batchSize = deps.batchSize ?? 1000;
  let after = '';
  for (;;) {
    const accounts = await postpaidAccounts(deps.order.pool, { after, limit: batchSize, ...(opts.accounts ? { only: opts.accounts } : {}) });
    if (accounts.length === 0) break;
    after = accounts.at(-1)!.id;
    const ids = accounts.map((a) => a.id);
    const [usage, ledger] = await Promise.all([
      monthToDate(deps.ch, deps.database, { accounts: ids, ...window }),
      ledgerMonthToDate(deps.order.pool, ids, window),
    ]);
    const byAccount = new Map(usage.map((u) => [u.account_id, u]));
    const rows: DailyStatement[] = accounts.map((a) => {
      const u = byAccount.get(a.id);
      const due = u?.postpaid ?? 0n;
      const ledgerDue = ledger.get(a.id) ?? 0n;
      if (due !== ledgerDue) {
        out.drift.push({ accountId: a.id, clickhouse: formatMicros(due), ledger: formatMicros(ledgerDue), difference: formatMicros(due - ledgerDue) });
      }
      return {
        accountId: a.id, day, month, currency: a.currency, amount: u?.amount ?? 0n, covered: u?.from_grants ?? 0n, due, ledgerDue, computedAt: new Date(nowMs),
      };
    });
    await saveStatements(deps.order.pool, rows);
    out.accounts += accounts.length;
    if (accounts.length < batchSize) break;
  }
  if (out.drift.length > 0) {
    deps.log.error({ alert: 'usage_drift', day, accounts: out.drift }, 'ClickHouse and the ledger disagree on month-to-date usage');
  }
  return out;
}
