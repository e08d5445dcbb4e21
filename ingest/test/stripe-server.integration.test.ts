import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStripe, Stripe } from '@meterstream/platform/stripe';
import { CARDS, CardDeclined, startStripeServer, type StripeServer } from '../../tests/support/stripe-server.js';

// The Stripe-shaped server as the official client sees it: ids, objects, idempotency keys and
// errors as Stripe answers them, and webhooks that Stripe's own verification accepts.

let server: StripeServer;
let stripe: Stripe;
const received: { body: string; signature: string }[] = [];
const receiver = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    received.push({ body: Buffer.concat(chunks).toString('utf8'), signature: String(req.headers['stripe-signature']) });
    res.writeHead(200).end('{}');
  });
});

beforeAll(async () => {
  server = await startStripeServer();
  stripe = createStripe({ secretKey: server.secretKey, apiBase: server.url });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  server.setWebhookUrl(`http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`);
});

afterAll(async () => {
  await server?.close();
  receiver.close();
});

const session = (customer: string) => stripe.checkout.sessions.create({
  mode: 'payment', customer, success_url: 'http://localhost/ok', cancel_url: 'http://localhost/no',
  line_items: [{ quantity: 1, price_data: { currency: 'eur', unit_amount: 5000, product_data: { name: 'credits' } } }],
  metadata: { top_up_id: 'tu_1' },
});

describe('the Stripe-shaped server', () => {
  it('answers the same object to the same idempotency key and body, and an idempotency error to another body', async () => {
    const first = await stripe.customers.create({ email: 'a@example.com' }, { idempotencyKey: 'k-customer' });
    expect(first.id).toMatch(/^cus_[A-Za-z0-9]{14}$/);
    const again = await stripe.customers.create({ email: 'a@example.com' }, { idempotencyKey: 'k-customer' });
    expect(again.id).toBe(first.id);
    const other = stripe.customers.create({ email: 'b@example.com' }, { idempotencyKey: 'k-customer' });
    await expect(other).rejects.toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
    await expect(other).rejects.toMatchObject({ type: 'StripeIdempotencyError', statusCode: 400 });
  });

  it("creates Checkout sessions with Stripe's shape and refuses bad requests as Stripe does", async () => {
    const customer = await stripe.customers.create({ email: 'c@example.com' });
    const s = await session(customer.id);
    expect(s).toMatchObject({
      object: 'checkout.session', mode: 'payment', status: 'open', payment_status: 'unpaid', amount_total: 5000, currency: 'eur',
      customer: customer.id, metadata: { top_up_id: 'tu_1' }, payment_intent: null,
    });
    expect(s.id).toMatch(/^cs_test_/);
    expect(s.url).toBe(`${server.url}/c/pay/${s.id}`);
    expect((await stripe.checkout.sessions.retrieve(s.id)).id).toBe(s.id);
    await expect(stripe.checkout.sessions.retrieve('cs_test_nope')).rejects.toMatchObject({ type: 'StripeInvalidRequestError', code: 'resource_missing', statusCode: 404 });
    await expect(stripe.checkout.sessions.create({ mode: 'payment', success_url: 'http://localhost/ok' }))
      .rejects.toMatchObject({ code: 'parameter_missing', param: 'line_items' });
    await expect(createStripe({ secretKey: 'sk_test_wrong', apiBase: server.url }).customers.create({}))
      .rejects.toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
  });

  it('pays a session and signs the webhook so that constructEvent accepts it (and refuses it under another secret)', async () => {
    const customer = await stripe.customers.create({ email: 'd@example.com' });
    const s = await session(customer.id);
    await expect(server.completeCheckout(s.id, { card: CARDS.declined })).rejects.toBeInstanceOf(CardDeclined);
    expect((await stripe.checkout.sessions.retrieve(s.id)).status).toBe('open');
    const delivery = await server.completeCheckout(s.id);
    expect(delivery.status).toBe(200);
    const hook = received.at(-1)!;
    const event = stripe.webhooks.constructEvent(hook.body, hook.signature, server.webhookSecret);
    expect(event).toMatchObject({ id: delivery.event.id, type: 'checkout.session.completed', data: { object: { id: s.id, payment_status: 'paid', status: 'complete' } } });
    expect(() => stripe.webhooks.constructEvent(hook.body, hook.signature, 'whsec_other')).toThrow(Stripe.errors.StripeSignatureVerificationError);
    const intent = await stripe.paymentIntents.retrieve((event.data.object as Stripe.Checkout.Session).payment_intent as string, { expand: ['payment_method'] });
    expect(intent).toMatchObject({ status: 'succeeded', amount: 5000, payment_method: { type: 'card', card: { brand: 'visa', last4: '4242' } } });
  });

  it('declines off-session charges of the cards that decline later or need authentication', async () => {
    const customer = await stripe.customers.create({ email: 'e@example.com' });
    const setup = await stripe.checkout.sessions.create({ mode: 'setup', customer: customer.id, currency: 'usd', success_url: 'http://localhost/ok' });
    await server.completeCheckout(setup.id, { card: CARDS.declinesLater });
    const pm = (await stripe.setupIntents.retrieve(setup.setup_intent as string)).payment_method as string;
    const charge = stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: customer.id, payment_method: pm, off_session: true, confirm: true });
    await expect(charge).rejects.toBeInstanceOf(Stripe.errors.StripeCardError);
    await expect(charge).rejects.toMatchObject({ code: 'card_declined', decline_code: 'generic_decline', statusCode: 402 });

    const setup2 = await stripe.checkout.sessions.create({ mode: 'setup', customer: customer.id, currency: 'usd', success_url: 'http://localhost/ok' });
    await server.completeCheckout(setup2.id, { card: CARDS.needsAuthentication });
    const pm2 = (await stripe.setupIntents.retrieve(setup2.setup_intent as string)).payment_method as string;
    await expect(stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: customer.id, payment_method: pm2, off_session: true, confirm: true }))
      .rejects.toMatchObject({ code: 'authentication_required' });

    const setup3 = await stripe.checkout.sessions.create({ mode: 'setup', customer: customer.id, currency: 'usd', success_url: 'http://localhost/ok' });
    await server.completeCheckout(setup3.id);
    const pm3 = (await stripe.setupIntents.retrieve(setup3.setup_intent as string)).payment_method as string;
    const paid = await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: customer.id, payment_method: pm3, off_session: true, confirm: true });
    expect(paid).toMatchObject({ object: 'payment_intent', status: 'succeeded', amount_received: 1000 });
  });
});
