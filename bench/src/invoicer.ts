import { join } from 'node:path';
import { createClickHouse } from '@meterstream/platform/clickhouse';
import { systemClock } from '@meterstream/platform/clock';
import { createLogger } from '@meterstream/platform/logger';
import { migrateClickHouse } from '@meterstream/platform/migrate';
import { createAccount } from '@meterstream/platform/stores/accounts';
import { addMonths, monthAt, monthStart } from '@meterstream/ledger/core/months';
import { InvoicerConfig } from '@meterstream/invoicer/config';
import { openInvoicer } from '@meterstream/invoicer/open';
import { runMonth } from '@meterstream/invoicer/run';
import { priceMicros } from '@meterstream/schemas';
import { rate, type Rated } from '../../tests/support/rated.js';
import { startStripeServer } from '../../tests/support/stripe-server.js';
import type { RunContext } from './context.js';
import type { Check } from './verify.js';

export interface InvoicerResult {
  /** postpaid accounts invoiced, each with a month of rated usage */
  accounts: number;
  month: string;
  dryRunSeconds: number;
  dryRunAccountsPerSecond: number;
  /** the real run: invoices written, then billed through the Stripe-shaped server */
  runSeconds: number;
  runAccountsPerSecond: number;
  invoicesCreated: number;
  stripeInvoices: number;
  stripeCalls: number;
  stripeConcurrency: number;
}

const DAY = 86_400_000;
const CHUNK = 5000;

/** Two products per account, priced by the month's figures the invoice must show (as the invoicer's tests seed them). */
function monthOfUsage(ids: string[], from: number): Rated[] {
  return ids.flatMap((account, i) => [
    { account, product: 'gpt-tokens', quantity: BigInt(1000 + i), unitPrice: 2_000_000n, per: 1000n, at: from + (i % 28) * DAY, ratedAt: from + (i % 28) * DAY },
    { account, product: 'image-gen', quantity: 3n, unitPrice: 40_000n, at: from + 3_600_000, ratedAt: from + 3_600_000 },
  ]);
}

/**
 * The invoicer closing last month for `n` postpaid accounts of their own (inv-*), seeded as the rater
 * and the sink would leave them (usage_ledger, the postpaid accrual, ClickHouse rated_events): a dry
 * run, then a run billing through the Stripe-shaped server (customer, invoice, items, finalize per
 * account; no card, so no charge). Runs after the main checks, so its rows never enter them; its
 * ClickHouse is a chDB directory of its own (or CLICKHOUSE_URL).
 */
export async function runInvoicerPhase(ctx: RunContext, n: number, say: (msg: string) => void): Promise<{ result: InvoicerResult; checks: Check[] }> {
  const month = addMonths(monthAt(systemClock.now()), -1);
  const ids = Array.from({ length: n }, (_, i) => `inv-${String(i).padStart(6, '0')}`);
  for (let i = 0; i < n; i += 50) {
    await Promise.all(ids.slice(i, i + 50).map((id) => createAccount(ctx.pool, { id, email: `${id}@bench.example`, currency: 'USD', billingMode: 'postpaid' })));
  }
  const events = monthOfUsage(ids, monthStart(month));
  const ch = await createClickHouse({ url: process.env.CLICKHOUSE_URL, chdbPath: join(ctx.chdbDir, 'invoicer') });
  const server = await startStripeServer();
  try {
    await migrateClickHouse(ch, ctx.chDatabase);
    const store = { ch, database: ctx.chDatabase };
    for (let i = 0; i < events.length; i += CHUNK) await rate(ctx, store, events.slice(i, i + CHUNK));
    say(`invoicer: ${n} postpaid accounts with ${events.length} rated events in ${month}; dry run, then billing through the Stripe-shaped server`);

    const config = InvoicerConfig.parse({ ...ctx.serviceEnv, ...server.env, INVOICE_ISSUER: 'BENCH' });
    const invoicer = await openInvoicer(config, createLogger('bench-invoicer', 'warn'), systemClock, { ch });
    let dryMs: number;
    let runMs: number;
    let dry: Awaited<ReturnType<typeof runMonth>>;
    let run: Awaited<ReturnType<typeof runMonth>>;
    try {
      let t0 = performance.now();
      dry = await runMonth(invoicer.deps, { month, accounts: ids, dryRun: true });
      dryMs = performance.now() - t0;
      t0 = performance.now();
      run = await runMonth(invoicer.deps, { month, accounts: ids });
      runMs = performance.now() - t0;
    } finally {
      await invoicer.close();
    }

    const checks = await checkInvoices(ctx, server, month, events, dry.invoiced, run.billed);
    const stripeInvoices = [...server.objects.values()].filter((o) => o.object === 'invoice').length;
    return {
      result: {
        accounts: n, month,
        dryRunSeconds: dryMs / 1000, dryRunAccountsPerSecond: n / (dryMs / 1000),
        runSeconds: runMs / 1000, runAccountsPerSecond: n / (runMs / 1000),
        invoicesCreated: run.invoiced, stripeInvoices, stripeCalls: server.requests.length, stripeConcurrency: config.INVOICE_STRIPE_CONCURRENCY,
      },
      checks,
    };
  } finally {
    await server.close();
    await ch.close();
  }
}

/**
 * Every account invoiced once, its total what the ledger accrued postpaid for the month and what
 * the seeded events price to (priceMicros, recomputed here), and one finalized Stripe invoice each.
 */
async function checkInvoices(
  ctx: RunContext, server: Awaited<ReturnType<typeof startStripeServer>>, month: string, events: Rated[], dryInvoiced: number, billed: number,
): Promise<Check[]> {
  const expected = new Map<string, bigint>();
  for (const e of events) expected.set(e.account, (expected.get(e.account) ?? 0n) + priceMicros(e.quantity * 1_000_000n, e.unitPrice, e.per ?? 1n));
  const n = expected.size;
  const rows = (await ctx.pool.query<{ account_id: string; invoices: number; total: string; ledger: string | null; states: string }>(
    `SELECT i.account_id, count(*)::int AS invoices, sum(i.total)::text AS total, min(p.amount)::text AS ledger, string_agg(DISTINCT i.state, ',') AS states
       FROM invoices i LEFT JOIN postpaid_usage p ON p.account_id = i.account_id AND p.month = (i.month || '-01')::date
      WHERE i.month = $1 AND i.account_id = ANY($2::text[]) GROUP BY 1`, [month, [...expected.keys()]])).rows;
  const once = rows.filter((r) => r.invoices === 1).length;
  const ledgerDiffers = rows.filter((r) => r.ledger === null || BigInt(r.total) !== BigInt(r.ledger));
  const recomputedDiffers = rows.filter((r) => BigInt(r.total) !== expected.get(r.account_id));
  const notOpen = rows.filter((r) => r.states !== 'open');

  const stripeInvoices = [...server.objects.values()].filter((o) => o.object === 'invoice');
  const perAccount = new Map<string, number>();
  for (const o of stripeInvoices) {
    const account = (o.metadata as Record<string, string> | undefined)?.account_id ?? '?';
    perAccount.set(account, (perAccount.get(account) ?? 0) + 1);
  }
  const unfinalized = stripeInvoices.filter((o) => o.status !== 'open').length;
  const stripeOnce = [...expected.keys()].filter((a) => perAccount.get(a) === 1).length;
  const sample = (xs: { account_id: string }[]) => xs.slice(0, 3).map((r) => r.account_id).join(', ');
  return [
    {
      name: 'invoicer: every account invoiced exactly once (dry run and run)',
      ok: once === n && rows.length === n && dryInvoiced === n && billed === n && notOpen.length === 0,
      detail: `${once}/${n} accounts with one invoice; dry run would invoice ${dryInvoiced}, run billed ${billed}; ${notOpen.length} not open${notOpen.length ? ` (${sample(notOpen)})` : ''}`,
    },
    {
      name: 'invoicer: invoice totals = ledger postpaid accrual = independent recomputation',
      ok: rows.length === n && ledgerDiffers.length === 0 && recomputedDiffers.length === 0,
      detail: `${ledgerDiffers.length} differ from postpaid_usage${ledgerDiffers.length ? ` (${sample(ledgerDiffers)})` : ''}, `
        + `${recomputedDiffers.length} from the recomputation${recomputedDiffers.length ? ` (${sample(recomputedDiffers)})` : ''}`,
    },
    {
      name: 'invoicer: one finalized Stripe invoice per account',
      ok: stripeOnce === n && perAccount.size === n && unfinalized === 0,
      detail: `${stripeOnce}/${n} accounts with exactly one Stripe invoice; ${perAccount.size} accounts on the Stripe-shaped server, ${unfinalized} invoices not finalized`,
    },
  ];
}
