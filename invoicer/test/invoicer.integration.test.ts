import { afterAll, beforeAll } from 'vitest';
import { TestClock } from '@meterstream/platform/clock';
import { invoiceLines, invoiceOfMonth } from '@meterstream/platform/stores/invoices';
import { priceMicros } from '@meterstream/schemas';
import { test, expect, describe } from '../../tests/support/test.js';
import { createAccount } from '../../tests/support/fixtures.js';
import { CARDS, startStripeServer, type StripeServer } from '../../tests/support/stripe-server.js';
import { runMonth } from '../src/run.js';
import { suspendOverdue } from '../src/dunning.js';
import { refreshStatements } from '../src/daily.js';
import { invoicerHandlers } from '../src/jobs.js';
import { reconcileMonth } from '../src/reconcile.js';
import { latestStatement } from '@meterstream/platform/stores/invoices';
import { rate, type Rated } from '../../tests/support/rated.js';
import { invoicerOn, saveCard } from './support.js';

const DAY = 86_400_000;
const OCT = Date.parse('2026-10-01T00:00:00Z');
const NOV = Date.parse('2026-11-01T00:00:00Z');

let server: StripeServer;
beforeAll(async () => {
  server = await startStripeServer();
});
afterAll(async () => {
  await server.close();
});

const stripeInvoicesOf = (accountId: string) =>
  [...server.objects.values()].filter((o) => o.object === 'invoice' && (o.metadata as Record<string, string>).account_id === accountId);

/** What the invoice's usage lines must say, recomputed from the events alone. */
function expected(events: Rated[]) {
  const by = new Map<string, { product: string; quantity: bigint; amount: bigint; covered: bigint; due: bigint; events: bigint }>();
  for (const e of events) {
    const amount = priceMicros(e.quantity * 1_000_000n, e.unitPrice, e.per ?? 1n);
    const key = `${e.product}|${e.unitPrice}`;
    const l = by.get(key) ?? { product: e.product, quantity: 0n, amount: 0n, covered: 0n, due: 0n, events: 0n };
    l.quantity += e.quantity * 1_000_000n;
    l.amount += amount;
    l.covered += e.fromGrants ?? 0n;
    l.due += amount - (e.fromGrants ?? 0n);
    l.events += 1n;
    by.set(key, l);
  }
  return [...by.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([, v]) => v);
}

describe('the monthly invoice run', () => {
  test('invoices a month of usage with lines equal to a recomputation from the events, billed once in Stripe', async ({ stack, clickhouse }) => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    const other = await createAccount(stack, { billing_mode: 'postpaid' });
    const events: Rated[] = [];
    for (let d = 0; d < 31; d += 1) {
      events.push({ account, product: 'gpt-tokens', quantity: BigInt(1000 + d * 7), unitPrice: 2_000_000n, per: 1000n, at: OCT + d * DAY + 3_600_000, ratedAt: OCT + d * DAY + 3_601_000 });
      if (d % 3 === 0) events.push({ account, product: 'image-gen', quantity: BigInt(d + 1), unitPrice: 40_000n, at: OCT + d * DAY + 7_200_000, ratedAt: OCT + d * DAY + 7_201_000 });
    }
    // The price changed mid-month: its own line. The first events were paid by free credits.
    events.push({ account, product: 'gpt-tokens', quantity: 5000n, unitPrice: 3_000_000n, per: 1000n, at: OCT + 20 * DAY, ratedAt: OCT + 20 * DAY });
    events[0]!.fromGrants = 1_000_000n;
    // Neither September nor November is October's.
    const outside: Rated[] = [
      { account, product: 'gpt-tokens', quantity: 999n, unitPrice: 2_000_000n, per: 1000n, at: OCT - 1, ratedAt: OCT },
      { account, product: 'gpt-tokens', quantity: 999n, unitPrice: 2_000_000n, per: 1000n, at: NOV + 1, ratedAt: NOV + 2 },
    ];
    await rate(stack, clickhouse, [...events, ...outside, { account: other, product: 'image-gen', quantity: 3n, unitPrice: 40_000n, at: OCT + DAY, ratedAt: OCT + DAY }]);
    await saveCard(stack, server, account);

    const clock = new TestClock(NOV + 300_000);
    const deps = invoicerOn(stack, clickhouse, clock, server);
    const summary = await runMonth(deps, { month: '2026-10', accounts: [account, other] });
    expect(summary).toMatchObject({ accounts: 2, invoiced: 2, needsReview: [], billed: 2, failedPayments: 0 });

    const inv = (await invoiceOfMonth(stack.pool, account, '2026-10'))!;
    const lines = await invoiceLines(stack.pool, inv.id);
    const want = expected(events);
    expect(lines.map((l) => ({ product: l.product, quantity: l.quantity, amount: l.amount, covered: l.covered, due: l.due, events: l.events })))
      .toEqual(want);
    expect(lines.every((l) => l.kind === 'usage')).toBe(true);
    const total = want.reduce((s, l) => s + l.due, 0n);
    expect(inv).toMatchObject({ state: 'paid', total, covered: 1_000_000n, difference: 0n, ledgerTotal: total });
    // the two invoices of the run took the issuer's first two numbers, in the order they were issued
    const numbers = await stack.pool.query('SELECT invoice_number FROM invoices WHERE account_id = ANY($1) ORDER BY 1', [[account, other]]);
    expect(numbers.rows.map((r) => r.invoice_number)).toEqual([1n, 2n]);

    const [stripeInvoice, ...more] = stripeInvoicesOf(account);
    expect(more).toEqual([]);
    expect(stripeInvoice).toMatchObject({ id: inv.stripeInvoiceId, status: 'paid', amount_paid: Number(inv.amountDue / 10_000n) });
    // a confirmation is in the outbox
    const told = await stack.pool.query(`SELECT payload->'data'->>'amount_due' AS amount FROM notifications_outbox WHERE account_id = $1 AND type = 'invoice.paid'`, [account]);
    expect(told.rows).toHaveLength(1);
  });

  test('a rerun, a crash midway and two concurrent runs each leave one invoice and one Stripe invoice', async ({ stack, clickhouse }) => {
    const accounts = [
      await createAccount(stack, { billing_mode: 'postpaid' }), await createAccount(stack, { billing_mode: 'postpaid' }),
      await createAccount(stack, { billing_mode: 'postpaid' }),
    ];
    for (const a of accounts) {
      await rate(stack, clickhouse, [
        { account: a, product: 'gpt-tokens', quantity: 4000n, unitPrice: 2_000_000n, per: 1000n, at: OCT + DAY, ratedAt: OCT + DAY },
        { account: a, product: 'image-gen', quantity: 2n, unitPrice: 40_000n, at: OCT + 2 * DAY, ratedAt: OCT + 2 * DAY },
      ]);
      await saveCard(stack, server, a);
    }
    const clock = new TestClock(NOV + 60_000);
    // Crashes: after the first account's Stripe invoice got its first item (nothing finalized yet),
    // then after the second's was finalized (not yet charged).
    const crashAt = new Map([[accounts[0]!, 'line:1'], [accounts[1]!, 'finalized']]);
    const crashing = invoicerOn(stack, clickhouse, clock, server, {
      stripeConcurrency: 1,
      onStripeStep: (step, inv) => {
        if (crashAt.get(inv.accountId) === step) {
          crashAt.delete(inv.accountId);
          throw new Error(`crash midway at ${step}`);
        }
      },
    });
    await expect(runMonth(crashing, { month: '2026-10', accounts })).rejects.toThrow('crash midway');
    await expect(runMonth(crashing, { month: '2026-10', accounts })).rejects.toThrow('crash midway');
    expect(crashAt.size).toBe(0);
    const deps = { ...invoicerOn(stack, clickhouse, clock, server), issuer: crashing.issuer };
    // Two invoicers at once, then a third run.
    const both = await Promise.all([runMonth(deps, { month: '2026-10', accounts }), runMonth(deps, { month: '2026-10', accounts })]);
    expect(both.reduce((s, r) => s + r.invoiced, 0)).toBe(0);
    const again = await runMonth(deps, { month: '2026-10', accounts });
    expect(again).toMatchObject({ invoiced: 0, existing: 3, billed: 0 });

    for (const a of accounts) {
      const inv = (await invoiceOfMonth(stack.pool, a, '2026-10'))!;
      expect(inv.state).toBe('paid');
      const stripeInvoices = stripeInvoicesOf(a);
      expect(stripeInvoices).toHaveLength(1);
      expect(stripeInvoices[0]).toMatchObject({ id: inv.stripeInvoiceId, status: 'paid', amount_due: 808 });
      expect((stripeInvoices[0]!.lines as { data: unknown[] }).data).toHaveLength(2);
    }
    const count = await stack.pool.query('SELECT count(*)::int AS n FROM invoices WHERE account_id = ANY($1)', [accounts]);
    expect(count.rows[0].n).toBe(3);
    const numbers = await stack.pool.query('SELECT invoice_number FROM invoices WHERE account_id = ANY($1) ORDER BY invoice_number', [accounts]);
    expect(numbers.rows.map((r) => r.invoice_number)).toEqual([1n, 2n, 3n]);
  });

  test('Stripe rate-limiting the run: backed off and retried with the same keys, one invoice', async ({ stack, clickhouse }) => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    await rate(stack, clickhouse, [{ account, product: 'image-gen', quantity: 5n, unitPrice: 40_000n, at: OCT + DAY, ratedAt: OCT + DAY }]);
    await saveCard(stack, server, account);
    server.rateLimitNext(4);
    expect(await runMonth(invoicerOn(stack, clickhouse, new TestClock(NOV + 1000), server), { month: '2026-10', accounts: [account] }))
      .toMatchObject({ billed: 1, failedPayments: 0 });
    expect(stripeInvoicesOf(account)).toMatchObject([{ status: 'paid', amount_paid: 20 }]);
  });

  test('a planted ClickHouse-vs-ledger difference holds the invoice for review, unbilled', async ({ stack, clickhouse }) => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    await rate(stack, clickhouse, [{ account, product: 'gpt-tokens', quantity: 1000n, unitPrice: 2_000_000n, per: 1000n, at: OCT + DAY, ratedAt: OCT + DAY }]);
    await rate(stack, clickhouse, [{ account, product: 'image-gen', quantity: 1n, unitPrice: 40_000n, at: OCT + DAY, ratedAt: OCT + DAY }], 'clickhouse');
    await saveCard(stack, server, account);
    const summary = await runMonth(invoicerOn(stack, clickhouse, new TestClock(NOV + 1000), server), { month: '2026-10', accounts: [account] });
    expect(summary.needsReview).toEqual([{ accountId: account, difference: '0.040000' }]);
    expect(summary.billed).toBe(0);
    const inv = (await invoiceOfMonth(stack.pool, account, '2026-10'))!;
    expect(inv).toMatchObject({ state: 'needs_review', difference: 40_000n, ledgerTotal: 2_000_000n, stripeInvoiceId: null });
    expect(stripeInvoicesOf(account)).toEqual([]);
  });

  test('a late event lands on the next invoice as late usage, the issued one unchanged', async ({ stack, clickhouse }) => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    await rate(stack, clickhouse, [{ account, product: 'gpt-tokens', quantity: 1000n, unitPrice: 2_000_000n, per: 1000n, at: OCT + DAY, ratedAt: OCT + DAY }]);
    const clock = new TestClock(NOV + 1000);
    const deps = invoicerOn(stack, clickhouse, clock);
    await runMonth(deps, { month: '2026-10', accounts: [account] });
    const october = (await invoiceOfMonth(stack.pool, account, '2026-10'))!;
    // Timed in October, rated after October's invoice.
    await rate(stack, clickhouse, [
      { account, product: 'gpt-tokens', quantity: 500n, unitPrice: 2_000_000n, per: 1000n, at: OCT + 30 * DAY, ratedAt: NOV + 5000 },
      { account, product: 'image-gen', quantity: 2n, unitPrice: 40_000n, at: NOV + 3 * DAY, ratedAt: NOV + 3 * DAY },
    ]);
    clock.set('2026-12-01T00:01:00Z');
    await runMonth(deps, { month: '2026-11', accounts: [account] });
    expect(await invoiceOfMonth(stack.pool, account, '2026-10')).toEqual(october);
    expect(await invoiceLines(stack.pool, october.id)).toHaveLength(1);
    const november = (await invoiceOfMonth(stack.pool, account, '2026-11'))!;
    const lines = await invoiceLines(stack.pool, november.id);
    expect(lines.map((l) => [l.kind, l.description, l.usageMonth, l.due])).toEqual([
      ['usage', 'image-gen', '2026-11', 80_000n],
      ['late_usage', 'gpt-tokens: late usage for 2026-10', '2026-10', 1_000_000n],
    ]);
    expect(november).toMatchObject({ total: 1_080_000n, difference: 0n });
  });

  test('a declined charge: failure notice, suspended 7 days after the invoice date, reinstated when paid', async ({ stack, clickhouse }) => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    await rate(stack, clickhouse, [{ account, product: 'image-gen', quantity: 100n, unitPrice: 40_000n, at: OCT + DAY, ratedAt: OCT + DAY }]);
    await saveCard(stack, server, account, CARDS.declinesLater);
    const clock = new TestClock(NOV + 1000);
    const deps = invoicerOn(stack, clickhouse, clock, server);
    expect(await runMonth(deps, { month: '2026-10', accounts: [account] })).toMatchObject({ billed: 1, failedPayments: 1 });
    const inv = (await invoiceOfMonth(stack.pool, account, '2026-10'))!;
    expect(inv.state).toBe('payment_failed');
    const types = async () => (await stack.pool.query<{ type: string }>('SELECT type FROM notifications_outbox WHERE account_id = $1 ORDER BY created_at', [account])).rows.map((r) => r.type);
    expect(await types()).toEqual(['invoice.payment_failed']);
    // Stripe's own event of that attempt (attempt_count 1) tells nothing more; the customer's card
    // declined again (attempt 2) is a new failure with its own notice (seed 001: an alert if a transaction fails).
    const { markPaymentFailed } = await import('../src/dunning.js');
    const firstEvent = server.events.find((e) => e.type === 'invoice.payment_failed')!;
    expect((firstEvent.data.object as { attempt_count: number }).attempt_count).toBe(1);
    await markPaymentFailed(deps.order, { stripeInvoiceId: inv.stripeInvoiceId!, event: { id: firstEvent.id, type: firstEvent.type }, attempt: 1 });
    expect(await types()).toEqual(['invoice.payment_failed']);
    await expect(server.payInvoice(inv.stripeInvoiceId!, { card: CARDS.declinesLater, send: false })).rejects.toThrow();
    const retryEvent = server.events.filter((e) => e.type === 'invoice.payment_failed').at(-1)!;
    expect((retryEvent.data.object as { attempt_count: number }).attempt_count).toBe(2);
    expect(await markPaymentFailed(deps.order, { stripeInvoiceId: inv.stripeInvoiceId!, event: { id: retryEvent.id, type: retryEvent.type }, attempt: 2 }))
      .toMatchObject({ outcome: 'applied' });
    expect(await types()).toEqual(['invoice.payment_failed', 'invoice.payment_failed']);

    expect(await suspendOverdue(deps.order, { now: NOV + 7 * DAY - 1 })).toEqual([]);
    clock.set(NOV + 7 * DAY + 1000);
    expect(await suspendOverdue(deps.order)).toEqual([account]);
    expect(await suspendOverdue(deps.order)).toEqual([]);
    const suspended = await stack.pool.query('SELECT suspended_at FROM accounts WHERE id = $1', [account]);
    expect(suspended.rows[0].suspended_at).toEqual(new Date(NOV + 7 * DAY + 1000));

    const { markInvoicePaid } = await import('../src/dunning.js');
    await server.payInvoice(inv.stripeInvoiceId!, { send: false });
    expect(await markInvoicePaid(deps.order, { stripeInvoiceId: inv.stripeInvoiceId! })).toMatchObject({ outcome: 'applied', reinstated: true });
    expect(await markInvoicePaid(deps.order, { stripeInvoiceId: inv.stripeInvoiceId! })).toMatchObject({ outcome: 'settled' });
    const after = await stack.pool.query('SELECT suspended_at FROM accounts WHERE id = $1', [account]);
    expect(after.rows[0].suspended_at).toBeNull();
    const history = await stack.pool.query<{ kind: string }>(`SELECT kind FROM ledger_entries WHERE account_id = $1 ORDER BY seq`, [account]);
    expect(history.rows.map((r) => r.kind)).toEqual(['suspension', 'reinstatement']);
    expect(await types()).toEqual(['invoice.payment_failed', 'invoice.payment_failed', 'account.suspended', 'invoice.paid', 'account.reinstated']);
  });

  test('the 08:00 statement: month-to-date cost from ClickHouse beside the ledger, drift alerted', async ({ stack, clickhouse }) => {
    const account = await createAccount(stack, { billing_mode: 'postpaid' });
    const drifting = await createAccount(stack, { billing_mode: 'postpaid' });
    const at = Date.parse('2026-11-10T08:00:00Z');
    await rate(stack, clickhouse, [
      { account, product: 'gpt-tokens', quantity: 3000n, unitPrice: 2_000_000n, per: 1000n, fromGrants: 500_000n, at: NOV + DAY, ratedAt: NOV + DAY },
      { account, product: 'image-gen', quantity: 5n, unitPrice: 40_000n, at: NOV + 8 * DAY, ratedAt: NOV + 8 * DAY },
      // October's and the last minutes' (not yet in ClickHouse as far as the refresh knows) are not in it.
      { account, product: 'image-gen', quantity: 5n, unitPrice: 40_000n, at: OCT + DAY, ratedAt: OCT + DAY },
      { account, product: 'image-gen', quantity: 7n, unitPrice: 40_000n, at: at - 60_000, ratedAt: at - 60_000 },
      { account: drifting, product: 'image-gen', quantity: 1n, unitPrice: 40_000n, at: NOV + DAY, ratedAt: NOV + DAY },
    ]);
    await rate(stack, clickhouse, [{ account: drifting, product: 'image-gen', quantity: 1n, unitPrice: 40_000n, at: NOV + DAY, ratedAt: NOV + DAY }], 'postgres');
    const deps = invoicerOn(stack, clickhouse, new TestClock(at));
    const refresh = await refreshStatements(deps, { accounts: [account, drifting] });
    expect(refresh).toEqual({
      day: '2026-11-10', accounts: 2,
      drift: [{ accountId: drifting, clickhouse: '0.040000', ledger: '0.080000', difference: '-0.040000' }],
    });
    expect(await latestStatement(stack.pool, account)).toMatchObject({
      day: '2026-11-10', month: '2026-11', amount: 6_200_000n, covered: 500_000n, due: 5_700_000n, ledgerDue: 5_700_000n,
    });
    // Rerun the same day: the statement is rewritten, not added.
    await refreshStatements(deps, { accounts: [account] });
    expect((await stack.pool.query('SELECT count(*)::int AS n FROM daily_statements WHERE account_id = $1', [account])).rows[0].n).toBe(1);

    const reconciled = await reconcileMonth(invoicerOn(stack, clickhouse, new TestClock(Date.parse('2026-12-01T00:00:00Z'))), { month: '2026-11', accounts: [account, drifting] });
    expect(reconciled.differences).toEqual([{ accountId: drifting, clickhouse: '0.040000', ledger: '0.080000', difference: '-0.040000', invoice: null }]);
  });

  test('the scheduled run closes the previous month for the accounts whose anchor day has come', async ({ stack, clickhouse }) => {
    const onFirst = await createAccount(stack, { billing_mode: 'postpaid' });
    const onTenth = await createAccount(stack, { billing_mode: 'postpaid' });
    await stack.pool.query('UPDATE accounts SET billing_anchor_day = 10 WHERE id = $1', [onTenth]);
    for (const account of [onFirst, onTenth]) {
      await rate(stack, clickhouse, [{ account, product: 'image-gen', quantity: 5n, unitPrice: 40_000n, at: OCT + DAY, ratedAt: OCT + DAY }]);
    }
    const clock = new TestClock(NOV + 5 * 60_000);
    const jobs = invoicerHandlers(invoicerOn(stack, clickhouse, clock));
    await jobs.monthly();
    expect((await invoiceOfMonth(stack.pool, onFirst, '2026-10'))?.total).toBe(200_000n);
    expect(await invoiceOfMonth(stack.pool, onTenth, '2026-10')).toBeUndefined();
    clock.set('2026-11-10T00:05:00Z');
    await jobs.monthly();
    expect((await invoiceOfMonth(stack.pool, onTenth, '2026-10'))?.total).toBe(200_000n);
  });
});
