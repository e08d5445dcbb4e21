import fc from 'fast-check';
import { ID_MAX_LENGTH } from '@meterstream/schemas';
import type { RawResponse } from './raw-http.js';

/**
 * Generators of malformed and borderline HTTP requests for the ingest API (types, sizes,
 * encodings, escapes, numbers at every limit), and the judge of what it answers.
 */

/** What the fuzz knows of the server it runs against. */
export interface FuzzWorld {
  adminKey: string;
  accounts: { id: string; key: string }[];
  /** Priced products, the longest id and an extreme price among them. */
  products: string[];
  nowMs: number;
}

export interface FuzzRequest {
  method: string;
  target: string;
  headers: [string, string][];
  body: string | Uint8Array;
  /** Exact bytes to send instead of a request built from the fields above (framing cases). */
  raw?: string;
}

const DAY = 86_400_000;

// ---- JSON text of values, spelled in every way JSON allows -----------------------------------

/** null, except once in `oneIn` draws (fast-check's option is the reverse: null once in `freq`). */
const rarely = <T>(arb: fc.Arbitrary<T>, oneIn: number): fc.Arbitrary<T | null> =>
  fc.oneof({ weight: oneIn - 1, arbitrary: fc.constant(null) }, { weight: 1, arbitrary: arb });

const escapeUnit = (code: number) => `\\u${code.toString(16).padStart(4, '0')}`;

/** A JSON string literal of s: plain, every code unit escaped, or only the first. */
const spelled = (s: string) =>
  fc.constantFrom(0, 0, 0, 1, 2).map((mode) => {
    if (mode === 0 || s === '') return JSON.stringify(s);
    if (mode === 1) return `"${Array.from({ length: s.length }, (_, i) => escapeUnit(s.charCodeAt(i))).join('')}"`;
    return `"${escapeUnit(s.charCodeAt(0))}${JSON.stringify(s.slice(1)).slice(1)}`;
  });

const digits = (min: number, max: number) => fc.string({ unit: fc.constantFrom(...'0123456789'), minLength: min, maxLength: max });
const decimal = fc.tuple(digits(1, 20), fc.option(digits(1, 8))).map(([i, f]) => (f === null ? i : `${i}.${f}`));

/** Number texts at and past every limit: 6/7 places, exponents, int8 and double edges. */
const NUMBER_LITERALS = [
  '0', '1', '0.000001', '0.0000001', '1e-7', '1e-6', '5e-5', '1E3', '1e+3', '1.5e3', '-0', '-1', '-0.000001',
  '0.1000000000000000055', '0.10000000000000000000000001', '999999999.999999', '1000000000', '999999999999.999999',
  '999999999999.9999999', '1000000000000', '9999999999999', '99999999999999', '999999999999999', '9999999999999999',
  '9223372036854775807', '9223372036854775808', '18446744073709551616', '1e18', '1e21', '1e308', '1e309', '1E400',
  '-1e400', '0.0', '1.000000', '1.0000000', '2e-324', '4.9e-324', '123456789012.1234565',
];
/** Text that is not a JSON number, sent as a bare literal: the whole text is then not JSON. */
const NOT_NUMBERS = ['00', '01', '1.', '.5', '+1', 'NaN', 'Infinity', '-Infinity', '0x10', '1_000'];

const numberText = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...NUMBER_LITERALS) },
  { weight: 2, arbitrary: decimal },
  { weight: 1, arbitrary: fc.constantFrom(...NOT_NUMBERS) },
);
/** A number or its text as a string, or another type. */
const numeric = (typical: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 20, arbitrary: typical },
    { weight: 3, arbitrary: numberText },
    { weight: 3, arbitrary: fc.oneof(numberText, fc.constantFrom(' 1', '1 ', '١', '１', '', '1,5', '1e')).chain(spelled) },
    { weight: 1, arbitrary: fc.constantFrom('true', 'null', '[]', '{}', '[1]') },
  );

const idUnit = fc.constantFrom(...'ABCxyz0189._:-');
const idOfLength = (n: number) => fc.string({ unit: idUnit, minLength: n, maxLength: n });
const BAD_IDS = ['', ' ', 'a b', 'ä', 'a\u0000', '\ud800', 'x\udc00', 'a/b', '../x', 'ＡＢ', 'a\nb', 'a"b', 'a\\b', 'x'.repeat(1000)];
/** A JSON value for an id: mostly one from `typical`, else at the length limit, malformed or not a string. */
const idText = (typical: fc.Arbitrary<string>) =>
  fc.oneof(
    { weight: 30, arbitrary: typical.chain(spelled) },
    { weight: 1, arbitrary: fc.constantFrom(ID_MAX_LENGTH - 1, ID_MAX_LENGTH, ID_MAX_LENGTH + 1).chain(idOfLength).chain(spelled) },
    { weight: 1, arbitrary: fc.constantFrom(...BAD_IDS).chain(spelled) },
    { weight: 1, arbitrary: fc.constantFrom('12', 'null', 'true', '[]', '{}', '["a"]') },
  );

const isoAt = (ms: number, zone: string) => {
  const text = new Date(ms + (zone === 'Z' ? 0 : zone.startsWith('+') ? 1 : -1) * (Number(zone.slice(1, 3)) * 3_600_000 + Number(zone.slice(4)) * 60_000)).toISOString();
  return zone === 'Z' ? text : text.replace('Z', zone);
};
const timestampText = (nowMs: number) =>
  fc.oneof(
    { weight: 24, arbitrary: fc.integer({ min: -3_600_000, max: 0 }).map((o) => JSON.stringify(isoAt(nowMs + o, 'Z'))) },
    {
      weight: 3,
      arbitrary: fc
        .tuple(fc.constantFrom(-36 * DAY, -35 * DAY + 60_000, -34 * DAY, -1, 4 * 60_000, 6 * 60_000, 365 * DAY), fc.constantFrom('Z', '+14:00', '-12:00', '+05:30'))
        .map(([o, zone]) => JSON.stringify(isoAt(nowMs + o, zone))),
    },
    {
      weight: 1,
      arbitrary: fc.constantFrom(
        '2026-02-30T00:00:00Z', '2026-11-28T23:59:60Z', '2026-11-28T24:00:00Z', '2026-11-28', '2026-11-28T10:00:00',
        'yesterday', '', '+275760-09-13T00:00:00.000Z', '-000001-01-01T00:00:00Z', '2026-11-28T10:00:00.1234567891234Z',
        '2026-11-28t10:00:00z', '2026-11-28T10:00:00+2400',
      ).chain(spelled),
    },
    { weight: 1, arbitrary: fc.constantFrom(String(nowMs), 'null', 'true', '{}') },
  );

const PROPERTY_EDGES = [
  '{"k":"a\\u0000b"}', '{"k":"\\ud800"}', '{"k":"\\udc00x"}', '{"\\u0000":"v"}', '{"\\udfff":"v"}', '{"k":"\\ud83d\\ude00"}',
  '{"k":1}', '{"k":null}', '{"k":{"n":"v"}}', '{"k":["v"]}', '[]', '"x"', 'null', '{"__proto__":"x"}', '{"constructor":"x"}',
  '{"__proto__":{"polluted":"1"}}', '{"k":"v","k":"w"}', '{"k":"\\\\u0000"}',
  JSON.stringify(Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`k${i}`, 'v']))),
  JSON.stringify(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`k${i}`, 'v']))),
  JSON.stringify({ k: 'v'.repeat(1024) }), JSON.stringify({ k: 'v'.repeat(1025) }),
  JSON.stringify({ ['k'.repeat(64)]: 'v' }), JSON.stringify({ ['k'.repeat(65)]: 'v' }),
  JSON.stringify({ a: 'v'.repeat(1024), b: 'v'.repeat(1024), c: 'v'.repeat(1024), d: 'v'.repeat(1020) }),
  JSON.stringify({ a: 'v'.repeat(1024), b: 'v'.repeat(1024), c: 'v'.repeat(1024), d: 'v'.repeat(1024) }),
];
const propertiesText = fc.oneof(
  { weight: 3, arbitrary: fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 }), { maxKeys: 4 }).map((d) => JSON.stringify(d)) },
  { weight: 1, arbitrary: fc.dictionary(fc.string({ unit: 'binary', maxLength: 8 }), fc.string({ unit: 'binary', maxLength: 30 }), { maxKeys: 3 }).map((d) => JSON.stringify(d)) },
  { weight: 2, arbitrary: fc.constantFrom(...PROPERTY_EDGES) },
);

const QUANTITY_KEY = fc.oneof(
  { weight: 12, arbitrary: fc.constant('"quantity"') },
  { weight: 3, arbitrary: fc.constantFrom('"quan\\u0074ity"', '"\\u0071uantity"') },
  { weight: 1, arbitrary: fc.constant('"QUANTITY"') },
);
const EXTRA_MEMBERS = [
  '"hold_id":"h1"', '"extra":1', '"__proto__":{"x":1}', '"id":"dup-id"', '"quantity":"1"', '"quan\\u0074ity":0.1000000000000000055',
  '"quantity":1e-7', '"account_id":"acct_nobody"', '"properties":{"k":"\\u0000"}', '"":""',
];

/** The text of one event object: mostly valid (of `account` if given), each field sometimes at or past a limit. */
export function eventText(world: FuzzWorld, account?: string): fc.Arbitrary<string> {
  const anyAccount = fc.oneof({ weight: 10, arbitrary: fc.constantFrom(...world.accounts.map((a) => a.id)) }, { weight: 1, arbitrary: fc.constant('acct_nobody') });
  const product = fc.oneof({ weight: 8, arbitrary: fc.constantFrom(...world.products, 'fz-unpriced') }, { weight: 1, arbitrary: idOfLength(5) });
  return fc
    .record({
      id: idText(fc.string({ unit: idUnit, minLength: 1, maxLength: 24 }).map((s) => `fz-${s}`)),
      account_id: idText(account === undefined ? anyAccount : fc.oneof({ weight: 8, arbitrary: fc.constant(account) }, { weight: 1, arbitrary: anyAccount })),
      product: idText(product),
      quantity: numeric(fc.integer({ min: 0, max: 5000 }).map(String)),
      timestamp: timestampText(world.nowMs),
      properties: rarely(propertiesText, 3),
      quantityKey: QUANTITY_KEY,
      drop: rarely(fc.constantFrom('id', 'account_id', 'product', 'quantity', 'timestamp'), 12),
      extra: rarely(fc.constantFrom(...EXTRA_MEMBERS), 8),
      space: fc.constantFrom('', '', '', ' ', ' ', '\t', '\n', '\r\n'),
    })
    .map((e) => {
      const members = [
        ['"id"', e.id], ['"account_id"', e.account_id], ['"product"', e.product], [e.quantityKey, e.quantity], ['"timestamp"', e.timestamp],
        ...(e.properties === null ? [] : [['"properties"', e.properties]]),
      ]
        .filter(([key]) => key !== `"${e.drop}"` && !(e.drop === 'quantity' && key === e.quantityKey))
        .map(([key, value]) => `${key}:${e.space}${value}`);
      if (e.extra !== null) members.push(e.extra);
      return `{${e.space}${members.join(`,${e.space}`)}${e.space}}`;
    });
}

const GARBAGE = [
  '', ' ', 'null', '1', '"x"', 'true', '[[]]', '[null]', '{}', '[{}]', '\ufeff{}', '{"a":1}}', '[1,]', "{'a':1}",
  '['.repeat(20_000), '{"a":'.repeat(5_000), `[${'1,'.repeat(40_000)}1]`, `"${'x'.repeat(70_000)}"`,
  '{"id":"x","account_id":"y","product":"z","quantity":1,"timestamp":"2026-01-01T00:00:00Z"', '\u0000', '\ud800',
];
const garbage = fc.oneof(
  fc.constantFrom(...GARBAGE),
  fc.string({ unit: 'binary', maxLength: 200 }),
  fc.uint8Array({ maxLength: 200 }),
);

/** A body for POST /v1/events and the content type it claims to be. */
function eventsBody(world: FuzzWorld, account?: string): fc.Arbitrary<{ body: string | Uint8Array; type: string }> {
  const event = eventText(world, account);
  // A line break inside an event's whitespace splits it into two bad NDJSON lines: now and then only.
  const ndjsonLine = fc.oneof(
    { weight: 10, arbitrary: event.map((e) => e.replace(/\r?\n/g, ' ')) },
    { weight: 1, arbitrary: event },
    { weight: 1, arbitrary: fc.constantFrom('', '  ', '{"id":', 'garbage', '[]', '\r', '{}') },
  );
  return fc.oneof(
    { weight: 3, arbitrary: event.map((body) => ({ body, type: 'application/json' })) },
    { weight: 4, arbitrary: fc.array(event, { maxLength: 24 }).map((a) => ({ body: `[${a.join(',')}]`, type: 'application/json' })) },
    { weight: 3, arbitrary: fc.tuple(fc.array(ndjsonLine, { maxLength: 24 }), fc.constantFrom('\n', '\r\n')).map(([lines, nl]) => ({ body: lines.join(nl), type: 'application/x-ndjson' })) },
    { weight: 1, arbitrary: garbage.map((body) => ({ body, type: 'application/json' })) },
    { weight: 1, arbitrary: event.map((e) => ({ body: new Uint8Array(Buffer.from(`\ufeff${e}`, 'utf16le')), type: 'application/json; charset=utf-16' })) },
  );
}

const CONTENT_TYPES = [
  'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json; charset=latin1', 'application/x-ndjson; charset=utf-8',
  'text/plain', 'text/plain; charset=utf-8', '', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded',
  'application/json, text/plain', 'application/jsonx', 'application/*', ';', 'application/json;', 'application/json; charset="',
];

/** Who sends: an account's key (and its account), the admin key, or a wrong or missing key. */
function sender(world: FuzzWorld): fc.Arbitrary<{ auth: [string, string][]; account?: string }> {
  const keys = world.accounts.map((a) => a.key);
  const bearer = (value: string) => [['Authorization', value]] as [string, string][];
  return fc.oneof(
    { weight: 8, arbitrary: fc.constantFrom(...world.accounts).map((a) => ({ auth: bearer(`Bearer ${a.key}`), account: a.id })) },
    { weight: 3, arbitrary: fc.constant({ auth: bearer(`Bearer ${world.adminKey}`) }) },
    {
      weight: 2,
      arbitrary: fc
        .constantFrom('', 'Bearer', 'Bearer ', 'Basic YTpi', 'Bearer msk_unknown', 'bearer  msk_x  ', `Bearer ${keys[0]}x`, 'Bearer a b', `Bearer ${'k'.repeat(5000)}`, 'Bearer ü')
        .map((v) => ({ auth: bearer(v) })),
    },
    { weight: 1, arbitrary: fc.constant({ auth: [] as [string, string][] }) },
  );
}

const EXTRA_HEADERS: [string, string][] = [
  ['Content-Encoding', 'gzip'], ['Expect', '100-continue'], ['Accept', '*/*'], ['Accept', 'text/html'],
  ['X-Forwarded-For', '1.2.3.4'], ['Connection', 'keep-alive'], ['Content-Language', 'ü'], ['X-Empty', ''],
  ['Accept-Encoding', 'gzip, br'], ['Cookie', 'a=b'], ['Content-Type', 'application/json'], ['Authorization', 'Bearer x'],
  ['Transfer-Encoding', 'chunked'], ['Transfer-Encoding', 'gzip, chunked'], ['Host', 'other'],
];
const extraHeaders = fc.oneof(
  { weight: 6, arbitrary: fc.constant([] as [string, string][]) },
  { weight: 3, arbitrary: fc.subarray(EXTRA_HEADERS, { maxLength: 3 }) },
  { weight: 1, arbitrary: fc.integer({ min: 50, max: 300 }).map((n) => Array.from({ length: n }, (_, i) => [`X-H${i}`, 'v'] as [string, string])) },
);

/** Path segments for ids in URLs, percent-encoded or not, valid or not. */
function pathId(world: FuzzWorld): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 6, arbitrary: fc.constantFrom(...world.accounts.map((a) => a.id), ...world.products) },
    { weight: 2, arbitrary: fc.constantFrom(ID_MAX_LENGTH - 1, ID_MAX_LENGTH, ID_MAX_LENGTH + 1, 300).chain(idOfLength) },
    { weight: 2, arbitrary: fc.constantFrom(...BAD_IDS.filter((s) => !/[\ud800-\udfff]/.test(s))).map(encodeURIComponent) },
    { weight: 2, arbitrary: fc.constantFrom('%', '%zz', '%00', '%E0%A4%A', '%2F', '%ED%A0%80', '..', '.', '%2e%2e', 'a;b', 'x?y', '%C0%AF', '%FF') },
  );
}

const query = (pairs: [string, fc.Arbitrary<string>][]) =>
  fc.tuple(...pairs.map(([name, value]) => fc.option(value.map((v) => `${name}=${v}`), { freq: 2 }))).map((parts) => {
    const present = parts.filter((p): p is string => p !== null);
    return present.length === 0 ? '' : `?${present.join('&')}`;
  });

const cursorText = fc.oneof(
  fc.tuple(fc.constantFrom('1', '9223372036854775807', '9223372036854775808', '9999999999999999999', '-1', '1e3', ''), fc.constantFrom('e', 'x'.repeat(ID_MAX_LENGTH), 'a\u0000', '\ud800', ''))
    .map((v) => Buffer.from(JSON.stringify(v)).toString('base64url')),
  fc.constantFrom('', 'garbage', '%', '%FF', 'W10', 'bnVsbA', 'x'.repeat(300), '%E0%A4%A'),
);

/** JSON text of an object from the given members, each member sometimes left out or of another type. */
function objectText(members: [string, fc.Arbitrary<string>][]): fc.Arbitrary<string> {
  return fc
    // fast-check's option: left out once in 10 draws.
    .tuple(...members.map(([key, value]) => fc.option(value.map((v) => `"${key}":${v}`), { freq: 10 })))
    .map((parts) => `{${parts.filter((p): p is string => p !== null).join(',')}}`);
}

const money = numeric(fc.constantFrom('"10"', '"0.5"', '"999999999.999999"', '"1000000000"', '"999999999999999"', '"0.0000001"', '10', '1e-7'));
const anyString = (...typical: string[]) => fc.oneof(fc.constantFrom(...typical).chain(spelled), fc.string({ maxLength: 20 }).chain(spelled), fc.constantFrom('1', 'null', '[]'));

/** A request to one of the other routes: mostly the method and body the route takes, sometimes not. */
function routeRequest(world: FuzzWorld): fc.Arbitrary<FuzzRequest> {
  const id = pathId(world);
  const accountBody = objectText([
    ['email', anyString('a@example.com', 'not-an-email', `${'x'.repeat(300)}@example.com`, 'a\u0000@example.com', '\ud800@example.com')],
    ['currency', anyString('USD', 'EUR', 'usd')], ['billing_mode', anyString('prepaid', 'postpaid')],
  ]);
  const grantBody = objectText([
    ['kind', anyString('gift', 'purchased', 'promotional', 'allowance', 'other')], ['amount', money],
    ['expires_at', timestampText(world.nowMs + 30 * DAY)], ['priority', numeric(fc.constantFrom('0', '100', '1000', '1001', '-1', '1.5'))],
  ]);
  const priceBody = objectText([
    ['unit', anyString('token', 'second', 'request', 'byte')], ['unit_price', money],
    ['per', numeric(fc.constantFrom('1', '1000', '1000000000', '1000000001', '0', '-1', '1.5'))], ['currency', anyString('USD', 'EUR', 'GBP')],
  ]);
  const summaryBody = objectText([['account_id', idText(fc.constantFrom(...world.accounts.map((a) => a.id)))]]);
  const noBody = fc.constant('');
  const limit = fc.constantFrom('', '0', '1', '200', '201', '-1', '1e2', 'abc', '9'.repeat(30), '1.5');
  // [method, target, body] as each route takes them.
  const routes: fc.Arbitrary<[string, string, string | Uint8Array]>[] = [
    fc.tuple(fc.constant('POST'), fc.constant('/v1/accounts'), accountBody),
    fc.tuple(fc.constant('POST'), id.map((i) => `/v1/accounts/${i}/grants`), grantBody),
    fc.tuple(fc.constant('GET'), id.map((i) => `/v1/accounts/${i}/balance`), noBody),
    fc.tuple(fc.constant('GET'), fc.tuple(id, query([['limit', limit], ['cursor', cursorText]])).map(([i, q]) => `/v1/accounts/${i}/transactions${q}`), noBody),
    fc.tuple(fc.constant('PUT'), id.map((i) => `/v1/prices/${i}`), priceBody),
    fc.tuple(fc.constant('GET'), query([['q', fc.constantFrom('', 'fz', '%', '_', '%25', '%00', 'x'.repeat(200), '%E0%A4%A')], ['currency', fc.constantFrom('USD', 'EUR', 'GBP', '')]]).map((q) => `/v1/prices${q}`), noBody),
    fc.tuple(fc.constant('POST'), fc.constant('/v1/credits/projections/usage-summary'), summaryBody),
    fc.tuple(fc.constantFrom('GET', 'POST'), id.map((i) => `/v1/accounts/${i}/keys`), noBody),
    fc.tuple(fc.constantFrom('DELETE', 'POST'), fc.tuple(id, id).map(([a, k]) => `/v1/accounts/${a}/keys/${k}`), noBody),
    fc.tuple(fc.constant('POST'), fc.tuple(id, id).map(([a, k]) => `/v1/accounts/${a}/keys/${k}/rotate`), noBody),
    fc.tuple(fc.constant('GET'), fc.constantFrom('/openapi.json', '/healthz', '/', '/v1', '/v1/events/', '//v1//events', '/V1/EVENTS', '/v1/events%00', '/v1/accounts/', '*', `/${'a/'.repeat(3000)}`), noBody),
  ];
  return fc
    .record({
      route: fc.oneof(...routes),
      method: rarely(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'), 6),
      body: rarely(fc.oneof(accountBody, grantBody, priceBody, summaryBody, garbage), 8),
      auth: fc.oneof({ weight: 3, arbitrary: fc.constant([['Authorization', `Bearer ${world.adminKey}`]] as [string, string][]) }, { weight: 2, arbitrary: sender(world).map((s) => s.auth) }),
      type: rarely(fc.constantFrom(...CONTENT_TYPES), 8),
      // POST .../grants requires one; a key reused with another body answers 409.
      idempotencyKey: fc.option(fc.oneof(fc.uuid(), fc.constantFrom('k', '', ' ', 'x'.repeat(256))), { freq: 5 }),
      extra: extraHeaders,
    })
    .map(({ route: [method, target, routeBody], ...r }) => {
      const body = r.body ?? routeBody;
      const type = r.type ?? (body === '' ? null : 'application/json');
      const key: [string, string][] = r.idempotencyKey === null ? [] : [['Idempotency-Key', r.idempotencyKey]];
      return { method: r.method ?? method, target, headers: [...r.auth, ...(type === null ? [] : [['Content-Type', type] as [string, string]]), ...key, ...r.extra], body };
    });
}

/** A POST /v1/events, the most likely route to be sent anything. */
function eventsRequest(world: FuzzWorld): fc.Arbitrary<FuzzRequest> {
  return sender(world).chain(({ auth, account }) =>
    fc
      .record({
        target: fc.oneof({ weight: 12, arbitrary: fc.constant('/v1/events') }, { weight: 1, arbitrary: fc.constantFrom('/v1/events?x=1', '/v1/events?', '/v1/events#f', '/v1/events/../events') }),
        body: eventsBody(world, account),
        type: rarely(fc.constantFrom(...CONTENT_TYPES), 8),
        extra: extraHeaders,
      })
      .map((r) => ({ method: 'POST', target: r.target, headers: [...auth, ['Content-Type', r.type ?? r.body.type], ...r.extra], body: r.body.body })),
  );
}

/** Requests the HTTP parser itself must refuse or survive. */
const RAW_REQUESTS = [
  'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n',
  'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n',
  'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef',
  'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
  'POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\nzz\r\n{}\r\n0\r\n\r\n',
  'POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n',
  'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n',
  'POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Type: application/json\r\n\r\n{}garbage-after-the-body',
  'GET /healthz HTTP/1.0\r\n\r\n',
  'GET /healthz HTTP/1.1\r\n\r\n',
  'GET /healthz HTTP/2.0\r\nHost: x\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n b\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Nul: a\u0000b\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nHost: x\r\n: empty-name\r\n\r\n',
  'GET /v1 /events HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET * HTTP/1.1\r\nHost: x\r\n\r\n',
  'OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n',
  'CONNECT x:80 HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
  'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n',
  'get /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
  'G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
  `${'M'.repeat(100)} /healthz HTTP/1.1\r\nHost: x\r\n\r\n`,
  'PROPFIND /v1/events HTTP/1.1\r\nHost: x\r\n\r\n',
  'GET /v1/accounts/%E0%A4%A/balance HTTP/1.1\r\nHost: x\r\n\r\n',
  `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
  `GET /${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`,
  'GET /héalthz HTTP/1.1\r\nHost: x\r\n\r\n',
  '\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n',
  'GARBAGE\r\n\r\n',
  '\u0016\u0003\u0001\u0000\u00a5\u0001\u0000\u0000\u00a1\u0003\u0003',
];

/** Any request: mostly events, the other routes, and raw bytes for the HTTP parser. */
export function fuzzRequest(world: FuzzWorld): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(
    { weight: 6, arbitrary: eventsRequest(world) },
    { weight: 3, arbitrary: routeRequest(world) },
    { weight: 1, arbitrary: fc.constantFrom(...RAW_REQUESTS).map((raw) => ({ method: raw.split(' ')[0]!, target: '', headers: [], body: '', raw })) },
  );
}

/** The bytes of a request; with `Connection: close`, so that one response ends the exchange. */
export function requestBytes(r: FuzzRequest): Buffer {
  if (r.raw !== undefined) return Buffer.from(r.raw, 'latin1');
  const body = typeof r.body === 'string' ? Buffer.from(r.body, 'utf8') : Buffer.from(r.body);
  const chunked = r.headers.some(([name, value]) => name.toLowerCase() === 'transfer-encoding' && /chunked\s*$/i.test(value));
  const head = [
    `${r.method} ${r.target} HTTP/1.1`, 'Host: fuzz', 'Connection: close',
    ...r.headers.filter(([name]) => name.toLowerCase() !== 'connection').map(([name, value]) => `${name}: ${value}`),
    ...(chunked ? [] : [`Content-Length: ${body.length}`]),
  ].join('\r\n');
  const payload = chunked ? Buffer.concat([Buffer.from(`${body.length.toString(16)}\r\n`), body, Buffer.from('\r\n0\r\n\r\n')]) : body;
  return Buffer.concat([Buffer.from(`${head}\r\n\r\n`, 'utf8'), payload]);
}

/** Why an answer breaks the contract (a 2xx, or a 4xx with the envelope), or undefined when it keeps it. */
export function judge(r: FuzzRequest, res: RawResponse | null): string | undefined {
  if (res === null) return 'the connection closed without an answer';
  if (res.status >= 200 && res.status < 300) return undefined;
  if (res.status < 400 || res.status >= 500) return `answered ${res.status}: ${res.body.slice(0, 300)}`;
  if (r.method === 'HEAD' && r.raw === undefined) return undefined; // no body to judge
  if (!/^application\/json/.test(res.headers['content-type'] ?? '')) return `answered ${res.status} as ${res.headers['content-type']}: ${res.body.slice(0, 300)}`;
  let body: unknown;
  try {
    body = JSON.parse(res.body);
  } catch {
    return `answered ${res.status} with a body that is not JSON: ${res.body.slice(0, 300)}`;
  }
  const error = (body as { error?: { code?: unknown; message?: unknown } }).error;
  const isEnvelope =
    typeof body === 'object' && body !== null && Object.keys(body).length === 1 && typeof error === 'object' && error !== null &&
    Object.keys(error).length === 2 && typeof error.code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(error.code) && typeof error.message === 'string';
  return isEnvelope ? undefined : `answered ${res.status} outside the envelope: ${res.body.slice(0, 300)}`;
}
