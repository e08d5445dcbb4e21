import { describe, expect } from 'vitest';
import { bearer, eventsTest, uid, type TestIngest } from './support.js';

// What POST /v1/events refuses, event by event (202 with `rejected`) or whole (4xx and the envelope).
const test = eventsTest({ MAX_BATCH_EVENTS: '10', MAX_BODY_BYTES: '4096' });

const eventOf = (accountId: string, over: Record<string, unknown> = {}) => ({
  id: uid(), account_id: accountId, product: 'gpt-tokens', quantity: '12.5', timestamp: new Date().toISOString(), ...over,
});
const postAs = (t: TestIngest, key: string) => (payload: unknown, contentType?: string) => t.app.inject({
  method: 'POST', url: '/v1/events', payload: payload as object,
  headers: { ...bearer(key), ...(contentType ? { 'content-type': contentType } : {}) },
});

describe('POST /v1/events', () => {
  test('rejects bad events one by one and still accepts the good ones', async ({ ingest: t, topic, acct }) => {
    const event = (over: Record<string, unknown> = {}) => eventOf(acct.id, over);
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
    const res = await postAs(t, acct.api_key)(payload, 'application/json');
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

    // Sent in the same produce request as the good ones: once those arrived, the bad ones never will.
    await topic.waitFor(good.map((e) => e.id));
    const badIds = new Set(bad.slice(0, -1).map((e) => (e as { id: string }).id));
    expect(topic.messages.filter((m) => badIds.has(m.value.id as string))).toEqual([]);
  });

  test('answers 202 with every event rejected when none is valid', async ({ ingest: t, acct }) => {
    const res = await postAs(t, acct.api_key)([eventOf(acct.id, { quantity: 'x' }), eventOf(acct.id, { timestamp: 'yesterday' })]);
    expect(res.statusCode).toBe(202);
    expect(res.json().accepted).toEqual([]);
    expect(res.json().rejected.map((r: { index: number; code: string }) => [r.index, r.code])).toEqual([[0, 'VALIDATION_ERROR'], [1, 'VALIDATION_ERROR']]);
  });

  test('rejects malformed JSON with 400 and the envelope', async ({ ingest: t, acct }) => {
    const res = await postAs(t, acct.api_key)('[{"id": "a",', 'application/json');
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({ error: { code: 'MALFORMED_JSON', message: expect.stringContaining('not valid JSON') } });
  });

  test('rejects an empty batch with 400', async ({ ingest: t, acct }) => {
    const res = await postAs(t, acct.api_key)([]);
    expect(res.statusCode).toBe(400);
    expect(res.json().error.code).toBe('EMPTY_BATCH');
  });

  test('answers 413 over MAX_BATCH_EVENTS, for arrays and NDJSON', async ({ ingest: t, topic, acct }) => {
    const post = postAs(t, acct.api_key);
    const events = Array.from({ length: 11 }, () => eventOf(acct.id));
    const res = await post(events);
    expect(res.statusCode).toBe(413);
    expect(res.json()).toEqual({ error: { code: 'TOO_MANY_EVENTS', message: 'at most 10 events per request, got 11' } });
    const nd = await post(events.map((e) => JSON.stringify(e)).join('\n'), 'application/x-ndjson');
    expect(nd.statusCode).toBe(413);
    // A request accepted after the refused ones reached the topic: none of the refused did.
    const marker = eventOf(acct.id);
    expect((await post(marker)).statusCode).toBe(202);
    await topic.waitFor([marker.id]);
    const refused = new Set(events.map((e) => e.id));
    expect(topic.messages.filter((m) => refused.has(m.value.id as string))).toEqual([]);
  });

  test('answers 413 over MAX_BODY_BYTES', async ({ ingest: t, acct }) => {
    const res = await postAs(t, acct.api_key)(eventOf(acct.id, { properties: { note: 'x'.repeat(5000) } }));
    expect(res.statusCode).toBe(413);
    expect(res.json().error.code).toBe('PAYLOAD_TOO_LARGE');
  });

  test('answers 415 for a content type it does not read', async ({ ingest: t, acct }) => {
    const res = await postAs(t, acct.api_key)('id=1', 'text/plain');
    expect(res.statusCode).toBe(415);
    expect(res.json().error.code).toBe('UNSUPPORTED_MEDIA_TYPE');
  });
});
