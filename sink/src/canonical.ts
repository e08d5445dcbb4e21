import { GrantKind, RatedEvent } from '@meterstream/schemas';
import { encodeRow, INT64_MAX, type RatedRow } from './row-format.js';

/**
 * The fast path of decodeRatedEvent: reads the JSON text the rater writes in one pass, without
 * JSON.parse, zod, bigint or Date, which cost several times the rest of the sink's JavaScript.
 * It only ever accepts: the plain JSON that JSON.stringify writes for the contract's object (its
 * keys in RatedEvent's order, as the rater builds it; no whitespace, no escapes in strings,
 * integers without sign, fraction or exponent), money with at most 12 integer digits, timestamps
 * as toISOString() writes them. Anything else returns undefined and gets JSON.parse, zod's
 * verdict and toRow instead. For what it accepts it gives exactly the row that path gives;
 * sink/test/rows.test.ts compares the two on generated messages.
 */
export function canonicalRow(text: string): RatedRow | undefined {
  const c = new Cursor(text);
  const event_id = c.key('{"event_id":') ? id(c.string()) : undefined;
  const account_id = c.key(',"account_id":') ? id(c.string()) : undefined;
  const product = c.key(',"product":') ? id(c.string()) : undefined;
  const quantity = c.key(',"quantity":') ? micros(c.string()) : undefined;
  const unit = c.key(',"unit":') ? oneOf(UNITS, c.string()) : undefined;
  const unit_price = c.key(',"unit_price":') ? micros(c.string()) : undefined;
  const per = c.key(',"per":') ? c.positiveInt() : undefined;
  const currency = c.key(',"currency":') ? oneOf(CURRENCIES, c.string()) : undefined;
  const amount = c.key(',"amount":') ? micros(c.string()) : undefined;
  const grantsAt = c.key(',"grants":') ? c.pos : -1;
  const from_grants = grantsAt === -1 ? undefined : grants(c);
  const grantsJson = text.slice(grantsAt, c.pos);
  const postpaid = c.key(',"postpaid":') ? micros(c.string()) : undefined;
  const overdraft = c.key(',"overdraft":') ? micros(c.string()) : undefined;
  const balance_after = c.key(',"balance_after":') ? signedMicros(c.string()) : undefined;
  const ledger_seq = c.key(',"ledger_seq":') ? c.positiveInt() : undefined;
  const event_time = c.key(',"timestamp":') ? dateTime64(c.string()) : undefined;
  const rated_at = c.key(',"rated_at":') ? dateTime64(c.string()) : undefined;
  const propertiesAt = c.key(',"properties":') ? c.pos : -1;
  const props = propertiesAt === -1 ? '{}' : properties(c) ? text.slice(propertiesAt, c.pos) : undefined;
  if (event_id === undefined || account_id === undefined || product === undefined || quantity === undefined || unit === undefined
    || unit_price === undefined || per === undefined || currency === undefined || amount === undefined || from_grants === undefined
    || postpaid === undefined || overdraft === undefined || balance_after === undefined || ledger_seq === undefined
    || event_time === undefined || rated_at === undefined || props === undefined || !c.key('}') || c.pos !== text.length) {
    return undefined;
  }
  return encodeRow({
    account_id, event_id, product, currency, unit, quantity, unit_price, per, amount, from_grants,
    postpaid, overdraft, balance_after, ledger_seq, grants: grantsJson, properties: props, event_time, rated_at,
  });
}

const CURRENCIES = new Set<string | undefined>(RatedEvent.shape.currency.options);
const UNITS = new Set<string | undefined>(RatedEvent.shape.unit.options);
const GRANT_KINDS = new Set<string | undefined>(GrantKind.options);
// The contract's Id: 1 to 128 of these characters.
const ID = /^[A-Za-z0-9._:-]+$/;
// What toISOString() writes, hours, minutes and seconds in range; the day is checked below.
const ISO_UTC_MS = /^\d{4}-\d\d-\d\dT(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d\.\d{3}Z$/;
// An array index, which a JS object orders before its other keys.
const INDEX_KEY = /^(?:0|[1-9]\d*)$/;
const PAD = ['000000', '00000', '0000', '000', '00', '0', ''];
const QUOTE = 34;
const BACKSLASH = 92;

class Cursor {
  pos = 0;
  constructor(readonly text: string) {}

  /** Consumes the literal text if it comes next. */
  key(literal: string): boolean {
    if (!this.text.startsWith(literal, this.pos)) return false;
    this.pos += literal.length;
    return true;
  }

  /** A string without escapes or control characters (which JSON.parse would have to decode or refuse). */
  string(): string | undefined {
    const t = this.text;
    const start = this.pos + 1;
    if (t.charCodeAt(this.pos) !== QUOTE) return undefined;
    const end = t.indexOf('"', start);
    if (end === -1) return undefined;
    for (let i = start; i < end; i++) {
      const ch = t.charCodeAt(i);
      if (ch === BACKSLASH || ch < 32) return undefined;
    }
    this.pos = end + 1;
    return t.slice(start, end);
  }

  /** 1 to 15 digits without a leading zero: a positive safe integer, as String(JSON.parse(...)) gives it. */
  positiveInt(): string | undefined {
    const t = this.text;
    const start = this.pos;
    let end = start;
    while (end < t.length && isDigit(t.charCodeAt(end))) end++;
    if (end === start || end - start > 15 || t.charCodeAt(start) === 48) return undefined;
    this.pos = end;
    return t.slice(start, end);
  }
}

/** Consumes the grants array, checking each grant; returns the sum of their micro-units. */
function grants(c: Cursor): string | undefined {
  if (!c.key('[')) return undefined;
  if (c.key(']')) return '0';
  let sum = 0n;
  let first: string | undefined;
  let n = 0;
  do {
    if (!c.key('{"grant_id":') || c.string() === undefined || !c.key(',"kind":') || oneOf(GRANT_KINDS, c.string()) === undefined) return undefined;
    const m = c.key(',"amount":') ? micros(c.string()) : undefined;
    if (m === undefined || !c.key('}')) return undefined;
    if (n++ === 0) first = m;
    else sum += BigInt(m);
  } while (c.key(','));
  if (!c.key(']')) return undefined;
  if (n === 1) return first;
  sum += BigInt(first!);
  return sum > INT64_MAX ? undefined : sum.toString();
}

/**
 * Consumes an object of strings whose text is what JSON.stringify would write for it again:
 * no repeated key (JSON.parse keeps the last), no array-index key (a JS object puts those first)
 * and no __proto__ (which zod drops).
 */
function properties(c: Cursor): boolean {
  if (!c.key('{')) return false;
  if (c.key('}')) return true;
  const keys: string[] = [];
  do {
    const key = c.string();
    if (key === undefined || key === '__proto__' || INDEX_KEY.test(key) || keys.includes(key)) return false;
    if (!c.key(':') || c.string() === undefined) return false;
    keys.push(key);
  } while (c.key(','));
  return c.key('}');
}

function id(v: string | undefined): string | undefined {
  return v !== undefined && v.length <= 128 && ID.test(v) ? v : undefined;
}

function oneOf(values: Set<string | undefined>, v: string | undefined): string | undefined {
  return values.has(v) ? v : undefined;
}

function isDigit(ch: number): boolean {
  return ch >= 48 && ch <= 57;
}

/**
 * A MoneyString (/^\d{1,15}(\.\d{1,6})?$/) as the digits of its micro-units, without going
 * through a number. Only up to 12 integer digits, which always fit an Int64 (the rest go to toRow).
 */
function micros(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const dot = v.indexOf('.');
  const whole = dot === -1 ? v.length : dot;
  const places = dot === -1 ? 0 : v.length - dot - 1;
  if (whole < 1 || whole > 12 || (dot !== -1 && (places < 1 || places > 6)) || !allDigits(v, 0, whole) || !allDigits(v, whole + 1, v.length)) {
    return undefined;
  }
  return stripZeros(dot === -1 ? v + PAD[0] : v.slice(0, dot) + v.slice(dot + 1) + PAD[places]);
}

/** A SignedMoneyString (/^-?\d{1,15}\.\d{6}$/), likewise. */
function signedMicros(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const negative = v.charCodeAt(0) === 45; // '-'
  const dot = v.indexOf('.');
  const digits = micros(negative ? v.slice(1) : v);
  if (digits === undefined || dot === -1 || v.length - dot !== 7) return undefined;
  return negative && digits !== '0' ? `-${digits}` : digits;
}

function allDigits(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (!isDigit(s.charCodeAt(i))) return false;
  return true;
}

function stripZeros(digits: string): string {
  let i = 0;
  while (i < digits.length - 1 && digits.charCodeAt(i) === 48) i++;
  return i === 0 ? digits : digits.slice(i);
}

/** toISOString() text of a real calendar day within DateTime64's range, as 'YYYY-MM-DD hh:mm:ss.sss'. */
function dateTime64(v: string | undefined): string | undefined {
  if (v === undefined || !ISO_UTC_MS.test(v)) return undefined;
  const year = number(v, 0, 4);
  const month = number(v, 5, 7);
  const day = number(v, 8, 10);
  if (year < 1900 || year > 2299 || month < 1 || month > 12 || day < 1 || day > daysIn(year, month)) return undefined;
  return `${v.slice(0, 10)} ${v.slice(11, 23)}`;
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
