import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { PDFParse } from 'pdf-parse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClock } from '@meterstream/platform/clock';
import { invoiceOfMonth } from '@meterstream/platform/stores/invoices';
import { CARDS, startStripeServer, type StripeServer } from '../../tests/support/stripe-server.js';
import { setPrices } from '../../tests/support/fixtures.js';
import { runMonth } from '../../invoicer/src/run.js';
import { invoiceNumberText, suspendOverdue } from '../../invoicer/src/dunning.js';
import { refreshStatements } from '../../invoicer/src/daily.js';
import { rate } from '../../tests/support/rated.js';
import { invoicerOn, orderOn, saveCard } from '../../invoicer/test/support.js';
import { admin, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// The monthly invoice seen from the API: charged through the Stripe-shaped server, its webhooks
// POSTed to the ingest, dunning suspending the account at the gate and the payment lifting it; the
// invoice, its PDF and the usage history read back through the billing routes.

const DAY = 86_400_000;
const OCT = Date.parse('2026-10-01T00:00:00Z');
const NOV = Date.parse('2026-11-01T00:00:00Z');
const ISSUER = `T${randomBytes(4).toString('hex').toUpperCase()}`;
const PRODUCT = `inv-req-${randomBytes(3).toString('hex')}`;

let stripe: StripeServer;
let t: TestIngest;

beforeAll(async () => {
  stripe = await startStripeServer();
  t = await openIngest('invoices-dunning', { ...stripe.env, INVOICE_ISSUER: ISSUER, INVOICE_SELLER_NAME: 'Meterstream Test GmbH', INVOICE_SELLER_VAT_ID: 'DE123456789' });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  stripe.setWebhookUrl(`http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/v1/stripe/webhook`);
  await setPrices(t.stack, { [PRODUCT]: { unit: 'request', unit_price: '0.5', per: 1, currency: 'USD' } });
});

afterAll(async () => {
  await t?.close();
  await stripe?.close();
});

const inject = () => injector(t.app);
const authorize = (accountId: string) =>
  inject()('POST', '/v1/authorize', { ...admin, 'idempotency-key': uid('k') }, { account_id: accountId, product: PRODUCT, max_quantity: '1' });

async function pdfText(pdf: Buffer): Promise<string> {
  const parser = new PDFParse({ data: new Uint8Array(pdf) });
  try {
    return (await parser.getText()).text;
  } finally {
    await parser.destroy();
  }
}

describe('monthly invoices through the API', () => {
  it('payment failed -> suspended after 7 days -> the gate refuses -> paid -> the gate accepts; the invoice, its PDF and the history', async () => {
    const account = (await createAccount(t.app, { billing_mode: 'postpaid' })).id;
    await rate(t.stack, t.ch, [
      { account, product: PRODUCT, unit: 'request', quantity: 40n, unitPrice: 500_000n, at: OCT + DAY + 3_600_000, ratedAt: OCT + DAY + 3_600_000 },
      { account, product: PRODUCT, unit: 'request', quantity: 2n, unitPrice: 500_000n, fromGrants: 1_000_000n, at: OCT + 9 * DAY, ratedAt: OCT + 9 * DAY },
    ]);
    await saveCard(t.stack, stripe, account, CARDS.declinesLater);
    await t.stack.cache.gate.forgetConfig(account);

    const clock = new TestClock(NOV + 60_000);
    const deps = { ...invoicerOn(t.stack, t.ch, clock, stripe, { gate: t.stack.cache.gate }), issuer: ISSUER };
    expect(await runMonth(deps, { month: '2026-10', accounts: [account] })).toMatchObject({ invoiced: 1, billed: 1, failedPayments: 1 });
    const inv = (await invoiceOfMonth(t.stack.pool, account, '2026-10'))!;
    expect(inv).toMatchObject({ state: 'payment_failed', total: 20_000_000n, covered: 1_000_000n, amountDue: 20_000_000n });
    expect((await authorize(account)).statusCode).toBe(200);

    clock.set(inv.invoiceDate.getTime() + 7 * DAY + 1);
    expect(await suspendOverdue(deps.order, { gate: t.stack.cache.gate })).toEqual([account]);
    const refused = await authorize(account);
    expect({ status: refused.statusCode, code: refused.json().error?.code }).toEqual({ status: 403, code: 'ACCOUNT_SUSPENDED' });
    // The usage page shows why (issue 12).
    const suspendedBalance = (await inject()('GET', `/v1/accounts/${account}/balance`, admin)).json();
    expect(suspendedBalance.suspended).toEqual({
      since: new Date(inv.invoiceDate.getTime() + 7 * DAY + 1).toISOString(),
      reason: `API access suspended: invoice ${invoiceNumberText(inv)} of 20.000000 USD for 2026-10 unpaid 7 days after its date`,
    });

    // The customer pays with another card: Stripe's invoice.paid reaches the webhook.
    // The server also sends invoice.paid by itself, racing this delivery: one of the two applies it, the other is a duplicate.
    const delivery = await stripe.payInvoice(inv.stripeInvoiceId!);
    expect(delivery.status).toBe(200);
    expect(['applied', 'duplicate']).toContain(JSON.parse(delivery.body!).outcome);
    expect((await invoiceOfMonth(t.stack.pool, account, '2026-10'))!.state).toBe('paid');
    expect((await stripe.deliver(delivery.event)).body).toContain('duplicate');
    expect((await authorize(account)).statusCode).toBe(200);
    expect((await inject()('GET', `/v1/accounts/${account}/balance`, admin)).json().suspended).toBeNull();
    const types = await t.stack.pool.query<{ type: string }>('SELECT type FROM notifications_outbox WHERE account_id = $1 ORDER BY created_at', [account]);
    expect(types.rows.map((r) => r.type)).toEqual(['invoice.payment_failed', 'account.suspended', 'invoice.paid', 'account.reinstated']);

    const list = await inject()('GET', `/v1/accounts/${account}/invoices`, admin);
    expect(list.statusCode).toBe(200);
    expect(list.json().invoices).toMatchObject([{ id: inv.id, month: '2026-10', state: 'paid', number: invoiceNumberText(inv), total: '20.000000', amount_due: '20.000000' }]);
    const one = await inject()('GET', `/v1/accounts/${account}/invoices/${inv.id}`, admin);
    expect(one.json().lines).toEqual([{
      line: 1, kind: 'usage', description: PRODUCT, product: PRODUCT, usage_month: '2026-10', unit: 'request', quantity: '42.000000',
      unit_price: '0.500000', per: 1, amount: '21.000000', covered_by_credits: '1.000000', due: '20.000000',
    }]);
    const pdf = await inject()('GET', `/v1/accounts/${account}/invoices/${inv.id}/invoice.pdf`, admin);
    expect(pdf.headers['content-type']).toBe('application/pdf');
    const text = await pdfText(pdf.rawPayload);
    for (const want of [`Invoice number: ${invoiceNumberText(inv)}`, 'Period: 2026-10', 'Meterstream Test GmbH', 'VAT ID: DE123456789', `Account: ${account}`,
      '42.000000 request at USD 0.500000 per 1 request', 'Covered by free credits: USD 1.000000', 'VAT rate: 0%', 'Total due: USD 20.00']) {
      expect(text).toContain(want);
    }

    await refreshStatements({ ...deps, order: orderOn(t.stack, new TestClock(Date.parse('2026-10-20T08:00:00Z'))) }, { accounts: [account] });
    const history = await inject()('GET', `/v1/accounts/${account}/usage/monthly?year=2026`, admin);
    expect(history.statusCode).toBe(200);
    expect(history.json().statement).toEqual({
      day: '2026-10-20', month: '2026-10', amount: '21.000000', covered_by_credits: '1.000000', due: '20.000000', computed_at: '2026-10-20T08:00:00.000Z',
    });
    expect(history.json().months.find((m: { month: string }) => m.month === '2026-10')).toEqual({ month: '2026-10', amount: '21.000000', invoice_total: '20.000000', state: 'paid' });
    const day = await inject()('GET', `/v1/accounts/${account}/usage/daily/2026-10-02`, admin);
    expect(day.json()).toEqual({
      day: '2026-10-02', currency: 'USD', total: '20.000000',
      items: [{ product: PRODUCT, unit: 'request', events: 1, quantity: '40.000000', unit_price: '0.500000', per: 1, cost: '20.000000' }],
    });
    expect((await inject()('GET', `/v1/accounts/${account}/usage/daily/2026-02-30`, admin)).statusCode).toBe(400);
  });
});
