import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ID_MAX_LENGTH } from '@meterstream/schemas';
import { bearer, collectTopic, createAccount, openIngest, uid, type TestIngest } from './support.js';

// What ingest accepts must be storable by the rater (int8 micro-units, Postgres jsonb) and exact.
let t: TestIngest;
let topic: Awaited<ReturnType<typeof collectTopic>>;
let acct: { id: string; api_key: string };

beforeAll(async () => {
  t = await openIngest('ingest-events-limits');
  topic = await collectTopic(t.stack.kafka, t.stack.topics.events);
  acct = await createAccount(t.app);
});
afterAll(async () => {
  await topic?.stop();
  await t?.close();
});

const event = (over: Record<string, unknown> = {}) => ({
  id: uid(), account_id: acct.id, product: 'gpt-tokens', quantity: '1', timestamp: new Date().toISOString(), ...over,
});

/** Posts raw JSON text, so that escapes and number spellings reach the server exactly as written. */
async function postText(payload: string, contentType = 'application/json') {
  const res = await t.app.inject({
    method: 'POST', url: '/v1/events', payload, headers: { ...bearer(acct.api_key), 'content-type': contentType },
  });
  expect(res.statusCode).toBe(202);
  return res.json() as { accepted: string[]; rejected: { index: number; id?: string; code: string; message: string }[] };
}

/** The event's JSON text without its quantity, with the members given (JSON object text) instead. */
const withMembers = (e: ReturnType<typeof event>, members: string) => {
  const { quantity: _, ...rest } = e;
  return `${JSON.stringify(rest).slice(0, -1)},${members.slice(1)}`;
};

/** The events never reached usage.events: checked once the accepted ones (sent after them) arrived. */
async function expectOnlyOnTopic(accepted: string[], refused: string[]) {
  await topic.waitFor(accepted);
  const ids = new Set(topic.messages.map((m) => m.value.id));
  expect(refused.filter((id) => ids.has(id))).toEqual([]);
}

describe('quantities stay inside int8 micro-units', () => {
  it('accepts the largest quantity and rejects anything above it, as a string or a number', async () => {
    const max = event({ quantity: '999999999999.999999' });
    const literals = ['"99999999999999"', '99999999999999', '"1000000000000"', '1000000000000.000001', '1e12'];
    const over = literals.map(() => event());
    const body = `[${over.map((e, k) => withMembers(e, `{"quantity":${literals[k]}}`)).join(',')},${JSON.stringify(max)}]`;
    const out = await postText(body);
    expect(out.accepted).toEqual([max.id]);
    expect(out.rejected).toEqual(over.map((e, index) => ({
      index, id: e.id, code: 'VALIDATION_ERROR', message: 'quantity: quantity must be at most 999999999999.999999',
    })));
    const [m] = await topic.waitFor([max.id]);
    expect(m!.value.quantity).toBe('999999999999.999999');
    await expectOnlyOnTopic([max.id], over.map((e) => e.id));
  });
});

describe('exact quantities, however the JSON spells them', () => {
  it('rejects more than 6 decimals behind an escaped key, an exponent or a duplicate key', async () => {
    const cases: [string, string][] = [
      ['{"quan\\u0074ity":0.1000000000000000055}', '0.1000000000000000055'],
      ['{"\\u0071uantity":1.00000000000000001}', '1.00000000000000001'],
      ['{"quantity":1e-7}', '0.0000001'],
      ['{"quantity":1.0000001e0}', '1.0000001'],
      ['{"quantity":"1","quan\\u0074ity":0.1000000000000000055}', '0.1000000000000000055'],
      ['{"quantity":1e400}', '1e400'],
      ['{"quan\\u0074ity":1E-400}', '1E-400'],
    ];
    const good = event({ quantity: '2' });
    const events = cases.map(() => event());
    const body = `[${cases.map(([members], k) => withMembers(events[k]!, members)).join(',')},${JSON.stringify(good)}]`;
    const out = await postText(body);
    expect(out.accepted).toEqual([good.id]);
    expect(out.rejected.map((r) => [r.index, r.id, r.code])).toEqual(events.map((e, k) => [k, e.id, 'VALIDATION_ERROR']));
    out.rejected.forEach((r, k) => expect(r.message, cases[k]![0]).toContain(`"${cases[k]![1]}" is not a decimal with at most 6 places`));
    await expectOnlyOnTopic([good.id], events.map((e) => e.id));
  });

  it('reads exact exponent notation, as some JSON writers emit it, to the micro-unit', async () => {
    const [small, large, escaped] = [event(), event(), event()];
    const body = `[${withMembers(small, '{"quantity":5e-5}')},${withMembers(large, '{"quantity":1.5E+3}')},`
      + `${withMembers(escaped, '{"quan\\u0074ity":0.1000000e1}')}]`;
    const out = await postText(body);
    expect(out).toEqual({ accepted: [small.id, large.id, escaped.id], rejected: [] });
    const got = await topic.waitFor(out.accepted);
    expect(got.map((m) => m.value.quantity)).toEqual(['0.000050', '1500.000000', '1.000000']);
  });

  it('applies the same rules to NDJSON lines', async () => {
    const [bad, good] = [event(), event()];
    const body = `${withMembers(bad, '{"quan\\u0074ity":0.1000000000000000055}')}\n${withMembers(good, '{"quantity":2.5e-1}')}\n`;
    const out = await postText(body, 'application/x-ndjson');
    expect(out.accepted).toEqual([good.id]);
    expect(out.rejected).toEqual([{ index: 0, id: bad.id, code: 'VALIDATION_ERROR', message: expect.stringContaining('at most 6 places') }]);
    const [m] = await topic.waitFor([good.id]);
    expect(m!.value.quantity).toBe('0.250000');
  });
});

describe('properties Postgres can store, in bounded size', () => {
  it('rejects NUL characters and lone surrogates in keys and values', async () => {
    const good = event({ properties: { model: 'small', emoji: '\u{1F600}' } });
    const raw = ['{"note":"a\\u0000b"}', '{"a\\u0000":"x"}', '{"note":"\\ud800"}', '{"\\udfff":"x"}', '{"note":"\\ud83d"}'];
    const bad = raw.map(() => event({ properties: 'PROPS' }));
    const body = `[${bad.map((e, k) => JSON.stringify(e).replace('"PROPS"', raw[k]!)).join(',')},${JSON.stringify(good)}]`;
    const out = await postText(body);
    expect(out.accepted).toEqual([good.id]);
    expect(out.rejected).toEqual([
      { index: 0, id: bad[0]!.id, code: 'VALIDATION_ERROR', message: 'properties: the value of "note" contains the NUL character (\\u0000)' },
      { index: 1, id: bad[1]!.id, code: 'VALIDATION_ERROR', message: 'properties: key "a\\u0000" contains the NUL character (\\u0000)' },
      { index: 2, id: bad[2]!.id, code: 'VALIDATION_ERROR', message: 'properties: the value of "note" contains a lone UTF-16 surrogate' },
      { index: 3, id: bad[3]!.id, code: 'VALIDATION_ERROR', message: 'properties: key "\\udfff" contains a lone UTF-16 surrogate' },
      { index: 4, id: bad[4]!.id, code: 'VALIDATION_ERROR', message: 'properties: the value of "note" contains a lone UTF-16 surrogate' },
    ]);
    const [m] = await topic.waitFor([good.id]);
    expect(m!.value.properties).toEqual({ model: 'small', emoji: '\u{1F600}' });
    await expectOnlyOnTopic([good.id], bad.map((e) => e.id));
  });

  it('bounds the number of keys, their length, the values and the total', async () => {
    const keys = (n: number, value = 'v') => Object.fromEntries(Array.from({ length: n }, (_, k) => [`k${k}`, value]));
    const allowed = [
      keys(32),
      { ['k'.repeat(64)]: 'v'.repeat(1024) },
      { a: 'v'.repeat(1024), b: 'v'.repeat(1024), c: 'v'.repeat(1024), d: 'v'.repeat(1020) },
    ];
    const atLimits = allowed.map((properties) => event({ properties }));
    const over = [
      event({ properties: keys(33) }),
      event({ properties: { ['k'.repeat(65)]: 'v' } }),
      event({ properties: { note: 'v'.repeat(1025) } }),
      event({ properties: { a: 'v'.repeat(1024), b: 'v'.repeat(1024), c: 'v'.repeat(1024), d: 'v'.repeat(1021) } }),
    ];
    const out = await postText(JSON.stringify([...over, ...atLimits]));
    expect(out.accepted).toEqual(atLimits.map((e) => e.id));
    expect(out.rejected.map((r) => [r.index, r.id, r.code, r.message])).toEqual([
      [0, over[0]!.id, 'VALIDATION_ERROR', 'properties: at most 32 keys, got 33'],
      [1, over[1]!.id, 'VALIDATION_ERROR', `properties: key "${'k'.repeat(40)}..." is longer than 64 characters`],
      [2, over[2]!.id, 'VALIDATION_ERROR', 'properties: the value of "note" is longer than 1024 characters'],
      [3, over[3]!.id, 'VALIDATION_ERROR', 'properties: keys and values hold 4097 characters, at most 4096'],
    ]);
    const got = await topic.waitFor(atLimits.map((e) => e.id));
    expect(got.map((m) => m.value.properties)).toEqual(allowed);
    await expectOnlyOnTopic(out.accepted, over.map((e) => e.id));
  });
});

describe('ids and unknown keys', () => {
  it(`accepts ids of ${ID_MAX_LENGTH} characters and rejects longer ones`, async () => {
    const long = (c: string, n: number) => c.repeat(n);
    const ok = event({ id: long('e', ID_MAX_LENGTH), product: long('p', ID_MAX_LENGTH) });
    const tooLongProduct = event({ product: long('p', ID_MAX_LENGTH + 1) });
    const tooLongId = event({ id: long('f', ID_MAX_LENGTH + 1) });
    const out = await postText(JSON.stringify([tooLongProduct, tooLongId, ok]));
    expect(out.accepted).toEqual([ok.id]);
    expect(out.rejected).toEqual([
      { index: 0, id: tooLongProduct.id, code: 'VALIDATION_ERROR', message: expect.stringMatching(/^product: .*128 characters/) },
      { index: 1, id: tooLongId.id, code: 'VALIDATION_ERROR', message: expect.stringMatching(/^id: .*128 characters/) },
    ]);
    const [m] = await topic.waitFor([ok.id]);
    expect(m!.value.product).toBe(ok.product);
  });

  it('drops keys the contract does not define and carries the hold and the workspace to usage.events', async () => {
    const hold = `hold_${'a'.repeat(24)}`;
    const workspace = `ws_${'b'.repeat(24)}`;
    const e = event({ quantity: '3', hold_id: hold, workspace_id: workspace, note: 'x' });
    const out = await postText(JSON.stringify(e));
    expect(out).toEqual({ accepted: [e.id], rejected: [] });
    const [m] = await topic.waitFor([e.id]);
    expect(m!.value).toEqual({
      id: e.id, account_id: acct.id, product: 'gpt-tokens', quantity: '3.000000', timestamp: e.timestamp, hold_id: hold, workspace_id: workspace,
    });
  });
});
