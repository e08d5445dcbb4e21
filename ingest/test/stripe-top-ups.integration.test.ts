import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { PDFParse } from 'pdf-parse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '@meterstream/platform/clock';
import { Stripe } from '@meterstream/platform/stripe';
import { CARDS, CardDeclined, startStripeServer, type Delivery, type StripeServer } from '../../tests/support/stripe-server.js';
import { admin, bearer, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// Buying credits through Stripe Checkout (seed 004) and saving a card (seed 001), end to end: the
// ingest on the real stack, the official Stripe client pointed at the Stripe-shaped server, and
// that server POSTing signed webhooks to the ingest over HTTP, as Stripe would.

// An issuer of this file's own: its invoice numbers start at 1 whatever other files did.
const ISSUER = `T${randomBytes(4).toString('hex').toUpperCase()}`;
const SELLER = { INVOICE_SELLER_NAME: 'Meterstream Test GmbH', INVOICE_SELLER_ADDRESS: '1 Test Street\\n10115 Berlin', INVOICE_SELLER_VAT_ID: 'DE123456789' };

let stripe: StripeServer;
let t: TestIngest;

beforeAll(async () => {
  stripe = await startStripeServer();
  t = await openIngest('stripe-top-ups', { ...stripe.env, INVOICE_ISSUER: ISSUER, ...SELLER });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  stripe.setWebhookUrl(`http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/v1/stripe/webhook`);
});

afterAll(async () => {
  await t?.close();
  await stripe?.close();
});

const inject = () => injector(t.app);

interface TopUpBody { id: string; state: string; amount: string; checkout_url: string | null; grant_id: string | null }

async function topUp(account: { id: string; api_key: string }, amount: string, key = uid('topup')) {
  return inject()('POST', `/v1/accounts/${account.id}/top-ups`, { ...bearer(account.api_key), 'idempotency-key': key }, { amount });
}

async function startTopUp(account: { id: string; api_key: string }, amount: string): Promise<TopUpBody & { sessionId: string }> {
  const res = await topUp(account, amount);
  expect(res.statusCode, res.body).toBe(201);
  const body = res.json<TopUpBody>();
  return { ...body, sessionId: new URL(body.checkout_url!).pathname.split('/').at(-1)! };
}

async function balance(account: { id: string; api_key: string }) {
  const res = await inject()('GET', `/v1/accounts/${account.id}/balance`, bearer(account.api_key));
  expect(res.statusCode).toBe(200);
  return res.json<{ balance: string; pending_top_ups: { id: string; amount: string }[]; grants: { kind: string; remaining: string; expires_at: string | null }[] }>();
}

async function topUps(account: { id: string; api_key: string }) {
  const res = await inject()('GET', `/v1/accounts/${account.id}/top-ups`, bearer(account.api_key));
  expect(res.statusCode).toBe(200);
  return res.json<{ presets: string[]; minimum: string; currency: string; top_ups: TopUpBody[] }>();
}

async function payments(account: { id: string; api_key: string }) {
  const res = await inject()('GET', `/v1/accounts/${account.id}/payments`, bearer(account.api_key));
  expect(res.statusCode).toBe(200);
  return res.json<{ payments: Record<string, string>[] }>().payments;
}

async function history(account: { id: string; api_key: string }) {
  const res = await inject()('GET', `/v1/accounts/${account.id}/transactions`, bearer(account.api_key));
  expect(res.statusCode).toBe(200);
  return res.json<{ transactions: { kind: string; amount: string; reason: string | null }[] }>().transactions;
}

const outcome = (d: Delivery) => {
  expect(d.status, d.body ?? '').toBe(200);
  return (JSON.parse(d.body!) as { outcome: string }).outcome;
};

async function pdfText(pdf: Buffer): Promise<string> {
  const parser = new PDFParse({ data: new Uint8Array(pdf) });
  try {
    return (await parser.getText()).text;
  } finally {
    await parser.destroy();
  }
}

describe('top-ups through Stripe Checkout', () => {
  it('a preset top-up is pending, then paid: purchased credits that never expire, once, on the account\'s one Stripe customer', async () => {
    const acct = await createAccount(t.app, { currency: 'EUR' });
    const options = await topUps(acct);
    expect(options).toMatchObject({ currency: 'EUR', presets: ['10.000000', '50.000000', '100.000000', '300.000000', '500.000000', '1000.000000'], minimum: '1.000000', top_ups: [] });

    const key = uid('topup');
    const res = await topUp(acct, '50', key);
    expect(res.statusCode, res.body).toBe(201);
    const started = res.json<TopUpBody>();
    expect(started).toMatchObject({ state: 'pending', amount: '50.000000', grant_id: null });
    expect(started.checkout_url).toMatch(new RegExp(`^${stripe.url}/c/pay/cs_test_`));
    const sessionId = new URL(started.checkout_url!).pathname.split('/').at(-1)!;
    const session = stripe.objects.get(sessionId)!;
    expect(session).toMatchObject({ mode: 'payment', amount_total: 5000, currency: 'eur', metadata: { top_up_id: started.id, account_id: acct.id } });

    // A retry (same key, same amount) gets the same top-up and page; the key with another amount is refused.
    const retry = await topUp(acct, '50.00', key);
    expect(retry.statusCode).toBe(201);
    expect(retry.headers['idempotent-replayed']).toBe('true');
    expect(retry.json<TopUpBody>()).toEqual(started);
    expect((await topUp(acct, '100', key)).json()).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });

    const before = await balance(acct);
    expect(before.balance).toBe('0.000000');
    expect(before.pending_top_ups).toEqual([{ id: started.id, amount: '50.000000', created_at: expect.any(String), checkout_url: started.checkout_url }]);

    expect(outcome(await stripe.completeCheckout(sessionId))).toBe('applied');

    const after = await balance(acct);
    expect(after.balance).toBe('50.000000');
    expect(after.pending_top_ups).toEqual([]);
    expect(after.grants).toEqual([expect.objectContaining({ kind: 'purchased', remaining: '50.000000', expires_at: null })]);
    expect((await topUps(acct)).top_ups).toEqual([expect.objectContaining({ id: started.id, state: 'paid', grant_id: expect.any(String) })]);

    // A second top-up uses the customer made for the first.
    await startTopUp(acct, '10');
    const customers = [...stripe.objects.values()].filter((o) => o.object === 'customer' && (o.metadata as Record<string, string>).account_id === acct.id);
    expect(customers).toHaveLength(1);
  });

  it('a custom amount of at least 1 in whole cents, paid by a delayed method: pending until its payment succeeds', async () => {
    const acct = await createAccount(t.app, { currency: 'USD' });
    for (const bad of ['0.99', '12.345', '0']) {
      const res = await topUp(acct, bad);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: { code: 'INVALID_TOP_UP_AMOUNT' } });
    }
    const started = await startTopUp(acct, '12.34');
    expect(stripe.objects.get(started.sessionId)).toMatchObject({ amount_total: 1234, currency: 'usd' });

    // Completed with a bank debit still on its way: nothing is granted yet.
    expect(outcome(await stripe.completeCheckout(started.sessionId, { delayed: true }))).toBe('ignored');
    expect((await balance(acct)).pending_top_ups.map((p) => p.id)).toEqual([started.id]);

    expect(outcome(await stripe.settleDelayed(started.sessionId, 'succeeded'))).toBe('applied');
    const after = await balance(acct);
    expect(after.balance).toBe('12.340000');
    expect(after.pending_top_ups).toEqual([]);
  });

  it('the same webhook delivered three times at once and the events out of order grant once', async () => {
    const acct = await createAccount(t.app, { currency: 'EUR' });
    const started = await startTopUp(acct, '100');
    const completed = await stripe.completeCheckout(started.sessionId, { delayed: true, send: false });
    const succeeded = await stripe.settleDelayed(started.sessionId, 'succeeded', { send: false });

    // The later event first, three times concurrently.
    const outcomes = (await Promise.all([1, 2, 3].map(() => stripe.deliver(succeeded.event)))).map(outcome);
    expect(outcomes.sort()).toEqual(['applied', 'duplicate', 'duplicate']);
    // Then the earlier one, and the later one again.
    expect(outcome(await stripe.deliver(completed.event))).toBe('ignored');
    expect(outcome(await stripe.deliver(succeeded.event))).toBe('duplicate');

    // A paid session's completed event, three times: the top-up was settled already.
    const paid = await startTopUp(acct, '10');
    const once = await stripe.completeCheckout(paid.sessionId);
    expect(outcome(once)).toBe('applied');
    expect(outcome(await stripe.deliver(once.event))).toBe('duplicate');
    expect(outcome(await stripe.deliver(once.event))).toBe('duplicate');

    const after = await balance(acct);
    expect(after.balance).toBe('110.000000');
    expect(after.grants.map((g) => g.remaining).sort()).toEqual(['10.000000', '100.000000']);
    expect((await history(acct)).filter((h) => h.kind === 'grant').map((h) => h.amount).sort()).toEqual(['10.000000', '100.000000']);
    expect(await payments(acct)).toHaveLength(2);
  });

  it('a forged, stale or unsigned webhook answers 400 and changes nothing', async () => {
    const acct = await createAccount(t.app, { currency: 'EUR' });
    const started = await startTopUp(acct, '50');
    const { event } = await stripe.completeCheckout(started.sessionId, { send: false });

    const forged = await stripe.deliver(event, { secret: 'whsec_not_the_endpoint_secret' });
    expect(forged.status).toBe(400);
    expect(JSON.parse(forged.body!)).toMatchObject({ error: { code: 'INVALID_SIGNATURE' } });
    const stale = await stripe.deliver(event, { timestampS: Math.floor(systemClock.now() / 1000) - 10 * 60 });
    expect(stale.status).toBe(400);
    expect(JSON.parse(stale.body!)).toMatchObject({ error: { code: 'INVALID_SIGNATURE', message: expect.stringContaining('tolerance') } });
    const unsigned = await inject()('POST', '/v1/stripe/webhook', { 'content-type': 'application/json' }, event);
    expect(unsigned.statusCode).toBe(400);
    // Tampered: the body changed after signing.
    const tampered = await inject()('POST', '/v1/stripe/webhook', {
      'content-type': 'application/json',
      'stripe-signature': Stripe.webhooks.generateTestHeaderString({ payload: JSON.stringify(event), secret: stripe.webhookSecret }),
    }, { ...event, id: 'evt_tampered' });
    expect(tampered.statusCode).toBe(400);

    const unchanged = await balance(acct);
    expect(unchanged.balance).toBe('0.000000');
    expect(unchanged.pending_top_ups.map((p) => p.id)).toEqual([started.id]);
    const recorded = await t.stack.pool.query('SELECT 1 FROM stripe_events WHERE id = $1', [event.id]);
    expect(recorded.rowCount).toBe(0);

    // Signed properly, the same event is applied: the refused deliveries left no trace.
    expect(outcome(await stripe.deliver(event))).toBe('applied');
    expect((await balance(acct)).balance).toBe('50.000000');
  });

  it('an expired session or a failed payment leaves a history entry and no credits', async () => {
    const acct = await createAccount(t.app, { currency: 'EUR' });
    const expiring = await startTopUp(acct, '300');
    const expired = await stripe.expireCheckout(expiring.sessionId);
    expect(outcome(expired)).toBe('applied');
    expect(outcome(await stripe.deliver(expired.event))).toBe('duplicate');

    const failing = await startTopUp(acct, '500');
    expect(outcome(await stripe.completeCheckout(failing.sessionId, { delayed: true }))).toBe('ignored');
    expect(outcome(await stripe.settleDelayed(failing.sessionId, 'failed'))).toBe('applied');

    const after = await balance(acct);
    expect(after.balance).toBe('0.000000');
    expect(after.pending_top_ups).toEqual([]);
    expect(after.grants).toEqual([]);
    const states = Object.fromEntries((await topUps(acct)).top_ups.map((u) => [u.id, u.state]));
    expect(states).toEqual({ [expiring.id]: 'expired', [failing.id]: 'failed' });
    expect((await history(acct)).map((h) => ({ kind: h.kind, amount: h.amount, reason: h.reason }))).toEqual([
      { kind: 'payment', amount: '0.000000', reason: `top-up ${failing.id} of 500.000000 EUR: the payment failed` },
      { kind: 'payment', amount: '0.000000', reason: `top-up ${expiring.id} of 300.000000 EUR: its Checkout session expired unpaid` },
    ]);
    expect(await payments(acct)).toEqual([]);
  });

  it('declares the webhook public (no API key: the signature is its authentication) and the other routes billing ones', async () => {
    const doc = (await inject()('GET', '/openapi.json')).json<{ paths: Record<string, Record<string, { security?: unknown; 'x-access'?: string }>> }>();
    expect(doc.paths['/v1/stripe/webhook']!.post!.security).toEqual([]);
    expect(doc.paths['/v1/stripe/webhook']!.post!['x-access']).toBe('public');
    expect(doc.paths['/v1/accounts/{id}/top-ups']!.post!['x-access']).toBe('billing:manage');
    expect(doc.paths['/v1/accounts/{id}/payment-methods/setup']!.post!['x-access']).toBe('billing:manage');
    expect(doc.paths['/v1/accounts/{id}/payments']!.get!['x-access']).toBe('billing:read');
    expect(doc.paths['/v1/accounts/{id}/payments/{paymentId}/invoice.pdf']!.get!['x-access']).toBe('billing:read');
  });

  it('ignores event types it does not act on with 200', async () => {
    const acct = await createAccount(t.app, { currency: 'EUR' });
    const started = await startTopUp(acct, '10');
    const { event } = await stripe.completeCheckout(started.sessionId, { send: false });
    const other = { ...event, id: `evt_${randomBytes(12).toString('hex')}`, type: 'customer.created' } as Stripe.Event;
    expect(outcome(await stripe.deliver(other))).toBe('ignored');
    expect(outcome(await stripe.deliver(other))).toBe('duplicate');
    expect((await balance(acct)).balance).toBe('0.000000');
  });
});

describe('saved card (Checkout in setup mode)', () => {
  it("becomes the account's default payment method, here and on its Stripe customer; a declined card saves nothing", async () => {
    const acct = await createAccount(t.app, { currency: 'USD' });
    const setup = async () => {
      const res = await inject()('POST', `/v1/accounts/${acct.id}/payment-methods/setup`, bearer(acct.api_key));
      expect(res.statusCode, res.body).toBe(201);
      const body = res.json<{ checkout_url: string; payment_method: string | null }>();
      return { ...body, sessionId: new URL(body.checkout_url).pathname.split('/').at(-1)! };
    };
    const first = await setup();
    expect(first.payment_method).toBeNull();
    expect(stripe.objects.get(first.sessionId)).toMatchObject({ mode: 'setup', currency: 'usd' });

    await expect(stripe.completeCheckout(first.sessionId, { card: CARDS.declined })).rejects.toBeInstanceOf(CardDeclined);
    expect((await setup()).payment_method).toBeNull();

    expect(outcome(await stripe.completeCheckout(first.sessionId, { card: CARDS.mastercard }))).toBe('applied');
    const saved = (await setup()).payment_method;
    expect(saved).toMatch(/^pm_/);
    expect(stripe.objects.get(saved!)).toMatchObject({ card: { brand: 'mastercard', last4: '4444' } });
    const customer = stripe.objects.get(stripe.objects.get(first.sessionId)!.customer as string)!;
    expect(customer).toMatchObject({ invoice_settings: { default_payment_method: saved }, metadata: { account_id: acct.id } });
    const row = await t.stack.pool.query<{ payment_method: string }>('SELECT payment_method FROM accounts WHERE id = $1', [acct.id]);
    expect(row.rows[0]!.payment_method).toBe(saved);
  });
});

describe('payments and their PDF invoices', () => {
  it('lists every completed payment, numbers invoices without gaps and prints amount, number, seller, buyer and VAT', async () => {
    const email = `${uid('buyer')}@example.com`;
    const acct = await createAccount(t.app, { currency: 'EUR', email });
    const first = await startTopUp(acct, '50');
    await stripe.completeCheckout(first.sessionId);
    const second = await startTopUp(acct, '1000');
    await stripe.completeCheckout(second.sessionId, { card: CARDS.mastercard });
    const unpaid = await startTopUp(acct, '10');

    const list = await payments(acct);
    expect(list).toEqual([
      expect.objectContaining({ top_up_id: second.id, amount: '1000.000000', currency: 'EUR', method: 'mastercard •••• 4444', status: 'succeeded', credits_granted: '1000.000000' }),
      expect.objectContaining({ top_up_id: first.id, amount: '50.000000', currency: 'EUR', method: 'visa •••• 4242', status: 'succeeded', credits_granted: '50.000000' }),
    ]);
    expect(list.map((p) => p.top_up_id)).not.toContain(unpaid.id);
    const [n2, n1] = list.map((p) => p.invoice_number!);
    expect(n1).toMatch(new RegExp(`^${ISSUER}-\\d{6}$`));
    expect(Number(n2!.split('-')[1])).toBe(Number(n1!.split('-')[1]) + 1);

    const res = await inject()('GET', list[1]!.invoice_url!, bearer(acct.api_key));
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('application/pdf');
    const text = await pdfText(res.rawPayload);
    for (const expected of [
      `Invoice number: ${n1}`, 'Total paid: EUR 50.00', 'Net amount: EUR 50.00', 'VAT rate: 0.00%', 'VAT amount: EUR 0.00',
      'Meterstream Test GmbH', '1 Test Street', '10115 Berlin', 'VAT ID: DE123456789', `Account: ${acct.id}`, `Email: ${email}`, 'visa •••• 4242',
    ]) expect(text).toContain(expected);

    const other = await createAccount(t.app, { currency: 'EUR' });
    expect((await inject()('GET', list[1]!.invoice_url!, bearer(other.api_key))).statusCode).toBe(403);
    expect((await inject()('GET', `/v1/accounts/${acct.id}/payments/pay_${'0'.repeat(24)}/invoice.pdf`, admin)).statusCode).toBe(404);
  });
});

describe('Stripe unreachable', () => {
  it('answers 503 and shows no pending top-up; the retry with the same key completes it once Stripe is back', async () => {
    const acct = await createAccount(t.app, { currency: 'EUR' });
    const missingKey = await inject()('POST', `/v1/accounts/${acct.id}/top-ups`, bearer(acct.api_key), { amount: '10' });
    expect(missingKey.json()).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REQUIRED' } });

    const port = Number(new URL(stripe.url).port);
    const webhookUrl = `http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/v1/stripe/webhook`;
    await stripe.close();
    const key = uid('topup');
    const down = await topUp(acct, '10', key);
    expect(down.statusCode).toBe(503);
    expect(down.json()).toMatchObject({ error: { code: 'STRIPE_UNAVAILABLE' } });
    expect((await balance(acct)).pending_top_ups).toEqual([]);

    // The same server comes back (its objects are gone, as a fresh Stripe test account's would be).
    stripe = await startStripeServer({ port, secretKey: stripe.secretKey, webhookSecret: stripe.webhookSecret, webhookUrl });
    const retried = await topUp(acct, '10', key);
    expect(retried.statusCode, retried.body).toBe(201);
    expect(retried.headers['idempotent-replayed']).toBe('true');
    const body = retried.json<TopUpBody>();
    expect((await balance(acct)).pending_top_ups.map((p) => p.id)).toEqual([body.id]);
    expect(outcome(await stripe.completeCheckout(new URL(body.checkout_url!).pathname.split('/').at(-1)!))).toBe('applied');
    expect((await balance(acct)).balance).toBe('10.000000');
  });
});
