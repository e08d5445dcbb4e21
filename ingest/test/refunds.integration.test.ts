import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { RaterConfig, startRater } from '@meterstream/rater';
import { produceEvents, setPrices, usageEvent, waitRaterIdle } from '../../tests/support/fixtures.js';
import { startStripeServer, type StripeServer } from '../../tests/support/stripe-server.js';
import { admin, bearer, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// An admin refund of a top-up (issue 11): the unspent part of its credits is taken back and
// refunded on Stripe once; what was spent is kept and recorded.

const PRODUCT = 'refund-call'; // USD 1 per request

let stripe: StripeServer;
let t: TestIngest;
let rater: Awaited<ReturnType<typeof startRater>>;

beforeAll(async () => {
  stripe = await startStripeServer();
  t = await openIngest('refunds', { ...stripe.env });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  stripe.setWebhookUrl(`http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/v1/stripe/webhook`);
  await setPrices(t.stack, { [PRODUCT]: { unit: 'request', unit_price: '1', per: 1, currency: 'USD' } });
  rater = await startRater({
    config: loadConfig(RaterConfig, { ...t.stack.env, RATER_SESSION_TIMEOUT_MS: '6000' }),
    pool: t.stack.pool, cache: t.stack.cache, kafka: t.stack.kafka, log: createLogger('refunds', t.config.LOG_LEVEL),
  });
}, 120_000);

afterAll(async () => {
  await rater?.stop();
  await t?.close();
  await stripe?.close();
});

const inject = () => injector(t.app);

describe('refunds', () => {
  it('a partly spent top-up: only the unspent credits are reversed and refunded, once; the spent part is recorded', async () => {
    const acct = await createAccount(t.app);
    const started = await inject()('POST', `/v1/accounts/${acct.id}/top-ups`, { ...bearer(acct.api_key), 'idempotency-key': uid('topup') }, { amount: '50' });
    expect(started.statusCode, started.body).toBe(201);
    const sessionId = new URL(started.json<{ checkout_url: string }>().checkout_url).pathname.split('/').at(-1)!;
    expect((await stripe.completeCheckout(sessionId)).status).toBe(200);
    const [payment] = (await inject()('GET', `/v1/accounts/${acct.id}/payments`, bearer(acct.api_key))).json<{ payments: { id: string }[] }>().payments;

    // 20 of the 50 spent.
    await produceEvents(t.stack, Array.from({ length: 20 }, () => usageEvent(acct.id, PRODUCT, '1', uid('e'))));
    await waitRaterIdle(t.stack);

    const url = `/v1/accounts/${acct.id}/payments/${payment!.id}/refund`;
    // Admin only: the account's own key may not.
    expect((await inject()('POST', url, bearer(acct.api_key), {})).statusCode).toBe(403);
    const res = await inject()('POST', url, admin, { reason: 'customer asked' });
    expect(res.statusCode, res.body).toBe(201);
    const refund = res.json<Record<string, unknown>>();
    expect(refund).toMatchObject({
      payment_id: payment!.id, account_id: acct.id, currency: 'USD', amount_refunded: '30.000000', credits_reversed: '30.000000',
      credits_kept: '20.000000', state: 'succeeded', stripe_refund_id: expect.stringMatching(/^re_/),
    });

    // Again (a retry, a second click): the same refund, nothing more moves, one Stripe refund.
    const again = await inject()('POST', url, admin, {});
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual(refund);
    const refunds = [...stripe.objects.values()].filter((o) => o.object === 'refund' && (o.metadata as Record<string, string>).payment_id === payment!.id);
    expect(refunds).toEqual([expect.objectContaining({ id: refund.stripe_refund_id, amount: 3000, currency: 'usd' })]);

    const balance = (await inject()('GET', `/v1/accounts/${acct.id}/balance`, bearer(acct.api_key))).json<{ balance: string }>();
    expect(balance.balance).toBe('0.000000');
    // The payments list shows the refund beside the payment.
    const listed = (await inject()('GET', `/v1/accounts/${acct.id}/payments`, bearer(acct.api_key))).json<{ payments: Record<string, unknown>[] }>().payments;
    expect(listed).toEqual([expect.objectContaining({
      id: payment!.id, amount: '50.000000', credits_granted: '50.000000',
      refund: { id: refund.id, amount: '30.000000', state: 'succeeded', date: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/) },
    })]);
    const history = (await inject()('GET', `/v1/accounts/${acct.id}/transactions`, bearer(acct.api_key)))
      .json<{ transactions: { kind: string; amount: string; direction: string; reason: string | null }[] }>().transactions;
    expect(history.filter((h) => h.kind === 'refund')).toEqual([
      expect.objectContaining({ amount: '30.000000', direction: 'debit', balance_after: '0.000000', reason: expect.stringContaining('20.000000 USD already spent kept (customer asked)') }),
    ]);
    const told = (await inject()('GET', `/v1/accounts/${acct.id}/notifications`, admin))
      .json<{ notifications: { type: string; payload: { data: unknown } }[] }>().notifications.filter((n) => n.type === 'payment.refunded');
    expect(told.map((n) => n.payload.data)).toEqual([{
      account_id: acct.id, payment_id: payment!.id, refund_id: refund.id, currency: 'USD', amount_refunded: '30.000000',
      credits_reversed: '30.000000', credits_kept: '20.000000', balance_after: '0.000000',
    }]);
  }, 120_000);

  it('a fully spent top-up refunds nothing and takes the balance nowhere below zero', async () => {
    const acct = await createAccount(t.app);
    const started = await inject()('POST', `/v1/accounts/${acct.id}/top-ups`, { ...bearer(acct.api_key), 'idempotency-key': uid('topup') }, { amount: '10' });
    const sessionId = new URL(started.json<{ checkout_url: string }>().checkout_url).pathname.split('/').at(-1)!;
    expect((await stripe.completeCheckout(sessionId)).status).toBe(200);
    const [payment] = (await inject()('GET', `/v1/accounts/${acct.id}/payments`, bearer(acct.api_key))).json<{ payments: { id: string }[] }>().payments;
    await produceEvents(t.stack, Array.from({ length: 12 }, () => usageEvent(acct.id, PRODUCT, '1', uid('e'))));
    await waitRaterIdle(t.stack);

    const res = await inject()('POST', `/v1/accounts/${acct.id}/payments/${payment!.id}/refund`, admin);
    expect(res.statusCode, res.body).toBe(201);
    expect(res.json()).toMatchObject({ amount_refunded: '0.000000', credits_reversed: '0.000000', credits_kept: '10.000000', state: 'succeeded', stripe_refund_id: null });
    expect([...stripe.objects.values()].filter((o) => o.object === 'refund' && (o.metadata as Record<string, string>).payment_id === payment!.id)).toEqual([]);
    const balance = (await inject()('GET', `/v1/accounts/${acct.id}/balance`, bearer(acct.api_key))).json<{ balance: string }>();
    expect(balance.balance).toBe('-2.000000');
  }, 120_000);
});
