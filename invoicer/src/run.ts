import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import type { Logger } from '@meterstream/platform/logger';
import {
  addonCharges, insertInvoice, invoiceOfMonth, ledgerPostpaid, newInvoiceId, postpaidAccounts, previousCutoffs, type InvoiceRecord,
} from '@meterstream/platform/stores/invoices';
import type { Stripe } from '@meterstream/platform/stripe';
import { addMonths, monthStart } from '@meterstream/ledger/core/months';
import type { WriteOrder } from '@meterstream/ledger/write-order';
import { formatMicros } from '@meterstream/schemas';
import { invoiceLines, totals, ymToMonth, type UsageGroup } from './core/lines.js';
import { billInvoice } from './bill.js';
import { GRACE_MS, type GateConfigCache } from './dunning.js';
import { invoiceUsage } from './queries.js';

export interface InvoicerDeps {
  order: WriteOrder;
  ch: ClickHouseClient;
  database: string;
  log: Logger;
  /** Unset: invoices are written but not sent (no Stripe configured). */
  stripe?: Stripe;
  /** Whose invoice numbers (invoice_sequences), e.g. MS. */
  issuer: string;
  gate?: GateConfigCache;
  /** How many accounts one ClickHouse read covers. */
  batchSize?: number;
  /** Stripe calls in flight at once. */
  stripeConcurrency?: number;
  /** Tests: called after each Stripe step (a throw there is a crash midway). */
  onStripeStep?: (step: string, invoice: InvoiceRecord) => void;
}

export interface RunOptions {
  /** YYYY-MM, a closed month */
  month: string;
  accounts?: readonly string[];
  /** Only the accounts whose billing anchor day is at most this (the scheduled run: those whose day has come). */
  anchorDayAtMost?: number;
  dryRun?: boolean;
  /** Called after each batch with the accounts done so far (the CLI's progress bar). */
  progress?: (done: number) => void;
}

export interface RunSummary {
  month: string;
  accounts: number;
  /** written by this run (dry run: would be) */
  invoiced: number;
  /** held for review: ClickHouse and the ledger disagree */
  needsReview: { accountId: string; difference: string }[];
  /** nothing due */
  noCharge: number;
  /** invoices an earlier run had written */
  existing: number;
  /** sent to Stripe and finalized by this run */
  billed: number;
  failedPayments: number;
  /** amount due per currency, decimal */
  totals: Record<string, string>;
}

/**
 * Closes `month` for the postpaid accounts (all, or the given ones): per batch of accounts, one
 * ClickHouse read of the month's rated events (and the late ones since each account's previous
 * invoice), reconciled account by account with the ledger's postpaid accrual for the same events;
 * an account whose figures agree gets its invoice (draft, then billed through Stripe), one that
 * disagrees gets it held as needs_review with the difference and an operator alert, never billed.
 * Safe to run at any time and any number of times at once: an invoice is written once per
 * (account, month) by constraint and every Stripe call carries a key of (account, month, step).
 */
export async function runMonth(deps: InvoicerDeps, opts: RunOptions): Promise<RunSummary> {
  const { order, log } = deps;
  const from = monthStart(opts.month);
  const to = monthStart(addMonths(opts.month, 1));
  const cutoff = order.now();
  if (cutoff < to) throw new Error(`${opts.month} is not over yet: it can be invoiced from ${new Date(to).toISOString()}`);
  const summary: RunSummary = {
    month: opts.month, accounts: 0, invoiced: 0, needsReview: [], noCharge: 0, existing: 0, billed: 0, failedPayments: 0, totals: {},
  };
  const due = new Map<string, bigint>();
  const batchSize = deps.batchSize ?? 1000;
  let after = '';
  for (;;) {
    const accounts = await postpaidAccounts(order.pool, {
      after, limit: batchSize, ...(opts.accounts ? { only: opts.accounts } : {}),
      ...(opts.anchorDayAtMost !== undefined ? { anchorDayAtMost: opts.anchorDayAtMost } : {}),
    });
    if (accounts.length === 0) break;
    after = accounts.at(-1)!.id;
    const ids = accounts.map((a) => a.id);
    // An invoice held for review was never billed: each run judges it again from the figures of now.
    if (!opts.dryRun) {
      await order.pool.query(`DELETE FROM invoices WHERE account_id = ANY($1) AND month = $2 AND state = 'needs_review'`, [ids, opts.month]);
    }
    const existing = new Map((await order.pool.query<{ account_id: string; id: string }>(
      `SELECT account_id, id FROM invoices WHERE account_id = ANY($1) AND month = $2 AND state <> 'needs_review'`, [ids, opts.month])).rows.map((r) => [r.account_id, r.id]));
    const open = accounts.filter((a) => !existing.has(a.id));
    const drafts: string[] = [...existing.keys()];
    summary.existing += existing.size;
    if (open.length > 0) {
      const openIds = open.map((a) => a.id);
      const prev = await previousCutoffs(order.pool, openIds, opts.month);
      const since = openIds.map((id) => prev.get(id) ?? 0);
      const window = { accounts: openIds, since, cutoff, from, to };
      const [rows, ledger, addons] = await Promise.all([
        invoiceUsage(deps.ch, deps.database, window),
        ledgerPostpaid(order.pool, window),
        addonCharges(order.pool, openIds, { month: opts.month, from, to }),
      ]);
      const usage = new Map<string, UsageGroup[]>();
      for (const r of rows) {
        const list = usage.get(r.account_id) ?? [];
        list.push({
          month: ymToMonth(r.ym), product: r.product, unit: r.unit, unitPrice: r.unit_price, per: r.per, events: r.events,
          quantity: r.quantity, amount: r.amount, fromGrants: r.from_grants, postpaid: r.postpaid,
        });
        usage.set(r.account_id, list);
      }
      for (const account of open) {
        const groups = usage.get(account.id) ?? [];
        const chPostpaid = groups.reduce((s, g) => s + g.postpaid, 0n);
        const ledgerTotal = ledger.get(account.id) ?? 0n;
        const a = addons.get(account.id);
        // The postpaid part is given to the add-ons in the order they were charged, up to each price.
        let left = a?.postpaid ?? 0n;
        const addonLines = (a?.charges ?? []).map((ch) => {
          const part = left < ch.amount ? left : ch.amount;
          left -= part;
          return { description: ch.reason, amount: ch.amount, due: part };
        });
        const lines = invoiceLines(opts.month, groups, addonLines);
        const t = totals(lines);
        const difference = chPostpaid - ledgerTotal;
        const state = difference !== 0n ? 'needs_review' : t.amountDue === 0n ? 'no_charge' : 'draft';
        summary.accounts += 1;
        if (state === 'needs_review') {
          summary.needsReview.push({ accountId: account.id, difference: formatMicros(difference) });
          // The operator alert: this invoice waits for `invoicer reconcile` and a rerun, unbilled.
          log.error({ alert: 'invoice_needs_review', accountId: account.id, month: opts.month, clickhouse: formatMicros(chPostpaid),
            ledger: formatMicros(ledgerTotal), difference: formatMicros(difference) }, 'ClickHouse and the ledger disagree: invoice held for review');
        }
        if (opts.dryRun) {
          if (state === 'draft') summary.invoiced += 1;
          if (state === 'no_charge') summary.noCharge += 1;
          if (state === 'draft') due.set(account.currency, (due.get(account.currency) ?? 0n) + t.amountDue);
          continue;
        }
        const written = await insertInvoice(order.pool, {
          id: newInvoiceId(), accountId: account.id, month: opts.month, currency: account.currency, state,
          ...t, ledgerTotal, difference, cutoffAt: new Date(cutoff), invoiceDate: new Date(cutoff), dueAt: new Date(cutoff + GRACE_MS),
        }, lines);
        if (!written) {
          summary.existing += 1;
        } else {
          summary.invoiced += state === 'draft' ? 1 : 0;
          summary.noCharge += state === 'no_charge' ? 1 : 0;
          if (state === 'draft') due.set(account.currency, (due.get(account.currency) ?? 0n) + t.amountDue);
        }
        drafts.push(account.id);
      }
    }
    if (!opts.dryRun && deps.stripe) {
      // Drafts, and open invoices a crashed run finalized but never charged, are (re)sent: every step is keyed.
      const billed = await bounded(drafts, deps.stripeConcurrency ?? 8, async (accountId) => {
        const inv = await invoiceOfMonth(order.pool, accountId, opts.month);
        if (!inv || !(inv.state === 'draft' || (inv.state === 'open' && inv.failedAt === null))) return undefined;
        const state = await billInvoice(deps, inv);
        return inv.state === 'draft' ? state : undefined;
      });
      for (const b of billed) {
        if (b === undefined) continue;
        summary.billed += 1;
        if (b === 'payment_failed') summary.failedPayments += 1;
      }
    }
    summary.accounts += existing.size;
    opts.progress?.(summary.accounts);
    if (accounts.length < batchSize) break;
  }
  summary.totals = Object.fromEntries([...due].map(([c, v]) => [c, formatMicros(v)]));
  log.info({ ...summary, needsReview: summary.needsReview.length }, 'invoice run done');
  return summary;
}

/** Runs `fn` over `items`, at most `limit` at a time. */
async function bounded<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}
