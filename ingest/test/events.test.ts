import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { admin, bearer, collectTopic, createAccount, openIngest, uid, type TestIngest } from './support.js';

let t: TestIngest;
let topic: Awaited<ReturnType<typeof collectTopic>>;
let acct: { id: string; api_key: string };

beforeAll(async () => {
  t = await openIngest('ingest-events', { MAX_BATCH_EVENTS: '10', MAX_BODY_BYTES: '4096' });
  topic = await collectTopic(t.stack.kafka, t.stack.topics.events);
  acct = await createAccount(t.app);
});
afterAll(async () => {
  await topic?.stop();
  await t?.close();
});

const now = () => new Date().toISOString();
const event = (over: Record<string, unknown> = {}) => ({
  id: uid(), account_id: acct.id, product: 'gpt-tokens', quantity: '12.5', timestamp: now(), ...over,
});
const post = (payload: unknown, headers: Record<string, string> = bearer(acct.api_key)) =>
  t.app.inject({ method: 'POST', url: '/v1/events', headers, payload: payload as object });

describe('POST /v1/events', () => {
  it('accepts a single event and puts it on usage.events keyed by account, quantity in canonical decimal', async () => {
    const e = event({ quantity: 1.5, properties: { model: 'small' } });
    const res = await post(e);
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ accepted: [e.id], rejected: [] });
    const [m] = await topic.waitFor([e.id]);
    expect(m!.key).toBe(acct.id);
    expect(m!.value).toEqual({ ...e, quantity: '1.500000' });
  });

  it('accepts a JSON array; one account lands on one partition', async () => {
    const events = [event(), event({ quantity: '0.000001' }), event({ quantity: 0 })];
    const res = await post(events);
    expect(res.statusCode).toBe(202);
    expect(res.json().accepted).toEqual(events.map((e) => e.id));
    const got = await topic.waitFor(events.map((e) => e.id));
    expect(got.map((m) => m.value.quantity)).toEqual(['12.500000', '0.000001', '0.000000']);
    expect(new Set(got.map((m) => m.partition)).size).toBe(1);
  });

  it('accepts NDJSON, skipping blank lines and rejecting a malformed line on its own', async () => {
    const [a, b] = [event(), event()];
    const body = `${JSON.stringify(a)}\n\n{"id": "broken",\n${JSON.stringify(b)}\n`;
    const res = await t.app.inject({
      method: 'POST', url: '/v1/events', payload: body,
      headers: { ...bearer(acct.api_key), 'content-type': 'application/x-ndjson' },
    });
    expect(res.statusCode).toBe(202);
    const out = res.json();
    expect(out.accepted).toEqual([a.id, b.id]);
    expect(out.rejected).toEqual([{ index: 1, code: 'MALFORMED_JSON', message: expect.stringContaining('not valid JSON') }]);
    await topic.waitFor([a.id, b.id]);
  });

  it('rejects bad events one by one and still accepts the good ones', async () => {
    const good = [event(), event()];
    const day = 86_400_000;
    const bad: unknown[] = [
      event({ quantity: -1 }),
      event({ quantity: true, product: 42 }),
      event({ timestamp: new Date(Date.now() + 3_600_000).toISOString() }),
      event({ timestamp: new Date(Date.now() - 36 * day).toISOString() }),
      event({ quantity: '0.1234567' }),
      event({ quantity: 'EXACT' }), // replaced by a number literal that a double would round to 0.1
      'not an event',
    ];
    const payload = JSON.stringify([good[0], ...bad, good[1]]).replace('"EXACT"', '0.10000000000000000055');
    const res = await t.app.inject({ method: 'POST', url: '/v1/events', payload, headers: { ...bearer(acct.api_key), 'content-type': 'application/json' } });
    expect(res.statusCode).toBe(202);
    const { accepted, rejected } = res.json();
    expect(accepted).toEqual(good.map((e) => e.id));
    expect(rejected.map((r: { index: number; code: string }) => [r.index, r.code])).toEqual([
      [1, 'VALIDATION_ERROR'],
      [2, 'VALIDATION_ERROR'],
      [3, 'TIMESTAMP_IN_FUTURE'],
      [4, 'TIMESTAMP_TOO_OLD'],
      [5, 'VALIDATION_ERROR'],
      [6, 'VALIDATION_ERROR'],
      [7, 'VALIDATION_ERROR'],
    ]);
    expect(rejected[0]).toMatchObject({ id: (bad[0] as { id: string }).id, message: 'quantity: quantity must not be negative' });
    expect(rejected[1].message).toMatch(/product: .*expected string.*quantity: .*expected string or number/);
    expect(rejected[4].message).toMatch(/at most 6 places/);
    expect(rejected[5].message).toMatch(/0\.10000000000000000055.*at most 6 places/);
    expect(rejected[6]).not.toHaveProperty('id');

    await topic.waitFor(good.map((e) => e.id));
    const ids = new Set(topic.messages.map((m) => m.value.id));
    for (const e of bad.slice(0, -1)) expect(ids.has((e as { id: string }).id)).toBe(false);
  });

  it('answers 202 with every event rejected when none is valid', async () => {
    const res = await post([event({ quantity: 'x' }), event({ timestamp: 'yesterday' })]);
    expect(res.statusCode).toBe(202);
    expect(res.json().accepted).toEqual([]);
    expect(res.json().rejected).toHaveLength(2);
  });

  it('rejects malformed JSON with 400 and the envelope', async () => {
    const res = await t.app.inject({
      method: 'POST', url: '/v1/events', payload: '[{"id": "a",', headers: { ...bearer(acct.api_key), 'content-type': 'application/json' },
    });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: { code: 'MALFORMED_JSON', message: expect.stringContaining('not valid JSON') } });
  });

  it('rejects an empty batch with 400', async () => {
    const res = await post([]);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('EMPTY_BATCH');
  });

  it('answers 413 over MAX_BATCH_EVENTS, for arrays and NDJSON', async () => {
    const events = Array.from({ length: 11 }, () => event());
    const res = await post(events);
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({ error: { code: 'TOO_MANY_EVENTS', message: 'at most 10 events per request, got 11' } });
    const nd = await t.app.inject({
      method: 'POST', url: '/v1/events', payload: events.map((e) => JSON.stringify(e)).join('\n'),
      headers: { ...bearer(acct.api_key), 'content-type': 'application/x-ndjson' },
    });
    expect(nd.statusCode).toBe(413);
    expect(topic.messages.some((m) => m.value.id === events[0]!.id)).toBe(false);
  });

  it('answers 413 over MAX_BODY_BYTES', async () => {
    const res = await post(event({ properties: { note: 'x'.repeat(5000) } }));
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  it('answers 415 for a content type it does not read', async () => {
    const res = await t.app.inject({
      method: 'POST', url: '/v1/events', payload: 'id=1', headers: { ...bearer(acct.api_key), 'content-type': 'text/plain' },
    });
    expect(res.statusCode).toBe(415);
    expect(res.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });

  it('answers 401 with the envelope for a missing or unknown key', async () => {
    for (const headers of [{}, { authorization: 'Basic abc' }, bearer('msk_not-a-real-key'), bearer('nope')]) {
      const res = await post(event(), headers);
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer');
      expect(res.json()).toEqual({ error: { code: 'UNAUTHORIZED', message: expect.any(String) } });
    }
  });

  it("rejects another account's events sent with an account key; the admin key may send for anyone", async () => {
    const other = await createAccount(t.app);
    const mine = event();
    const theirs = event({ account_id: other.id });
    const res = await post([mine, theirs]);
    expect(res.json()).toEqual({
      accepted: [mine.id],
      rejected: [{ index: 1, id: theirs.id, code: 'FORBIDDEN', message: `this API key cannot send events for account ${other.id}` }],
    });
    const byAdmin = await post(theirs, admin);
    expect(byAdmin.json()).toEqual({ accepted: [theirs.id], rejected: [] });
    const [m] = await topic.waitFor([theirs.id]);
    expect(m!.key).toBe(other.id);
  });
});
