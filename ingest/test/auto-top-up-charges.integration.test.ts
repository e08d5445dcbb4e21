import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { createStripe } from '@meterstream/platform/stripe';
import { chargeAutoTopUps, MAX_CONSECUTIVE_FAILURES, type ChargeDeps } from '@meterstream/ledger/commands/charge-auto-top-up';
import { RaterConfig, startRater } from '@meterstream/rater';
import { produceEvents, setPrices, usageEvent, waitRaterIdle } from '../../tests/support/fixtures.js';
import { waitFor } from '../../tests/support/processes.js';
import { CARDS, startStripeServer, type StripeServer } from '../../tests/support/stripe-server.js';
import { admin, bearer, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// Automatic top-ups (seed 003) end to end: usage rated by the real rater and calls refused by the
// gate trigger them; the charger (the scheduler's job, run here for this file's accounts, as
// several schedulers would) creates the off-session PaymentIntents on the Stripe-shaped server,
// whose signed webhooks reach the ingest over HTTP and grant the credits.

const PRODUCT = 'auto-top-up-call'; // USD 1 per request
const ACTION_URL = 'https://billing.meterstream.test/authenticate?payment_intent={PAYMENT_INTENT}';

let stripe: StripeServer;
let t: TestIngest;
let rater: Awaited<ReturnType<typeof startRater>>;
let charger: ChargeDeps;

beforeAll(async () => {
  stripe = await startStripeServer();
  t = await openIngest('auto-top-up-charges', { ...stripe.env });
  await t.app.listen({ host: '127.0.0.1', port: 0 });
  stripe.setWebhookUrl(`http://127.0.0.1:${(t.app.server.address() as AddressInfo).port}/v1/stripe/webhook`);
  await setPrices(t.stack, { [PRODUCT]: { unit: 'request', unit_price: '1', per: 1, currency: 'USD' } });
  const log = createLogger('auto-top-up-charges', t.config.LOG_LEVEL);
  rater = await startRater({
    config: loadConfig(RaterConfig, { ...t.stack.env, RATER_SESSION_TIMEOUT_MS: '6000' }),
    pool: t.stack.pool, cache: t.stack.cache, kafka: t.stack.kafka, log,
  });
  charger = { order: t.stack.ledger, stripe: createStripe({ secretKey: stripe.secretKey, apiBase: stripe.url }), log, actionUrl: ACTION_URL };
}, 120_000);

afterAll(async () => {
  await rater?.stop();
  await t?.close();
  await stripe?.close();
});

const inject = () => injector(t.app);
type Account = { id: string; api_key: string };

/** An account with `credits`, a saved card and automatic top-ups set as given. */
async function account(card: string, credits: string | null, settings: Record<string, unknown>): Promise<Account> {
  const acct = await createAccount(t.app);
  if (credits) {
    const res = await inject()('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('g') }, { kind: 'purchased', amount: credits });
    expect(res.statusCode).toBe(201);
  }
  const setup = await inject()('POST', `/v1/accounts/${acct.id}/payment-methods/setup`, bearer(acct.api_key));
  expect(setup.statusCode, setup.body).toBe(201);
  const saved = await stripe.completeCheckout(new URL(setup.json<{ checkout_url: string }>().checkout_url).pathname.split('/').at(-1)!, { card });
  expect(saved.status, saved.body ?? '').toBe(200);
  const put = await inject()('PUT', `/v1/accounts/${acct.id}/auto-top-up`, bearer(acct.api_key), settings);
  expect(put.statusCode, put.body).toBe(200);
  return acct;
}

const authorize = (accountId: string) =>
  inject()('POST', '/v1/authorize', { ...admin, 'idempotency-key': uid('k') }, { account_id: accountId, product: PRODUCT, max_quantity: '1' });

async function settings(acct: Account) {
  const res = await inject()('GET', `/v1/accounts/${acct.id}/auto-top-up`, bearer(acct.api_key));
  expect(res.statusCode).toBe(200);
  return res.json<{ enabled: boolean; today: { count: number; amount: string }; consecutive_failures: number; disabled_reason: string | null; in_flight: string | null }>();
}

async function balance(acct: Account) {
  const res = await inject()('GET', `/v1/accounts/${acct.id}/balance`, bearer(acct.api_key));
  expect(res.statusCode).toBe(200);
  return res.json<{ balance: string; pending_top_ups: { id: string; amount: string; checkout_url: string | null }[] }>();
}

interface AutoTopUpRow { id: string; state: string; trigger: string; payment_intent_id: string | null; failure_code: string | null; created_at: Date; settled_at: Date | null }
const autoTopUps = async (accountId: string) => (await t.stack.pool.query<AutoTopUpRow>(
  `SELECT id, state, trigger, payment_intent_id, failure_code, created_at, settled_at FROM top_ups WHERE account_id = $1 AND source = 'auto' ORDER BY created_at, id`,
  [accountId])).rows;

/** The PaymentIntents Stripe holds for the account. */
const intentsOf = (accountId: string) => [...stripe.objects.values()].filter((o) => o.object === 'payment_intent' && (o.metadata as Record<string, string>).account_id === accountId);

async function notifications(acct: Account, type: string) {
  const res = await inject()('GET', `/v1/accounts/${acct.id}/notifications`, admin);
  expect(res.statusCode).toBe(200);
  return res.json<{ notifications: { type: string; payload: { data: Record<string, unknown> } }[] }>().notifications
    .filter((n) => n.type === type).map((n) => n.payload.data).reverse();
}

/** Several chargers at once, as several schedulers woken by one trigger would run. */
const chargeConcurrently = (accountIds: string[], n = 4) => Promise.all(Array.from({ length: n }, () => chargeAutoTopUps(charger, { accountIds })));

const paid = (accountId: string, count: number) =>
  waitFor(`${count} automatic top-ups paid`, async () => (await autoTopUps(accountId)).filter((r) => r.state === 'paid').length === count);

describe('automatic top-ups', () => {
  it('a burst of usage and gate calls starts one top-up per trigger, none while one is in flight, within the daily cap; credits once', async () => {
    // Three accounts, so that their batches are rated concurrently (one partition each).
    const accounts: Account[] = [];
    for (let i = 0; i < 3; i++) accounts.push(await account(CARDS.visa, '5', { enabled: true, amount: '10', daily_max_count: 2 }));
    const ids = accounts.map((a) => a.id);

    // The burst: 30 calls of USD 1 per account in 10 produces at once, and gate calls racing them. Nothing is charged yet.
    await Promise.all([
      ...Array.from({ length: 10 }, () => produceEvents(t.stack, ids.flatMap((id) => [0, 1, 2].map(() => usageEvent(id, PRODUCT, '1', uid('e')))))),
      ...ids.flatMap((id) => Array.from({ length: 12 }, () => authorize(id))),
    ]);
    await waitRaterIdle(t.stack);
    for (const a of accounts) {
      // The balance crossed zero in one batch and the gate refused many calls: one top-up, in flight, shown as pending.
      const rows = await waitFor('the trigger', async () => {
        const r = await autoTopUps(a.id);
        return r.length > 0 && r;
      });
      expect(rows).toEqual([expect.objectContaining({ state: 'pending', payment_intent_id: null })]);
      expect((await balance(a)).pending_top_ups).toEqual([{ id: rows[0]!.id, amount: '10.000000', created_at: expect.any(String), checkout_url: null }]);
      // While it is in flight, more refusals start nothing.
      expect((await authorize(a.id)).statusCode).toBe(402);
    }

    await chargeConcurrently(ids);
    for (const a of accounts) await paid(a.id, 1);
    for (const a of accounts) {
      expect(intentsOf(a.id)).toHaveLength(1);
      expect((await balance(a)).balance).toBe('-15.000000'); // 5 - 30 + 10
    }

    // Still under zero: the next refusal is a new trigger (the grant moved the ledger seq), charged once.
    for (const a of accounts) await Promise.all(Array.from({ length: 8 }, () => authorize(a.id)));
    for (const a of accounts) await waitFor('the second trigger', async () => (await autoTopUps(a.id)).length === 2);
    await chargeConcurrently(ids);
    for (const a of accounts) await paid(a.id, 2);

    // The daily cap (2): refusals and usage start no third.
    for (const a of accounts) await Promise.all(Array.from({ length: 8 }, () => authorize(a.id)));
    await produceEvents(t.stack, ids.map((id) => usageEvent(id, PRODUCT, '1', uid('e'))));
    await waitRaterIdle(t.stack);
    await chargeConcurrently(ids);

    for (const a of accounts) {
      const rows = await autoTopUps(a.id);
      expect(rows.map((r) => r.state)).toEqual(['paid', 'paid']);
      // One PaymentIntent per trigger, the second started only after the first was settled.
      const intents = intentsOf(a.id);
      expect(intents.map((i) => i.id).sort()).toEqual(rows.map((r) => r.payment_intent_id).sort());
      expect(new Set(rows.map((r) => r.trigger)).size).toBe(2);
      expect(rows[1]!.created_at.getTime()).toBeGreaterThanOrEqual(rows[0]!.settled_at!.getTime());
      expect(await settings(a)).toMatchObject({ enabled: true, today: { count: 2, amount: '20.000000' }, consecutive_failures: 0, in_flight: null });
      const b = await balance(a);
      expect({ balance: b.balance, pending: b.pending_top_ups }).toEqual({ balance: '-6.000000', pending: [] }); // 5 - 31 + 20
      const payments = (await inject()('GET', `/v1/accounts/${a.id}/payments`, bearer(a.api_key))).json<{ payments: { top_up_id: string; amount: string; method: string }[] }>().payments;
      expect(payments.map((p) => [p.top_up_id, p.amount, p.method]).sort()).toEqual(rows.map((r) => [r.id, '10.000000', 'visa •••• 4242']).sort());
    }

    // payment_intent.succeeded delivered three times more: no more credits.
    const a = accounts[0]!;
    const succeeded = stripe.events.find((e) => e.type === 'payment_intent.succeeded' && (e.data.object as { id: string }).id === intentsOf(a.id)[0]!.id)!;
    for (let i = 0; i < 3; i++) {
      const d = await stripe.deliver(succeeded);
      expect(JSON.parse(d.body!)).toEqual({ received: true, outcome: 'duplicate' });
    }
    expect((await balance(a)).balance).toBe('-6.000000');
  }, 180_000);

  it('a set threshold: the rater alone starts it when a batch takes the balance to it', async () => {
    const acct = await account(CARDS.mastercard, '5', { enabled: true, amount: '20', threshold: '3' });
    await produceEvents(t.stack, [usageEvent(acct.id, PRODUCT, '1', uid('e'))]);
    await waitRaterIdle(t.stack);
    expect(await autoTopUps(acct.id)).toEqual([]); // 4 is above 3
    await produceEvents(t.stack, [usageEvent(acct.id, PRODUCT, '1', uid('e'))]);
    await waitRaterIdle(t.stack);
    const [row] = await autoTopUps(acct.id);
    expect(row).toMatchObject({ state: 'pending', trigger: expect.stringMatching(/^rater:\d+$/) });
    // Lower still, in later batches: no new trigger while it is in flight.
    await produceEvents(t.stack, [usageEvent(acct.id, PRODUCT, '1', uid('e'))]);
    await waitRaterIdle(t.stack);
    expect(await chargeAutoTopUps(charger, { accountIds: [acct.id] })).toMatchObject({ charged: 1 });
    await paid(acct.id, 1);
    expect((await balance(acct)).balance).toBe('22.000000');
    expect(await autoTopUps(acct.id)).toHaveLength(1);
  }, 120_000);

  it(`a declined card fails with a notification each time and turns automatic top-ups off after ${MAX_CONSECUTIVE_FAILURES}`, async () => {
    const acct = await account(CARDS.declinesLater, null, { enabled: true, amount: '10', daily_max_count: 10 });
    for (let n = 1; n <= MAX_CONSECUTIVE_FAILURES; n++) {
      expect((await authorize(acct.id)).statusCode).toBe(402);
      await waitFor(`trigger ${n}`, async () => (await autoTopUps(acct.id)).length === n);
      expect(await chargeConcurrently([acct.id], 2)).toEqual(expect.arrayContaining([expect.objectContaining({ failed: 1 })]));
      const rows = await autoTopUps(acct.id);
      expect(rows.at(-1)).toMatchObject({ state: 'failed', failure_code: 'generic_decline', payment_intent_id: expect.stringMatching(/^pi_/) });
    }
    const failed = await waitFor('the notifications', async () => {
      const f = await notifications(acct, 'auto_top_up.failed');
      return f.length === MAX_CONSECUTIVE_FAILURES && f;
    });
    expect(failed.map((d) => [d.consecutive_failures, d.disabled, d.code])).toEqual([[1, false, 'generic_decline'], [2, false, 'generic_decline'], [3, true, 'generic_decline']]);
    expect(await settings(acct)).toMatchObject({ enabled: false, consecutive_failures: 3, disabled_reason: expect.any(String), in_flight: null });

    // Off: refusals start nothing more; the history has an entry per failure and no credits.
    expect((await authorize(acct.id)).statusCode).toBe(402);
    expect((await authorize(acct.id)).statusCode).toBe(402);
    expect(await chargeAutoTopUps(charger, { accountIds: [acct.id] })).toMatchObject({ charged: 0, failed: 0 });
    expect(await autoTopUps(acct.id)).toHaveLength(3);
    const history = (await inject()('GET', `/v1/accounts/${acct.id}/transactions`, bearer(acct.api_key))).json<{ transactions: { kind: string; amount: string }[] }>().transactions;
    expect(history.filter((h) => h.kind === 'payment').map((h) => h.amount)).toEqual(['0.000000', '0.000000', '0.000000']);
    expect((await balance(acct)).balance).toBe('0.000000');

    // Turning it on again clears the failures.
    const on = await inject()('PUT', `/v1/accounts/${acct.id}/auto-top-up`, bearer(acct.api_key), { enabled: true });
    expect(on.json()).toMatchObject({ enabled: true, consecutive_failures: 0, disabled_reason: null });
  }, 120_000);

  it('a card that needs authentication leaves a notification with a link, pending, and is not retried', async () => {
    const acct = await account(CARDS.needsAuthentication, null, { enabled: true, amount: '25' });
    expect((await authorize(acct.id)).statusCode).toBe(402);
    await waitFor('the trigger', async () => (await autoTopUps(acct.id)).length === 1);
    expect(await chargeAutoTopUps(charger, { accountIds: [acct.id] })).toMatchObject({ actionRequired: 1 });
    const [row] = await autoTopUps(acct.id);
    expect(row).toMatchObject({ state: 'pending', failure_code: 'authentication_required', payment_intent_id: expect.stringMatching(/^pi_/) });
    const link = ACTION_URL.replace('{PAYMENT_INTENT}', row!.payment_intent_id!);

    const told = await waitFor('the notification', async () => {
      const n = await notifications(acct, 'auto_top_up.action_required');
      return n.length > 0 && n;
    });
    expect(told).toEqual([{ account_id: acct.id, top_up_id: row!.id, amount: '25.000000', currency: 'USD', action_url: link }]);
    expect((await balance(acct)).pending_top_ups).toEqual([{ id: row!.id, amount: '25.000000', created_at: expect.any(String), checkout_url: link }]);

    // No retry: more refusals and charger runs create no PaymentIntent; the payment_failed webhook changed nothing.
    const requests = stripe.requests.filter((r) => r.path === '/v1/payment_intents').length;
    for (let i = 0; i < 3; i++) expect((await authorize(acct.id)).statusCode).toBe(402);
    await chargeConcurrently([acct.id], 3);
    expect(stripe.requests.filter((r) => r.path === '/v1/payment_intents').length).toBe(requests);
    expect(intentsOf(acct.id)).toHaveLength(1);
    expect(await autoTopUps(acct.id)).toEqual([expect.objectContaining({ id: row!.id, state: 'pending' })]);
    expect(await notifications(acct, 'auto_top_up.action_required')).toHaveLength(1);
    expect(await settings(acct)).toMatchObject({ enabled: true, consecutive_failures: 1, in_flight: row!.id });

    // Never authenticated: past its time (a day; here at once) the charge is canceled and fails, counted once.
    expect(await chargeAutoTopUps(charger, { accountIds: [acct.id], actionTtlMs: 0 })).toMatchObject({ expired: 1 });
    expect(stripe.objects.get(row!.payment_intent_id!)).toMatchObject({ status: 'canceled' });
    expect(await autoTopUps(acct.id)).toEqual([expect.objectContaining({ id: row!.id, state: 'failed', failure_code: 'authentication_expired' })]);
    expect((await notifications(acct, 'auto_top_up.failed')).map((d) => [d.code, d.consecutive_failures, d.disabled])).toEqual([['authentication_expired', 1, false]]);
    expect((await balance(acct)).pending_top_ups).toEqual([]);
    // Then automatic top-ups start again.
    expect((await authorize(acct.id)).statusCode).toBe(402);
    await waitFor('a new trigger', async () => (await autoTopUps(acct.id)).length === 2);
  }, 120_000);
});
