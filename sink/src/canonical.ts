import { GrantKind, INT64_MAX, RatedEvent } from '@meterstream/schemas';
import { encodeRow, type RatedRow } from './row-format.js';

/**
 * The fast path of decodeRatedEvent: one regular expression over the JSON text the rater writes,
 * without JSON.parse, zod, bigint or Date, which cost several times the rest of the sink's
 * JavaScript. It only ever accepts: the plain JSON that JSON.stringify writes for the contract's
 * object (its keys in RatedEvent's order, as the rater builds it; no whitespace, no escapes in
 * strings), money with at most 12 integer digits, timestamps as toISOString() writes them.
 * Anything else returns undefined and gets JSON.parse, zod's verdict and toRow instead. For what
 * it accepts it gives exactly the row that path gives; sink/test/rows.test.ts compares the two on
 * generated messages.
 */
export function canonicalRow(text: string): RatedRow | undefined {
  const m = CANONICAL.exec(text);
  if (m === null) return undefined;
  // The captures, in FIELDS' order (named groups would cost an object per message).
  const [, event_id, account_id, product, quantity, unit, unit_price, per, currency, amount, grants, postpaid, overdraft,
    balance_after, ledger_seq, timestamp, rated_at, properties = '{}', workspace_id = ''] = m as unknown as string[];
  const event_time = dateTime64(timestamp!);
  const ratedAt = dateTime64(rated_at!);
  const fromGrants = grantsSum(grants!);
  if (event_time === undefined || ratedAt === undefined || fromGrants === undefined || !plainKeys(properties)) return undefined;
  return encodeRow({
    account_id: account_id!, event_id: event_id!, product: product!, currency: currency!, unit: unit!,
    quantity: micros(quantity!), unit_price: micros(unit_price!), per: per!, amount: micros(amount!), from_grants: fromGrants,
    postpaid: micros(postpaid!), overdraft: micros(overdraft!), balance_after: signedMicros(balance_after!), ledger_seq: ledger_seq!,
    grants: grants!, properties, event_time, rated_at: ratedAt, workspace_id,
  });
}

// A JSON string's content that needs no unescaping: no quote, backslash or control character.
const PLAIN = String.raw`[^"\\\u0000-\u001f]*`;
// The contract's Id.
const ID = '[A-Za-z0-9._:-]{1,128}';
// MoneyString with at most 12 integer digits, so that its micro-units always fit an Int64.
const MONEY = String.raw`\d{1,12}(?:\.\d{1,6})?`;
const SIGNED_MONEY = String.raw`-?\d{1,12}\.\d{6}`;
// A positive safe integer as JSON writes it.
const COUNT = String.raw`[1-9]\d{0,14}`;
// What toISOString() writes, hours, minutes and seconds in range; the day is checked apart.
const ISO = String.raw`\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z`;
const oneOf = (values: readonly string[]): string => `(?:${values.map((v) => v.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})`;
const GRANT = `\\{"grant_id":"${PLAIN}","kind":"${oneOf(GrantKind.options)}","amount":"${MONEY}"\\}`;
const PAIR = `"${PLAIN}":"${PLAIN}"`;
// Each field as JSON.stringify writes it, its value captured (a string's without the quotes).
const FIELDS: [key: keyof typeof RatedEvent.shape, value: string][] = [
  ['event_id', `"(${ID})"`], ['account_id', `"(${ID})"`], ['product', `"(${ID})"`], ['quantity', `"(${MONEY})"`],
  ['unit', `"(${oneOf(RatedEvent.shape.unit.options)})"`], ['unit_price', `"(${MONEY})"`], ['per', `(${COUNT})`],
  ['currency', `"(${oneOf(RatedEvent.shape.currency.options)})"`], ['amount', `"(${MONEY})"`],
  ['grants', `(\\[(?:${GRANT}(?:,${GRANT})*)?\\])`], ['postpaid', `"(${MONEY})"`], ['overdraft', `"(${MONEY})"`],
  ['balance_after', `"(${SIGNED_MONEY})"`], ['ledger_seq', `(${COUNT})`], ['timestamp', `"(${ISO})"`], ['rated_at', `"(${ISO})"`],
];
const CANONICAL = new RegExp(`^\\{${FIELDS.map(([key, value]) => `"${key}":${value}`).join(',')}`
  + `(?:,"properties":(\\{(?:${PAIR}(?:,${PAIR})*)?\\}))?(?:,"workspace_id":"(ws_[0-9a-f]{24})")?(?:,"hold_id":"hold_[0-9a-f]{24}")?\\}$`);
const AMOUNT_KEY = '"amount":"';
const PROPERTY_KEY = /"([^"]*)":"[^"]*"/g;
// An array index, which a JS object orders before its other keys.
const INDEX_KEY = /^(?:0|[1-9]\d*)$/;
const PAD = ['000000', '00000', '0000', '000', '00', '0', ''];

/** A MoneyString as the digits of its micro-units, without going through a number. */
function micros(v: string): string {
  const dot = v.indexOf('.');
  const digits = dot === -1 ? v + PAD[0] : v.slice(0, dot) + v.slice(dot + 1) + PAD[v.length - dot - 1];
  let i = 0;
  while (i < digits.length - 1 && digits.charCodeAt(i) === 48) i++;
  return i === 0 ? digits : digits.slice(i);
}

function signedMicros(v: string): string {
  if (v.charCodeAt(0) !== 45) return micros(v); // '-'
  const digits = micros(v.slice(1));
  return digits === '0' ? digits : `-${digits}`;
}

/** The grants' micro-units added up, or undefined past Int64 (toRow then says why). */
function grantsSum(grants: string): string | undefined {
  const amounts: string[] = [];
  // A grant id holds no quote, so the key is found only where it is one.
  for (let at = grants.indexOf(AMOUNT_KEY); at !== -1; at = grants.indexOf(AMOUNT_KEY, at)) {
    at += AMOUNT_KEY.length;
    amounts.push(micros(grants.slice(at, grants.indexOf('"', at))));
  }
  if (amounts.length <= 1) return amounts[0] ?? '0';
  const sum = amounts.reduce((total, m) => total + BigInt(m), 0n);
  return sum > INT64_MAX ? undefined : sum.toString();
}

/**
 * Whether the properties' text is what JSON.stringify would write again for what JSON.parse and
 * zod make of it: no repeated key (JSON.parse keeps the last), no array-index key (a JS object
 * puts those first) and no __proto__ (which zod drops).
 */
function plainKeys(properties: string): boolean {
  if (properties === '{}') return true;
  const keys = new Set<string>();
  for (const [, key] of properties.matchAll(PROPERTY_KEY)) {
    if (key === '__proto__' || INDEX_KEY.test(key!) || keys.has(key!)) return false;
    keys.add(key!);
  }
  return true;
}

/** toISOString() text of a real calendar day within DateTime64's range, as 'YYYY-MM-DD hh:mm:ss.sss'. */
function dateTime64(iso: string): string | undefined {
  const year = number(iso, 0, 4);
  const month = number(iso, 5, 7);
  const day = number(iso, 8, 10);
  if (year < 1900 || year > 2299 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  return `${iso.slice(0, 10)} ${iso.slice(11, 23)}`;
}

function number(s: string, from: number, to: number): number {
  let n = 0;
  for (let i = from; i < to; i++) n = n * 10 + s.charCodeAt(i) - 48;
  return n;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
}
