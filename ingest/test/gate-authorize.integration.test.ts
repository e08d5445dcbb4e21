import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClock } from '@meterstream/platform/clock';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { findHold } from '@meterstream/platform/stores/holds';
import { expireHolds } from '@meterstream/ledger/commands/expire-holds';
import { toMicros, type UsageEvent } from '@meterstream/schemas';
import { RaterConfig, startRater } from '@meterstream/rater';
import { produceEvents, setPrices, waitRaterIdle } from '../../tests/support/fixtures.js';
import { admin, bearer, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// The spend gate end to end on the real stack: POST /v1/authorize against Redis and Postgres, the
// usage event capturing its hold through the real rater, releases, expiry, every refusal, and the
// balance API agreeing with the gate. One test clock drives ingest and the rater.

const clock = new TestClock(Date.now());
const now = () => clock.now();
const PRODUCT = 'gate-call'; // USD 1 per request

let t: TestIngest;
let rater: Awaited<ReturnType<typeof startRater>>;

beforeAll(async () => {
  t = await openIngest('gate-authorize', {}, { now });
  await setPrices(t.stack, { [PRODUCT]: { unit: 'request', unit_price: '1', per: 1, currency: 'USD' } });
  rater = await startRater({
    config: loadConfig(RaterConfig, { ...t.stack.env, RATER_SESSION_TIMEOUT_MS: '6000' }),
    pool: t.stack.pool, cache: t.stack.cache, kafka: t.stack.kafka, log: createLogger('gate-rater', t.config.LOG_LEVEL), now,
  });
}, 120_000);

afterAll(async () => {
  await rater?.stop();
  await t?.close();
});

const inject = () => injector(t.app);

async function account(billing_mode: 'prepaid' | 'postpaid' = 'prepaid', credits?: string) {
  const acct = await createAccount(t.app, { billing_mode });
  if (credits) {
    const res = await inject()('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('g') }, { kind: 'purchased', amount: credits });
    expect(res.statusCode).toBe(201);
  }
  return acct.id;
}

const authorize = (accountId: string, maxQuantity: string, key = uid('k')) =>
  inject()('POST', '/v1/authorize', { ...admin, 'idempotency-key': key }, { account_id: accountId, product: PRODUCT, max_quantity: maxQuantity });

async function hold(accountId: string, maxQuantity: string) {
  const res = await authorize(accountId, maxQuantity);
  expect({ status: res.statusCode, body: res.json() as unknown }).toMatchObject({ status: 200 });
  return res.json<{ hold_id: string; amount: string; expires_at: string }>();
}

async function balance(accountId: string) {
  const res = await inject()('GET', `/v1/accounts/${accountId}/balance`, admin);
  expect(res.statusCode).toBe(200);
  const b = res.json<{ balance: string; held: string; spendable: string }>();
  return { balance: b.balance, held: b.held, spendable: b.spendable };
}

/** What the gate itself counts as held (Redis). */
const gateHeld = async (accountId: string) => (await t.stack.cache.gate.heldAt(accountId, now())).toString();

/** Usage events (USD 1 per unit) naming holds, rated before it returns. */
async function use(accountId: string, calls: { quantity: string; holdId?: string }[]) {
  const events: UsageEvent[] = calls.map((c) => ({
    id: uid('e'), account_id: accountId, product: PRODUCT, quantity: toMicros(c.quantity), timestamp: new Date(now()).toISOString(),
    ...(c.holdId ? { hold_id: c.holdId } : {}),
  }));
  await produceEvents(t.stack, events);
  await waitRaterIdle(t.stack);
}

const setAccount = async (accountId: string, sql: string, params: unknown[] = []) => {
  await t.stack.pool.query(`UPDATE accounts SET ${sql} WHERE id = $1`, [accountId, ...params]);
  await t.stack.cache.gate.forgetConfig(accountId);
};

describe('POST /v1/authorize', () => {
  it('holds the price, captures at most the hold, and the balance API agrees with the gate', async () => {
    const id = await account('prepaid', '10');
    const h = await hold(id, '3');
    expect(h.amount).toBe('3.000000');
    expect(await balance(id)).toEqual({ balance: '10.000000', held: '3.000000', spendable: '7.000000' });

    const small = await hold(id, '2');
    await use(id, [{ quantity: '5', holdId: h.hold_id }, { quantity: '1.5', holdId: small.hold_id }]);
    // 5 units against a hold of 3: charged 3; 1.5 against 2: charged 1.5; both holds closed.
    expect(await balance(id)).toEqual({ balance: '5.500000', held: '0.000000', spendable: '5.500000' });
    expect(await gateHeld(id)).toBe('0');
    expect((await findHold(t.stack.pool, h.hold_id))).toMatchObject({ status: 'captured', capturedAmount: toMicros('3'), lateCapture: false });
    const rated = await t.stack.pool.query<{ amount: bigint; hold_id: string }>('SELECT amount, hold_id FROM usage_ledger WHERE account_id = $1 ORDER BY seq', [id]);
    expect(rated.rows.map((r) => [r.hold_id, r.amount])).toEqual([[h.hold_id, toMicros('3')], [small.hold_id, toMicros('1.5')]]);
  });

  it('refuses with 402 PAYMENT_REQUIRED exactly, and a refusal is terminal for its key', async () => {
    const id = await account('prepaid', '1');
    const key = uid('k');
    const first = await authorize(id, '2', key);
    expect(first.statusCode).toBe(402);
    expect(first.body).toBe('{"error":{"code":"PAYMENT_REQUIRED","message":"insufficient credits"}}');
    await inject()('POST', `/v1/accounts/${id}/grants`, { ...admin, 'idempotency-key': uid('g') }, { kind: 'purchased', amount: '10' });
    const again = await authorize(id, '2', key);
    expect({ status: again.statusCode, body: again.body, replayed: again.headers['idempotent-replayed'] })
      .toEqual({ status: 402, body: first.body, replayed: 'true' });
    expect((await authorize(id, '2')).statusCode).toBe(200);
    expect((await authorize(id, '3', key)).json()).toMatchObject({ error: { code: 'IDEMPOTENCY_KEY_REUSED' } });
  });

  it('answers a retried hold with the same hold, held once', async () => {
    const id = await account('prepaid', '10');
    const key = uid('k');
    const first = await authorize(id, '4', key);
    const again = await authorize(id, '4', key);
    expect(again.json()).toEqual(first.json());
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(await balance(id)).toMatchObject({ held: '4.000000', spendable: '6.000000' });
    expect(await gateHeld(id)).toBe('4000000');
  });

  it('a released hold costs zero and frees its amount; releasing again answers it as it stands', async () => {
    const id = await account('prepaid', '5');
    const h = await hold(id, '5');
    expect((await authorize(id, '1')).statusCode).toBe(402);
    const released = await inject()('POST', `/v1/holds/${h.hold_id}/release`, admin);
    expect(released.json()).toMatchObject({ hold_id: h.hold_id, status: 'released', captured: null });
    expect((await inject()('POST', `/v1/holds/${h.hold_id}/release`, admin)).json()).toMatchObject({ status: 'released' });
    expect(await balance(id)).toEqual({ balance: '5.000000', held: '0.000000', spendable: '5.000000' });
    expect((await authorize(id, '5')).statusCode).toBe(200);
    expect((await inject()('POST', '/v1/holds/hold_000000000000000000000000/release', admin)).statusCode).toBe(404);
  });

  it("an account's key cannot release another account's hold: 403, and the hold stays open and held", async () => {
    const { id: owner, api_key: ownerKey } = await createAccount(t.app, { billing_mode: 'prepaid' });
    const grant = await inject()('POST', `/v1/accounts/${owner}/grants`, { ...admin, 'idempotency-key': uid('g') }, { kind: 'purchased', amount: '5' });
    expect(grant.statusCode).toBe(201);
    const other = await createAccount(t.app, { billing_mode: 'prepaid' });
    const h = await hold(owner, '3');
    const refused = await inject()('POST', `/v1/holds/${h.hold_id}/release`, bearer(other.api_key));
    expect({ status: refused.statusCode, code: refused.json<{ error: { code: string } }>().error.code }).toEqual({ status: 403, code: 'FORBIDDEN' });
    expect((await findHold(t.stack.pool, h.hold_id))?.status).toBe('open');
    expect(await balance(owner)).toMatchObject({ held: '3.000000', spendable: '2.000000' });
    expect(await gateHeld(owner)).toBe('3000000');
    const own = await inject()('POST', `/v1/holds/${h.hold_id}/release`, bearer(ownerKey));
    expect(own.json()).toMatchObject({ hold_id: h.hold_id, status: 'released' });
    expect(await gateHeld(owner)).toBe('0');
  });

  it('an expired hold frees its spend; a capture after expiry is charged, capped, and counted late', async () => {
    const id = await account('prepaid', '5');
    const h = await hold(id, '4');
    expect((await authorize(id, '2')).statusCode).toBe(402);
    clock.advance(15 * 60_000 + 1);
    expect(await balance(id)).toMatchObject({ held: '0.000000', spendable: '5.000000' });
    const after = await hold(id, '2');
    expect(await expireHolds({ pool: t.stack.pool, gate: t.stack.cache.gate, log: createLogger('gate-test', 'silent') }, { now: now(), accounts: [id] })).toBe(1);
    expect(await findHold(t.stack.pool, h.hold_id)).toMatchObject({ status: 'expired' });
    await use(id, [{ quantity: '9', holdId: h.hold_id }, { quantity: '1', holdId: after.hold_id }]);
    expect(await findHold(t.stack.pool, h.hold_id)).toMatchObject({ status: 'captured', capturedAmount: toMicros('4'), lateCapture: true });
    expect(await balance(id)).toEqual({ balance: '0.000000', held: '0.000000', spendable: '0.000000' });
    expect(await gateHeld(id)).toBe('0');
  });

  it('postpaid: free credits first, then CARD_REQUIRED without a payment method, then MONTHLY_LIMIT_REACHED', async () => {
    const id = await account('postpaid', '2');
    await hold(id, '2');
    const card = await authorize(id, '1');
    expect({ status: card.statusCode, code: card.json<{ error: { code: string } }>().error.code }).toEqual({ status: 402, code: 'CARD_REQUIRED' });
    await setAccount(id, "payment_method = 'pm_test', monthly_limit = $2", [toMicros('100')]);
    await hold(id, '100');
    const limit = await authorize(id, '1');
    expect(limit.statusCode).toBe(402);
    expect(limit.json<{ error: { code: string; message: string } }>().error).toMatchObject({ code: 'MONTHLY_LIMIT_REACHED', message: expect.stringContaining('limit increase') });
  });

  it('refuses a suspended account (403) and one at its allowed limit (402)', async () => {
    const suspended = await account('prepaid', '10');
    await setAccount(suspended, 'suspended_at = now()');
    expect((await authorize(suspended, '1')).json()).toMatchObject({ error: { code: 'ACCOUNT_SUSPENDED' } });
    expect((await authorize(suspended, '1')).statusCode).toBe(403);

    const capped = await account('prepaid', '100');
    await setAccount(capped, 'allowed_limit = $2', [toMicros('10')]);
    const h = await hold(capped, '6');
    await use(capped, [{ quantity: '6', holdId: h.hold_id }]);
    await hold(capped, '3');
    const over = await authorize(capped, '1.000001');
    expect({ status: over.statusCode, code: over.json<{ error: { code: string } }>().error.code }).toEqual({ status: 402, code: 'ALLOWED_LIMIT_REACHED' });
    expect((await authorize(capped, '1')).statusCode).toBe(200);
  });

  it('N concurrent authorizations against a balance covering K: exactly K succeed, with holds and usage interleaved', async () => {
    const id = await account('prepaid', '300');
    const burst = async (n: number) => {
      const answers = await Promise.all(Array.from({ length: n }, () => authorize(id, '1')));
      const held = answers.filter((r) => r.statusCode === 200).map((r) => r.json<{ hold_id: string }>().hold_id);
      expect(answers.filter((r) => r.statusCode !== 200).map((r) => r.statusCode)).toEqual(Array(n - held.length).fill(402));
      return held;
    };
    const first = await burst(1000);
    expect(first).toHaveLength(300);
    // 100 captured at half their hold, 100 released, 100 left open, while another burst runs.
    const releases = first.slice(100, 200).map((h) => inject()('POST', `/v1/holds/${h}/release`, admin));
    const [, second] = await Promise.all([
      use(id, first.slice(0, 100).map((h) => ({ quantity: '0.5', holdId: h }))),
      burst(100),
      ...releases,
    ]);
    // Whatever the interleaving, after quiescence: 300 - 50 charged, 100 still held, and the second burst's holds.
    expect(await balance(id)).toMatchObject({ balance: '250.000000', spendable: `${150 - second.length}.000000` });
    const third = await burst(1000);
    expect(third).toHaveLength(150 - second.length);
    const held = 100 + second.length + third.length;
    expect(await balance(id)).toEqual({ balance: '250.000000', held: `${held}.000000`, spendable: '0.000000' });
    expect(await gateHeld(id)).toBe(String(held * 1_000_000));
  });
});
