import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setPrices, waitRaterIdle } from '../../tests/support/fixtures.js';
import { startInProcessRater, type InProcessRater } from '../../rater/test/in-process-rater.js';
import {
  AccountSuspendedError, CardRequiredError, CreditsClient, CreditsRefusedError, GateUnavailableError, MonthlyLimitReachedError,
  PaymentRequiredError, type Hold,
} from '../src/credits-client.js';
import { admin, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// withCredits against a real listening ingest and a real rater: the hold, the capture through
// POST /v1/events, the release, and the refusals as typed errors. Voice is 0.60 per 60 seconds
// (the bench's price list): a hold for 60 seconds is 0.60.

let t: TestIngest;
let rater: InProcessRater;
let baseUrl: string;

beforeAll(async () => {
  t = await openIngest('credits-client');
  await setPrices(t.stack);
  baseUrl = await t.app.listen({ host: '127.0.0.1', port: 0 });
  rater = await startInProcessRater(t.stack);
});

afterAll(async () => {
  await rater?.stop();
  await t?.close();
});

/** A prepaid account holding `credits`, and a client with its key. */
async function funded(credits: string) {
  const acct = await createAccount(t.app);
  const res = await injector(t.app)('POST', `/v1/accounts/${acct.id}/grants`, { ...admin, 'idempotency-key': uid('fund') }, { kind: 'purchased', amount: credits });
  expect(res.statusCode).toBe(201);
  return { id: acct.id, client: new CreditsClient({ baseUrl, apiKey: acct.api_key }) };
}

async function balance(accountId: string): Promise<string> {
  await waitRaterIdle(t.stack);
  return (await injector(t.app)('GET', `/v1/accounts/${accountId}/balance`, admin)).json<{ balance: string }>().balance;
}

async function charged(accountId: string, eventId: string): Promise<bigint | undefined> {
  await waitRaterIdle(t.stack);
  const r = await t.stack.pool.query<{ amount: bigint }>('SELECT amount FROM usage_ledger WHERE account_id = $1 AND event_id = $2', [accountId, eventId]);
  return r.rows[0]?.amount;
}

describe('CreditsClient.withCredits', () => {
  it('runs the work with a hold for the price of maxQuantity and charges min(price of what it used, hold)', async () => {
    const { id, client } = await funded('10');
    let seen: Hold | undefined;
    const under = await client.withCredits({ account: id, product: 'voice', maxQuantity: '60' }, async (hold) => {
      seen = hold;
      return { quantity: '30', result: 'transcript' };
    });
    expect(seen).toMatchObject({ account_id: id, amount: '0.600000', currency: 'USD' });
    expect(under).toEqual({ hold: seen, eventId: `capture:${seen!.hold_id}`, quantity: '30', result: 'transcript' });
    expect(await charged(id, under.eventId)).toBe(300_000n);

    // Used more than authorized: charged the hold, never more.
    const over = await client.withCredits({ account: id, product: 'voice', maxQuantity: 60_000_000n }, async () => 90_000_000n);
    expect(over.quantity).toBe('90.000000');
    expect(await charged(id, over.eventId)).toBe(600_000n);
    expect(await balance(id)).toBe('9.100000');
  });

  it('releases the hold when the work throws, rethrows its error, and the call costs nothing', async () => {
    const { id, client } = await funded('1');
    const failure = new Error('the model timed out');
    let hold: Hold | undefined;
    await expect(client.withCredits({ account: id, product: 'voice', maxQuantity: '100' }, async (h) => {
      hold = h;
      throw failure;
    })).rejects.toBe(failure);
    expect(hold!.amount).toBe('1.000000');
    expect(await charged(id, `capture:${hold!.hold_id}`)).toBeUndefined();
    expect(await balance(id)).toBe('1.000000');
    // The released hold reserves nothing: the whole balance can be held again.
    const whole = await client.authorize({ account: id, product: 'voice', maxQuantity: '100' });
    expect(whole.amount).toBe('1.000000');
    await client.release(whole.hold_id);
  });

  it('surfaces 402 as PaymentRequiredError before the work runs', async () => {
    const { id, client } = await funded('0.1');
    let ran = false;
    const refused = await client.withCredits({ account: id, product: 'voice', maxQuantity: '60' }, async () => {
      ran = true;
      return '60';
    }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(PaymentRequiredError);
    expect(refused).toMatchObject({ status: 402, code: 'PAYMENT_REQUIRED', message: 'insufficient credits' });
    expect(ran).toBe(false);
    expect(await balance(id)).toBe('0.100000');
  });

  it('types the other refusals by their code: monthly limit, card required, suspended', async () => {
    const refusal = async (setup: string) => {
      const acct = await createAccount(t.app, { billing_mode: 'postpaid' });
      await t.stack.pool.query(`UPDATE accounts SET ${setup} WHERE id = $1`, [acct.id]);
      const client = new CreditsClient({ baseUrl, apiKey: acct.api_key });
      // 2,600 images at 0.04: 104.00, over the plan's 100.00 monthly limit.
      return client.withCredits({ account: acct.id, product: 'image', maxQuantity: '2600' }, async () => '1').catch((e: unknown) => e);
    };
    const limit = await refusal("payment_method = 'test-card'");
    expect(limit).toBeInstanceOf(MonthlyLimitReachedError);
    expect(limit).toMatchObject({ status: 402, code: 'MONTHLY_LIMIT_REACHED' });
    expect(await refusal('payment_method = NULL')).toBeInstanceOf(CardRequiredError);
    const suspended = await refusal("payment_method = 'test-card', suspended_at = now()");
    expect(suspended).toBeInstanceOf(AccountSuspendedError);
    expect(suspended).toMatchObject({ status: 403, code: 'ACCOUNT_SUSPENDED' });
    for (const e of [limit, suspended]) expect(e).toBeInstanceOf(CreditsRefusedError);
  });

  it('gets the same hold for the same idempotency key', async () => {
    const { id, client } = await funded('5');
    const key = uid('call');
    const first = await client.authorize({ account: id, product: 'image', maxQuantity: '2', idempotencyKey: key });
    const again = await client.authorize({ account: id, product: 'image', maxQuantity: '2', idempotencyKey: key });
    expect(again).toEqual(first);
    expect(first.amount).toBe('0.080000');
    await client.release(first.hold_id);
  });

  it('fails closed when the gate cannot be reached: GateUnavailableError, the work never runs', async () => {
    const client = new CreditsClient({ baseUrl: 'http://127.0.0.1:9', apiKey: 'ms_x', retries: 1, retryDelayMs: 1 });
    let ran = false;
    await expect(client.withCredits({ account: 'a', product: 'voice', maxQuantity: '1' }, async () => {
      ran = true;
      return '1';
    })).rejects.toBeInstanceOf(GateUnavailableError);
    expect(ran).toBe(false);
  });
});
