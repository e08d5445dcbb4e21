import { billingProfile } from '@meterstream/platform/stores/payments';
import { invoiceLines, nextInvoiceNumber, type InvoiceRecord } from '@meterstream/platform/stores/invoices';
import { setTimeout as sleep } from 'node:timers/promises';
import { backoffDelay } from '@meterstream/platform/backoff';
import { Stripe } from '@meterstream/platform/stripe';
import { ensureCustomer } from '@meterstream/ledger/commands/ensure-customer';
import { lineCents } from './core/lines.js';
import { markInvoicePaid, markPaymentFailed } from './dunning.js';
import type { InvoicerDeps } from './run.js';

/** Attempts of one Stripe call that Stripe rate-limits (429), with backoff between them. */
const RATE_LIMIT_ATTEMPTS = 8;

/**
 * Runs a Stripe call again after a backoff while Stripe answers 429 (its client retries
 * connection errors, 409 and 5xx itself, not rate limits). Safe: the retry carries the same key.
 */
async function limited<T>(op: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (e) {
      if (!(e instanceof Stripe.errors.StripeRateLimitError) || attempt >= RATE_LIMIT_ATTEMPTS) throw e;
      await sleep(backoffDelay(attempt, 200, 10_000));
    }
  }
}

/** Stripe idempotency keys of one invoice's calls: (account, month, step or line). */
export const stripeKey = (inv: Pick<InvoiceRecord, 'accountId' | 'month'>, step: string) => `meterstream:invoice:${inv.accountId}:${inv.month}:${step}`;

/**
 * Sends an invoice to Stripe and charges it, or resumes where a crashed run stopped: the invoice
 * (charge_automatically, the account's default card, no pending items swept in), one invoice item
 * per line due, finalize, pay. Every call carries a key of (account, month, step), so a rerun after
 * a crash at any step, or another invoicer doing the same at once, gets Stripe's first answer back
 * and one invoice exists. The Stripe invoice id is kept as soon as Stripe gives it; the number is
 * given when it is issued. Returns the invoice's state after the pay attempt.
 */
export async function billInvoice(deps: InvoicerDeps, inv: InvoiceRecord): Promise<'paid' | 'payment_failed' | 'open'> {
  const stripe = deps.stripe!;
  const { pool } = deps.order;
  const step = (name: string) => deps.onStripeStep?.(name, inv);
  const profile = (await billingProfile(pool, inv.accountId))!;
  const customer = await limited(() => ensureCustomer(pool, stripe, profile));
  const paymentMethod = (await pool.query<{ payment_method: string | null }>('SELECT payment_method FROM accounts WHERE id = $1', [inv.accountId])).rows[0]?.payment_method ?? null;
  // Once Stripe gave the invoice's id it is read back, not created again (Stripe forgets keys after 24 hours).
  const created = inv.stripeInvoiceId !== null ? await limited(() => stripe.invoices.retrieve(inv.stripeInvoiceId!)) : await limited(() => stripe.invoices.create({
    customer, currency: inv.currency.toLowerCase(), collection_method: 'charge_automatically', auto_advance: false,
    pending_invoice_items_behavior: 'exclude', description: `Usage of ${inv.month}`,
    ...(paymentMethod?.startsWith('pm_') ? { default_payment_method: paymentMethod } : {}),
    metadata: { account_id: inv.accountId, month: inv.month, invoice_id: inv.id },
  }, { idempotencyKey: stripeKey(inv, 'create') }));
  await pool.query('UPDATE invoices SET stripe_invoice_id = $2 WHERE id = $1 AND stripe_invoice_id IS NULL', [inv.id, created.id]);
  step('created');
  if (created.status === 'paid') {
    await issue(deps, inv.id);
    await markInvoicePaid(deps.order, { invoiceId: inv.id }, deps.gate);
    return 'paid';
  }
  if (created.status === 'draft') await addLinesAndFinalize(deps, inv, created.id, customer);
  await issue(deps, inv.id);
  step('finalized');
  if (paymentMethod === null) return 'open';
  try {
    const paid = await limited(() => stripe.invoices.pay(created.id, {}, { idempotencyKey: stripeKey(inv, 'pay') }));
    if (paid.status === 'paid') {
      await markInvoicePaid(deps.order, { invoiceId: inv.id }, deps.gate);
      return 'paid';
    }
    return 'open';
  } catch (e) {
    if (!(e instanceof Stripe.errors.StripeCardError)) throw e;
    await markPaymentFailed(deps.order, { invoiceId: inv.id });
    return 'payment_failed';
  }
}

/** The lines due as invoice items of the draft, then finalize: each call under its own key. */
async function addLinesAndFinalize(deps: InvoicerDeps, inv: InvoiceRecord, stripeInvoiceId: string, customer: string): Promise<void> {
  const stripe = deps.stripe!;
  const lines = await invoiceLines(deps.order.pool, inv.id);
  const charges = lineCents(lines.map((l) => l.due));
  for (const [i, line] of lines.entries()) {
    const cents = charges[i]!;
    if (cents === 0n) continue;
    await limited(() => stripe.invoiceItems.create({
      customer, invoice: stripeInvoiceId, currency: inv.currency.toLowerCase(), amount: Number(cents), description: line.description,
      metadata: { invoice_id: inv.id, line: String(line.lineNo) },
    }, { idempotencyKey: stripeKey(inv, `line:${line.lineNo}`) }));
    deps.onStripeStep?.(`line:${line.lineNo}`, inv);
  }
  await limited(() => stripe.invoices.finalizeInvoice(stripeInvoiceId, { auto_advance: false }, { idempotencyKey: stripeKey(inv, 'finalize') }));
}

/** draft -> open with the issuer's next number, once (a concurrent or repeated call finds it open). */
async function issue(deps: InvoicerDeps, invoiceId: string): Promise<void> {
  const c = await deps.order.pool.connect();
  try {
    await c.query('BEGIN');
    const r = await c.query<{ state: string }>('SELECT state FROM invoices WHERE id = $1 FOR UPDATE', [invoiceId]);
    if (r.rows[0]?.state === 'draft') {
      const number = await nextInvoiceNumber(c, deps.issuer);
      await c.query(`UPDATE invoices SET state = 'open', invoice_issuer = $2, invoice_number = $3 WHERE id = $1`, [invoiceId, deps.issuer, number]);
    }
    await c.query('COMMIT');
  } catch (e) {
    await c.query('ROLLBACK').catch(() => undefined);
    throw e;
  } finally {
    c.release();
  }
}
