#!/usr/bin/env -S npx tsx
// `invoicer run --month 2026-10 [--account id ...] [--dry-run]` and `invoicer reconcile --month 2026-10`:
// the monthly run by hand (safe at any time: what was invoiced stays invoiced once) and the
// ClickHouse-vs-ledger comparison an operator reads before re-running an invoice held for review.
import { Command, InvalidArgumentError } from 'commander';
import { ConfigError, loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { InvoicerConfig } from './config.js';
import { openInvoicer } from './open.js';
import { reconcileMonth } from './reconcile.js';
import { runMonth } from './run.js';

const month = (v: string) => {
  if (!/^\d{4}-(0[1-9]|1[0-2])$/.test(v)) throw new InvalidArgumentError('a month YYYY-MM');
  return v;
};
const collect = (v: string, all: string[]) => [...all, v];

/** A table of rows (first row: the header), columns padded. */
function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd()).join('\n');
}

async function withInvoicer<T>(fn: (deps: Awaited<ReturnType<typeof openInvoicer>>['deps']) => Promise<T>): Promise<T> {
  let config: InvoicerConfig;
  try {
    config = loadConfig(InvoicerConfig, process.env);
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    console.error(e.message);
    process.exit(1);
  }
  const opened = await openInvoicer(config, createLogger('invoicer', config.LOG_LEVEL));
  try {
    return await fn(opened.deps);
  } finally {
    await opened.close();
  }
}

const program = new Command('invoicer').description('meterstream monthly postpaid invoices');

program.command('run')
  .description('close a month: invoices for the postpaid accounts, reconciled with the ledger, billed through Stripe')
  .requiredOption('--month <YYYY-MM>', 'the month to close', month)
  .option('--account <id>', 'only this account (repeatable)', collect, [])
  .option('--dry-run', 'compute and show, write nothing and bill nothing', false)
  .action(async (o: { month: string; account: string[]; dryRun: boolean }) => {
    const s = await withInvoicer((deps) => runMonth(deps, {
      month: o.month, dryRun: o.dryRun, ...(o.account.length > 0 ? { accounts: o.account } : {}),
      ...(process.stderr.isTTY ? { progress: (n: number) => process.stderr.write(`\r${n} accounts...`) } : {}),
    }));
    if (process.stderr.isTTY) process.stderr.write('\n');
    console.log(table([
      ['month', 'accounts', o.dryRun ? 'would invoice' : 'invoiced', 'held for review', 'no charge', 'invoiced before', 'billed', 'payment failed'],
      [s.month, String(s.accounts), String(s.invoiced), String(s.needsReview.length), String(s.noCharge), String(s.existing), String(s.billed), String(s.failedPayments)],
    ]));
    const currencies = Object.entries(s.totals);
    if (currencies.length > 0) console.log(`\n${table([['currency', 'total due'], ...currencies.map(([c, v]) => [c, v])])}`);
    if (s.needsReview.length > 0) {
      console.log(`\nheld for review (run \`invoicer reconcile --month ${s.month}\`):\n${table([['account', 'difference'], ...s.needsReview.map((r) => [r.accountId, r.difference])])}`);
      process.exitCode = 2;
    }
  });

program.command('reconcile')
  .description("compare a month's postpaid usage in ClickHouse with the ledger, account by account")
  .requiredOption('--month <YYYY-MM>', 'the month', month)
  .option('--account <id>', 'only this account (repeatable)', collect, [])
  .action(async (o: { month: string; account: string[] }) => {
    const r = await withInvoicer((deps) => reconcileMonth(deps, { month: o.month, ...(o.account.length > 0 ? { accounts: o.account } : {}) }));
    console.log(table([['currency', 'clickhouse', 'ledger'], ...Object.entries(r.totals).map(([c, t]) => [c, t.clickhouse, t.ledger])]));
    console.log(`\n${r.accounts} accounts, ${r.differences.length} with a difference`);
    if (r.differences.length > 0) {
      console.log(table([['account', 'clickhouse', 'ledger', 'difference', 'invoice'],
        ...r.differences.map((d) => [d.accountId, d.clickhouse, d.ledger, d.difference, d.invoice ?? '-'])]));
      process.exitCode = 2;
    }
  });

await program.parseAsync(process.argv);
