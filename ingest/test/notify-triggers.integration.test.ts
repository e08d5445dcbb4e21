import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClock } from '@meterstream/platform/clock';
import { loadConfig } from '@meterstream/platform/config';
import { createLogger } from '@meterstream/platform/logger';
import { getNotification, type NotificationRecord } from '@meterstream/platform/stores/notifications';
import { expireGrants } from '@meterstream/ledger/commands/expire-grants';
import { smtpMailer } from '@meterstream/ledger/notifications/email';
import { NotificationWorker } from '@meterstream/ledger/notifications/worker';
import { RaterConfig, startRater } from '@meterstream/rater';
import { produceEvents, setPrices, usageEvent, waitRaterIdle } from '../../tests/support/fixtures.js';
import { expectedSignature, smtpSink, webhookReceiver } from './notification-receivers.js';
import { admin, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// Each alert on an account's money fires once per crossing, driven by usage through the real
// rater: balance.low and balance.zero (re-armed by a grant that lifts the balance back), the
// spending alert and the allowed limit (once a month, re-armed by the next month); delivered by a
// signed webhook and by email through a real SMTP server. The ledger, the rater and the worker
// share one test clock; the worker delivers this file's accounts only.

const clock = new TestClock(Date.parse('2101-03-10T12:00:00.000Z'));
const now = () => clock.now();
const PRODUCT = 'notify-request';

let t: TestIngest;
let rater: Awaited<ReturnType<typeof startRater>>;
let receiver: Awaited<ReturnType<typeof webhookReceiver>>;
let smtp: Awaited<ReturnType<typeof smtpSink>>;
let worker: NotificationWorker;
const accounts: string[] = [];

beforeAll(async () => {
  t = await openIngest('notify-triggers', {}, { now });
  await setPrices(t.stack, { [PRODUCT]: { unit: 'request', unit_price: '1', per: 1, currency: 'USD' } });
  const log = createLogger('notify-triggers', t.config.LOG_LEVEL);
  rater = await startRater({
    config: loadConfig(RaterConfig, { ...t.stack.env, RATER_SESSION_TIMEOUT_MS: '6000' }),
    pool: t.stack.pool, cache: t.stack.cache, kafka: t.stack.kafka, log, now,
  });
  receiver = await webhookReceiver();
  smtp = await smtpSink();
  worker = new NotificationWorker({
    pool: t.stack.pool, log, now, accounts, mailer: smtpMailer(smtp.url, 'billing@meterstream.test'),
    settings: { maxAttempts: 3, retryInitialMs: 1_000, retryMaxMs: 60_000, webhookTimeoutMs: 5_000, batch: 100 },
  });
});

afterAll(async () => {
  worker?.close();
  await rater?.stop();
  await receiver?.close();
  await smtp?.close();
  await t?.close();
});

const inject = () => injector(t.app);

async function account(limits: Record<string, string | null>) {
  const email = `${uid('alerts')}@example.com`;
  const acct = await createAccount(t.app, { email });
  accounts.push(acct.id);
  const path = `/${uid('hook')}`;
  const hook = await inject()('POST', `/v1/accounts/${acct.id}/webhooks`, admin, { url: receiver.url(path) });
  expect(hook.statusCode).toBe(201);
  const put = await inject()('PUT', `/v1/accounts/${acct.id}/limits`, admin, limits);
  expect(put.statusCode).toBe(200);
  return { id: acct.id, email, path, secret: hook.json<{ secret: string }>().secret };
}

const grant = async (accountId: string, amount: string) =>
  expect((await inject()('POST', `/v1/accounts/${accountId}/grants`, { ...admin, 'idempotency-key': uid('g') }, { kind: 'purchased', amount })).statusCode).toBe(201);

/** Usage of `costs` (USD each, one event each) in one produce, rated before it returns. */
async function use(accountId: string, costs: string[], atMs = clock.now()) {
  await produceEvents(t.stack, costs.map((q) => usageEvent(accountId, PRODUCT, q, uid('e'), new Date(atMs))));
  await waitRaterIdle(t.stack);
}

/** The account's alert notifications (credits.granted left out), oldest first, as [type, data]. */
async function alerts(accountId: string): Promise<[string, Record<string, unknown>][]> {
  const res = await inject()('GET', `/v1/accounts/${accountId}/notifications`, admin);
  expect(res.statusCode).toBe(200);
  return res.json<{ notifications: { payload: { type: string; data: Record<string, unknown> } }[] }>().notifications
    .map((n): [string, Record<string, unknown>] => [n.payload.type, n.payload.data]).filter(([type]) => type !== 'credits.granted').reverse();
}

const types = async (accountId: string) => (await alerts(accountId)).map(([type]) => type);

/** Runs the worker until none of the account's deliveries is pending. */
async function deliverAll(accountId: string, ids: string[]): Promise<NotificationRecord[]> {
  for (let round = 0; round < 10; round++) {
    await worker.drain();
    const all = await Promise.all(ids.map(async (id) => (await getNotification(t.stack.pool, accountId, id))!));
    if (all.every((n) => n.deliveries.every((d) => d.state !== 'pending'))) return all;
    clock.advance(60_000);
  }
  throw new Error('deliveries still pending after 10 rounds');
}

describe('balance alerts (prepaid)', () => {
  it('fire once per downward crossing, whatever the number of events, and re-arm when a grant lifts the balance', async () => {
    const a = await account({ low_balance_threshold: '5' });
    await grant(a.id, '10');
    await use(a.id, ['3']); // 7
    expect(await types(a.id)).toEqual([]);
    await use(a.id, ['1', '1', '1']); // 4: under 5, one batch of three events, one alert
    await use(a.id, ['1']); // 3: still under, nothing
    expect(await alerts(a.id)).toEqual([['balance.low', { account_id: a.id, currency: 'USD', balance: '4.000000', threshold: '5.000000' }]]);
    await use(a.id, ['2', '1', '1']); // -1: zero reached once, in a batch that goes through 0 and below
    await use(a.id, ['1']); // -2
    expect(await types(a.id)).toEqual(['balance.low', 'balance.zero']);
    expect((await alerts(a.id))[1]![1]).toEqual({ account_id: a.id, currency: 'USD', balance: '-1.000000', threshold: '0.000000' });

    // A grant pays the overdraft and lifts the balance to 10: both alerts re-armed, each fires again when crossed again.
    await grant(a.id, '12');
    await use(a.id, ['6']); // 4
    await use(a.id, ['5']); // -1
    expect(await types(a.id)).toEqual(['balance.low', 'balance.zero', 'balance.low', 'balance.zero']);

    // A grant that leaves the balance under the threshold re-arms balance.zero only.
    await grant(a.id, '3'); // 2
    await use(a.id, ['1']); // 1: still under 5, balance.low stays told
    await use(a.id, ['2']); // -1
    expect(await types(a.id)).toEqual(['balance.low', 'balance.zero', 'balance.low', 'balance.zero', 'balance.zero']);
  });

  it('are delivered by a signed webhook and by email', async () => {
    const a = await account({ low_balance_threshold: '2.5' });
    await grant(a.id, '3');
    await use(a.id, ['1']);
    const res = await inject()('GET', `/v1/accounts/${a.id}/notifications`, admin);
    const [low] = res.json<{ notifications: { id: string; payload: { type: string } }[] }>().notifications.filter((n) => n.payload.type === 'balance.low');
    const sentAt = clock.now();
    const [delivered] = await deliverAll(a.id, [low!.id]);
    expect(delivered!.deliveries.map((d) => [d.channel, d.state, d.attempts])).toEqual([['email', 'delivered', 1], ['webhook', 'delivered', 1]]);

    const [hook, ...more] = receiver.at(a.path).filter((r) => r.headers['webhook-id'] === low!.id);
    expect(more).toEqual([]);
    const timestamp = String(Math.floor(sentAt / 1000));
    expect(hook!.headers['webhook-timestamp']).toBe(timestamp);
    expect(hook!.headers['webhook-signature']).toBe(expectedSignature(a.secret, low!.id, timestamp, hook!.body));
    expect(JSON.parse(hook!.body)).toEqual({
      type: 'balance.low', timestamp: new Date(sentAt).toISOString(),
      data: { account_id: a.id, currency: 'USD', balance: '2.000000', threshold: '2.500000' },
    });
    // The message as sent, its quoted-printable soft line breaks joined.
    const mails = smtp.to(a.email).map((m) => m.raw.replace(/=\r\n/g, '')).filter((raw) => raw.includes(`X-Notification-ID: ${low!.id}`));
    expect(mails).toHaveLength(1);
    expect(mails[0]).toContain('Subject: Low balance: 2.000000 USD');
    expect(mails[0]).toContain('fell to 2.000000 USD, below your alert threshold of 2.500000 USD.');
  });

  it('fire when expiring credits take the balance under the threshold', async () => {
    const a = await account({ low_balance_threshold: '5' });
    const expiresAt = new Date(clock.now() + 3_600_000).toISOString();
    expect((await inject()('POST', `/v1/accounts/${a.id}/grants`, { ...admin, 'idempotency-key': uid('g') }, { kind: 'gift', amount: '4', expires_at: expiresAt })).statusCode).toBe(201);
    await grant(a.id, '3');
    clock.advance(2 * 3_600_000);
    expect(await expireGrants(t.stack.ledger, { now: clock.now(), accounts: [a.id] })).toMatchObject({ grants: 1 });
    expect(await alerts(a.id)).toEqual([['balance.low', { account_id: a.id, currency: 'USD', balance: '3.000000', threshold: '5.000000' }]]);
  });

  it('stay silent for postpaid accounts (nothing pauses there)', async () => {
    const acct = await createAccount(t.app, { billing_mode: 'postpaid' });
    accounts.push(acct.id);
    await use(acct.id, ['3']);
    expect(await types(acct.id)).toEqual([]);
  });
});

describe('spend alerts', () => {
  it('fire once a month when the month\'s spend reaches the alert threshold and the allowed limit; a new month re-arms them', async () => {
    clock.set('2101-03-10T12:00:00Z');
    const a = await account({ spend_alert_threshold: '5', allowed_limit: '8' });
    await grant(a.id, '100');
    await use(a.id, ['3']); // spent 3
    expect(await types(a.id)).toEqual([]);
    await use(a.id, ['3']); // 6: alert
    await use(a.id, ['1']); // 7
    await use(a.id, ['1', '1']); // 9: limit
    await use(a.id, ['3']); // 12
    expect(await alerts(a.id)).toEqual([
      ['spend.alert_threshold', { account_id: a.id, currency: 'USD', month: '2101-03', spent: '6.000000', threshold: '5.000000' }],
      ['spend.limit_reached', { account_id: a.id, currency: 'USD', month: '2101-03', spent: '9.000000', threshold: '8.000000' }],
    ]);
    const limits = await inject()('GET', `/v1/accounts/${a.id}/limits`, admin);
    expect(limits.json()).toMatchObject({ month: '2101-03', spent_this_month: '12.000000', remaining_this_month: '0.000000' });

    // April: the month's spend starts again; each alert fires once more when reached.
    clock.set('2101-04-01T00:00:10Z');
    await use(a.id, ['4']);
    expect((await inject()('GET', `/v1/accounts/${a.id}/limits`, admin)).json()).toMatchObject({ month: '2101-04', spent_this_month: '4.000000', remaining_this_month: '4.000000' });
    await use(a.id, ['5']); // 9: both at once
    await use(a.id, ['5']);
    // Written by one batch, in no particular order.
    expect((await alerts(a.id)).slice(2).sort(([x], [y]) => x.localeCompare(y))).toEqual([
      ['spend.alert_threshold', { account_id: a.id, currency: 'USD', month: '2101-04', spent: '9.000000', threshold: '5.000000' }],
      ['spend.limit_reached', { account_id: a.id, currency: 'USD', month: '2101-04', spent: '9.000000', threshold: '8.000000' }],
    ]);
    const balance = await inject()('GET', `/v1/accounts/${a.id}/balance`, admin);
    expect(balance.json()).toMatchObject({ balance: '74.000000', spent_this_month: '14.000000' });
  });

  it('a changed setting re-arms its alert: a raised threshold is told again when reached', async () => {
    const a = await account({ spend_alert_threshold: '2', allowed_limit: null });
    await grant(a.id, '100');
    await use(a.id, ['3']);
    const put = await inject()('PUT', `/v1/accounts/${a.id}/limits`, admin, { spend_alert_threshold: '5' });
    expect(put.statusCode).toBe(200);
    await use(a.id, ['1']); // 4: under the new threshold
    await use(a.id, ['1']); // 5
    expect((await alerts(a.id)).map(([type, d]) => [type, d.spent, d.threshold])).toEqual([
      ['spend.alert_threshold', '3.000000', '2.000000'], ['spend.alert_threshold', '5.000000', '5.000000'],
    ]);
  });
});

describe('the limits route', () => {
  it('answers the settings, their values in effect and the month\'s spend', async () => {
    const acct = await createAccount(t.app, {});
    const res = await inject()('GET', `/v1/accounts/${acct.id}/limits`, admin);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      account_id: acct.id, currency: 'USD', billing_mode: 'prepaid',
      low_balance_threshold: null, spend_alert_threshold: null, allowed_limit: null, monthly_limit: null,
      // the plan's default low-balance threshold (1.00)
      effective: { low_balance_threshold: '1.000000', spend_alert_threshold: null, allowed_limit: null, monthly_limit: null },
      month: expect.stringMatching(/^\d{4}-\d\d$/), spent_this_month: '0.000000', remaining_this_month: null,
    });
    const postpaid = await createAccount(t.app, { billing_mode: 'postpaid' });
    const set = await inject()('PUT', `/v1/accounts/${postpaid.id}/limits`, admin, { monthly_limit: '250', allowed_limit: '300' });
    expect(set.json()).toMatchObject({ monthly_limit: '250.000000', effective: { monthly_limit: '250.000000', allowed_limit: '300.000000' } });
  });

  it('refuses an alert threshold above the allowed limit, and a monthly limit on a prepaid account, with a clear message', async () => {
    const acct = await createAccount(t.app, {});
    const above = await inject()('PUT', `/v1/accounts/${acct.id}/limits`, admin, { spend_alert_threshold: '10', allowed_limit: '8' });
    expect({ status: above.statusCode, body: above.json() }).toEqual({
      status: 400, body: { error: { code: 'VALIDATION_ERROR', message: expect.stringContaining('spend_alert_threshold must not be above allowed_limit') } },
    });
    const prepaid = await inject()('PUT', `/v1/accounts/${acct.id}/limits`, admin, { monthly_limit: '10' });
    expect({ status: prepaid.statusCode, body: prepaid.json() }).toEqual({
      status: 400, body: { error: { code: 'VALIDATION_ERROR', message: 'monthly_limit is for postpaid accounts only' } },
    });
    // The database holds the rule too (migration 011), whoever writes.
    await expect(t.stack.pool.query('UPDATE accounts SET spend_alert_threshold = 10, allowed_limit = 8 WHERE id = $1', [acct.id]))
      .rejects.toThrow(/accounts_alert_within_limit/);
    expect((await inject()('GET', `/v1/accounts/does-not-exist/limits`, admin)).statusCode).toBe(404);
  });
});
