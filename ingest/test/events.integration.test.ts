import { describe, expect } from 'vitest';
import { bearer, eventsTest, uid } from './support.js';

// POST /v1/events on its happy path: what lands on usage.events. Refusals are in events.errors and
// events-limits, keys and accounts in security.
const test = eventsTest();

const eventOf = (accountId: string, over: Record<string, unknown> = {}) => ({
  id: uid(), account_id: accountId, product: 'gpt-tokens', quantity: '12.5', timestamp: new Date().toISOString(), ...over,
});

describe('POST /v1/events', () => {
  test('accepts a single event and puts it on usage.events keyed by account, quantity in canonical decimal', async ({ ingest: t, topic, acct }) => {
    const e = eventOf(acct.id, { quantity: 1.5, properties: { model: 'small' } });
    const res = await t.app.inject({ method: 'POST', url: '/v1/events', headers: bearer(acct.api_key), payload: e });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toEqual({ accepted: [e.id], rejected: [] });
    const [m] = await topic.waitFor([e.id]);
    expect(m!.key).toBe(acct.id);
    expect(m!.value).toEqual({ ...e, quantity: '1.500000' });
  });

  test('accepts a JSON array; one account lands on one partition', async ({ ingest: t, topic, acct }) => {
    const events = [eventOf(acct.id), eventOf(acct.id, { quantity: '0.000001' }), eventOf(acct.id, { quantity: 0 })];
    const res = await t.app.inject({ method: 'POST', url: '/v1/events', headers: bearer(acct.api_key), payload: events });
    expect(res.statusCode).toBe(202);
    expect(res.json().accepted).toEqual(events.map((e) => e.id));
    const got = await topic.waitFor(events.map((e) => e.id));
    expect(got.map((m) => m.value.quantity)).toEqual(['12.500000', '0.000001', '0.000000']);
    expect(new Set(got.map((m) => m.partition)).size).toBe(1);
  });

  test('accepts NDJSON, skipping blank lines and rejecting a malformed line on its own', async ({ ingest: t, topic, acct }) => {
    const [a, b] = [eventOf(acct.id), eventOf(acct.id)];
    const body = `${JSON.stringify(a)}\n\n{"id": "broken",\n${JSON.stringify(b)}\n`;
    const res = await t.app.inject({
      method: 'POST', url: '/v1/events', payload: body,
      headers: { ...bearer(acct.api_key), 'content-type': 'application/x-ndjson' },
    });
    expect(res.statusCode).toBe(202);
    const out = res.json();
    expect(out.accepted).toEqual([a.id, b.id]);
    expect(out.rejected).toEqual([{ index: 1, code: 'MALFORMED_JSON', message: expect.stringContaining('not valid JSON') }]);
    const got = await topic.waitFor([a.id, b.id]);
    expect(got.map((m) => m.value.id)).toEqual([a.id, b.id]);
  });
});
