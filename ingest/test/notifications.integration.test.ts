import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TestClock } from '@meterstream/platform/clock';
import { createLogger } from '@meterstream/platform/logger';
import { getNotification, type NotificationRecord } from '@meterstream/platform/stores/notifications';
import { addGrant } from '@meterstream/ledger/commands/add-grant';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { smtpMailer } from '@meterstream/ledger/notifications/email';
import { NotificationWorker } from '@meterstream/ledger/notifications/worker';
import { expectedSignature, smtpSink, webhookReceiver } from './notification-receivers.js';
import { admin, bearer, createAccount, injector, openIngest, uid, type TestIngest } from './support.js';

// The credits.granted notification end to end: written in the grant's transaction, delivered by a
// signed webhook (verified here by hand, from the spec) and by email through a real SMTP server,
// retried with backoff, dead after N attempts, replayed.

// The ledger and the worker run on a clock in 2100, and backoffs pass by moving the clock, not by
// waiting; the worker delivers this file's accounts only (other files share the database).
const clock = new TestClock(Date.parse('2100-01-01T00:00:00.000Z'));
const now = () => clock.now();
const RETRY_INITIAL_MS = 1_000;
const RETRY_MAX_MS = 60_000;
const MAX_ATTEMPTS = 4;

let t: TestIngest;
let receiver: Awaited<ReturnType<typeof webhookReceiver>>;
let smtp: Awaited<ReturnType<typeof smtpSink>>;
let worker: NotificationWorker;
const accounts: string[] = [];

beforeAll(async () => {
  t = await openIngest('notifications', {}, { now });
  receiver = await webhookReceiver();
  smtp = await smtpSink();
  worker = new NotificationWorker({
    pool: t.stack.pool, log: createLogger('notifications-test', t.config.LOG_LEVEL), now, mailer: smtpMailer(smtp.url, 'billing@meterstream.test'),
    settings: { maxAttempts: MAX_ATTEMPTS, retryInitialMs: RETRY_INITIAL_MS, retryMaxMs: RETRY_MAX_MS, webhookTimeoutMs: 5_000, batch: 1_000 }, accounts,
  });
});

afterAll(async () => {
  worker?.close();
  await receiver?.close();
  await smtp?.close();
  await t?.close();
});

const inject = () => injector(t.app);

async function accountWithWebhook(path: string, statuses: number[] = [200]) {
  const email = `${uid('n')}@example.com`;
  const account = await createAccount(t.app, { email });
  accounts.push(account.id);
  const res = await inject()('POST', `/v1/accounts/${account.id}/webhooks`, bearer(account.api_key), { url: receiver.url(path, statuses) });
  expect(res.statusCode).toBe(201);
  const webhook = res.json<{ id: string; secret: string }>();
  return { ...account, email, webhook };
}

const grant = (accountId: string, body: unknown, key: string) =>
  inject()('POST', `/v1/accounts/${accountId}/grants`, { ...admin, 'idempotency-key': key }, body);

async function notifications(accountId: string): Promise<{ id: string; payload: unknown; deliveries: Record<string, unknown>[] }[]> {
  const res = await inject()('GET', `/v1/accounts/${accountId}/notifications`, admin);
  expect(res.statusCode).toBe(200);
  return res.json<{ notifications: { id: string; payload: unknown; deliveries: Record<string, unknown>[] }[] }>().notifications;
}

/** Runs the worker's rounds, moving the clock past every backoff, until no delivery of `id` is pending. */
async function deliver(accountId: string, id: string): Promise<NotificationRecord> {
  for (let round = 0; round < 20; round++) {
    await worker.runOnce();
    const n = (await getNotification(t.stack.pool, accountId, id))!;
    if (n.deliveries.every((d) => d.state !== 'pending')) return n;
    clock.advance(RETRY_MAX_MS);
  }
  throw new Error(`notification ${id} still pending after 20 rounds`);
}

const byChannel = (n: NotificationRecord) => Object.fromEntries(n.deliveries.map((d) => [d.channel, { state: d.state, attempts: d.attempts }]));

describe('credits.granted notifications', () => {
  it('are delivered once per grant, by a signed webhook and by email, with the grant figures', async () => {
    const path = `/${uid('hook')}`;
    const acct = await accountWithWebhook(path);
    expect(acct.webhook.secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    const body = { kind: 'purchased', amount: '25.5', expires_at: '2200-01-01T00:00:00Z' };
    const key = uid('pay');
    const first = await grant(acct.id, body, key);
    expect(first.statusCode).toBe(201);
    // The same request again (a client retry): the same grant, and no second notification.
    expect((await grant(acct.id, body, key)).headers['idempotent-replayed']).toBe('true');
    const [only, ...more] = await notifications(acct.id);
    expect(more).toEqual([]);

    const sentAt = clock.now();
    expect(byChannel(await deliver(acct.id, only!.id))).toEqual({ webhook: { state: 'delivered', attempts: 1 }, email: { state: 'delivered', attempts: 1 } });

    const [hook, ...extra] = receiver.at(path);
    expect(extra).toEqual([]);
    const timestamp = String(Math.floor(sentAt / 1000));
    expect(hook!.headers['webhook-id']).toBe(only!.id);
    expect(hook!.headers['webhook-timestamp']).toBe(timestamp);
    expect(hook!.headers['webhook-signature']).toBe(expectedSignature(acct.webhook.secret, only!.id, timestamp, hook!.body));
    expect(hook!.headers['content-type']).toBe('application/json');
    expect(JSON.parse(hook!.body)).toEqual({
      type: 'credits.granted',
      timestamp: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      data: {
        account_id: acct.id, grant_id: first.json<{ id: string }>().id, entry_id: expect.any(String), kind: 'purchased',
        amount: '25.500000', currency: 'USD', expires_at: '2200-01-01T00:00:00.000Z', balance_after: '25.500000',
      },
    });

    const [mail, ...otherMail] = smtp.to(acct.email);
    expect(otherMail).toEqual([]);
    expect(mail!.from).toBe('billing@meterstream.test');
    expect(mail!.raw).toContain('Subject: Credits added: 25.500000 USD');
    expect(mail!.raw).toContain('Balance after the grant: 25.500000 USD.');

    // Another grant is another notification, with the balance after it.
    expect((await grant(acct.id, { kind: 'gift', amount: '10' }, uid('gift'))).statusCode).toBe(201);
    const [second] = await notifications(acct.id);
    expect(second!.id).not.toBe(only!.id);
    await deliver(acct.id, second!.id);
    expect(receiver.at(path).map((r) => JSON.parse(r.body).data.balance_after)).toEqual(['25.500000', '35.500000']);
    expect(receiver.at(path).map((r) => JSON.parse(r.body).data.expires_at)).toEqual(['2200-01-01T00:00:00.000Z', null]);
  });

  it('retries a failing webhook with exponential backoff: answered 500 twice, delivered on the third attempt', async () => {
    const path = `/${uid('hook')}`;
    const acct = await accountWithWebhook(path, [500, 500, 200]);
    expect((await grant(acct.id, { kind: 'purchased', amount: '7' }, uid('pay'))).statusCode).toBe(201);
    const [n] = await notifications(acct.id);

    const webhookOf = async () => (await getNotification(t.stack.pool, acct.id, n!.id))!.deliveries.find((d) => d.channel === 'webhook')!;
    const failedAt1 = clock.now();
    await worker.runOnce();
    const after1 = await webhookOf();
    expect({ state: after1.state, attempts: after1.attempts, error: after1.lastError }).toEqual({ state: 'pending', attempts: 1, error: expect.stringContaining('answered 500') });
    // Backoff with jitter: between half and all of RETRY_INITIAL_MS, then of twice that.
    expect(after1.nextAttemptAt.getTime() - failedAt1).toBeGreaterThanOrEqual(RETRY_INITIAL_MS / 2);
    expect(after1.nextAttemptAt.getTime() - failedAt1).toBeLessThanOrEqual(RETRY_INITIAL_MS);
    // Not due yet: nothing is sent.
    await worker.runOnce();
    expect(receiver.at(path)).toHaveLength(1);

    clock.set(after1.nextAttemptAt);
    const failedAt2 = clock.now();
    await worker.runOnce();
    const after2 = await webhookOf();
    expect({ state: after2.state, attempts: after2.attempts }).toEqual({ state: 'pending', attempts: 2 });
    expect(after2.nextAttemptAt.getTime() - failedAt2).toBeGreaterThanOrEqual(RETRY_INITIAL_MS);
    expect(after2.nextAttemptAt.getTime() - failedAt2).toBeLessThanOrEqual(2 * RETRY_INITIAL_MS);

    clock.set(after2.nextAttemptAt);
    await worker.runOnce();
    const after3 = await webhookOf();
    expect({ state: after3.state, attempts: after3.attempts, error: after3.lastError }).toEqual({ state: 'delivered', attempts: 3, error: null });
    // Every attempt carries the same webhook-id, each signed at its own time.
    const attempts = receiver.at(path);
    expect(attempts.map((a) => a.headers['webhook-id'])).toEqual([n!.id, n!.id, n!.id]);
    expect(attempts.map((a) => a.headers['webhook-timestamp'])).toEqual([failedAt1, failedAt2, clock.now()].map((ms) => String(Math.floor(ms / 1000))));
    for (const a of attempts) {
      expect(a.headers['webhook-signature']).toBe(expectedSignature(acct.webhook.secret, n!.id, a.headers['webhook-timestamp'] as string, a.body));
    }
  });

  it('gives a webhook that always fails up after N attempts (dead), and a replay delivers it', async () => {
    const path = `/${uid('hook')}`;
    const acct = await accountWithWebhook(path, [500]);
    expect((await grant(acct.id, { kind: 'purchased', amount: '3' }, uid('pay'))).statusCode).toBe(201);
    const [n] = await notifications(acct.id);
    const dead = await deliver(acct.id, n!.id);
    expect(byChannel(dead)).toEqual({ webhook: { state: 'dead', attempts: MAX_ATTEMPTS }, email: { state: 'delivered', attempts: 1 } });
    expect(receiver.at(path)).toHaveLength(MAX_ATTEMPTS);
    // A dead delivery is not tried again by itself.
    clock.advance(RETRY_MAX_MS);
    await worker.runOnce();
    expect(receiver.at(path)).toHaveLength(MAX_ATTEMPTS);

    receiver.answer(path, [200]);
    const replay = await inject()('POST', `/v1/accounts/${acct.id}/notifications/${n!.id}/replay`, bearer(acct.api_key));
    expect(replay.statusCode).toBe(202);
    expect(replay.json<{ deliveries: { channel: string; state: string; attempts: number }[] }>().deliveries.map((d) => [d.channel, d.state, d.attempts]))
      .toEqual([['email', 'pending', 0], ['webhook', 'pending', 0]]);
    expect(byChannel(await deliver(acct.id, n!.id))).toEqual({ webhook: { state: 'delivered', attempts: 1 }, email: { state: 'delivered', attempts: 1 } });
    expect(receiver.at(path).map((r) => r.headers['webhook-id'])).toEqual(Array(MAX_ATTEMPTS + 1).fill(n!.id));
    expect(smtp.to(acct.email)).toHaveLength(2);

    const unknown = await inject()('POST', `/v1/accounts/${acct.id}/notifications/msg_${'0'.repeat(32)}/replay`, bearer(acct.api_key));
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: { code: 'NOTIFICATION_NOT_FOUND', message: expect.any(String) } });
  });

  it('are written in the grant\'s transaction: a grant that does not commit tells nothing', async () => {
    const acct = await accountWithWebhook(`/${uid('hook')}`);
    const log = createLogger('notifications-test', 'silent');
    const cache = new CacheWriter(t.stack.cache, t.stack.pool, log);
    const failing = new WriteOrder({
      pool: t.stack.pool, send: () => Promise.resolve(), cache, topics: t.stack.topics, log, now,
      fault: { at: 'before-pg-commit', onCommit: 1, crash: () => { throw new Error('crashed before the commit'); } },
    });
    await expect(addGrant(failing, { accountId: acct.id, input: { kind: 'purchased', amount: '5', priority: 100 }, idempotencyKey: uid('pay') }))
      .rejects.toThrow('crashed before the commit');
    await cache.stop();
    expect(await notifications(acct.id)).toEqual([]);
    expect((await inject()('GET', `/v1/accounts/${acct.id}/balance`, admin)).json()).toMatchObject({ balance: '0.000000' });
  });

  it('manages webhook endpoints: listed without their secret, and a deleted one gets no new notification', async () => {
    const path = `/${uid('hook')}`;
    const acct = await accountWithWebhook(path);
    const list = await inject()('GET', `/v1/accounts/${acct.id}/webhooks`, bearer(acct.api_key));
    expect(list.json()).toEqual({ webhooks: [{ id: acct.webhook.id, account_id: acct.id, url: receiver.url(path), created_at: expect.any(String) }] });
    const bad = await inject()('POST', `/v1/accounts/${acct.id}/webhooks`, bearer(acct.api_key), { url: 'ftp://example.com/x' });
    expect({ status: bad.statusCode, code: bad.json().error.code }).toEqual({ status: 400, code: 'VALIDATION_ERROR' });

    expect((await inject()('DELETE', `/v1/accounts/${acct.id}/webhooks/${acct.webhook.id}`, bearer(acct.api_key))).statusCode).toBe(200);
    expect((await inject()('DELETE', `/v1/accounts/${acct.id}/webhooks/${acct.webhook.id}`, bearer(acct.api_key))).statusCode).toBe(404);
    expect((await inject()('GET', `/v1/accounts/${acct.id}/webhooks`, admin)).json()).toEqual({ webhooks: [] });
    expect((await grant(acct.id, { kind: 'purchased', amount: '1' }, uid('pay'))).statusCode).toBe(201);
    const [n] = await notifications(acct.id);
    expect(byChannel(await deliver(acct.id, n!.id))).toEqual({ email: { state: 'delivered', attempts: 1 } });
    expect(receiver.at(path)).toEqual([]);
  });
});
