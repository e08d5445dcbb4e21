import { RatedEvent, toMicros } from '@meterstream/schemas';
import { canonicalRow } from './canonical.js';

/**
 * One rated_events row, already encoded for the insert: `line` is a JSONCompactEachRow array
 * holding COLUMNS in order. Keeping only the encoded line (and the key and time that the
 * duplicate check needs) instead of an object of 18 strings keeps a 50k-row batch small.
 */
export interface RatedRow {
  account_id: string;
  event_id: string;
  /** 'YYYY-MM-DD hh:mm:ss.sss' in UTC, as stored. */
  event_time: string;
  line: string;
}

/** The columns of RatedRow.line, in order. */
export const COLUMNS = [
  'account_id', 'event_id', 'product', 'currency', 'unit', 'quantity', 'unit_price', 'per', 'amount', 'from_grants',
  'postpaid', 'overdraft', 'balance_after', 'ledger_seq', 'grants', 'properties', 'event_time', 'rated_at',
] as const;

/**
 * Column values as text. Int64 and UInt64 columns are decimal digits, which ClickHouse parses
 * exactly (they never pass through a JS number); times are 'YYYY-MM-DD hh:mm:ss.sss' in UTC,
 * the columns' zone; grants and properties are JSON texts (an array, and an object of strings).
 */
export type RowValues = Record<(typeof COLUMNS)[number], string>;

export type Decoded =
  | { ok: true; row: RatedRow }
  | { ok: false; code: 'INVALID_JSON' | 'INVALID_RATED_EVENT' | 'OUT_OF_RANGE'; reason: string };

export const rowKey = (r: Pick<RatedRow, 'account_id' | 'event_id'>): string => `${r.account_id}\u0000${r.event_id}`;

/** Never throws: whatever cannot become a row comes back with the reason for the dead-letter topic. */
export function decodeRatedEvent(value: Buffer | null): Decoded {
  if (!value || value.length === 0) return { ok: false, code: 'INVALID_JSON', reason: 'empty message' };
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch (e) {
    return { ok: false, code: 'INVALID_JSON', reason: (e as Error).message };
  }
  // What the rater publishes takes the hand-written path; anything else gets zod's verdict.
  const fast = canonicalRow(json);
  if (fast) return { ok: true, row: fast };
  const parsed = RatedEvent.safeParse(json);
  if (!parsed.success) {
    const reason = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    return { ok: false, code: 'INVALID_RATED_EVENT', reason };
  }
  try {
    return { ok: true, row: toRow(parsed.data) };
  } catch (e) {
    if (e instanceof RangeError) return { ok: false, code: 'OUT_OF_RANGE', reason: e.message };
    throw e;
  }
}

/** The reference conversion of a validated event; canonicalRow must give the same row or none. */
export function toRow(e: RatedEvent): RatedRow {
  const fromGrants = e.grants.reduce((sum, g) => sum + toMicros(g.amount), 0n);
  return encodeRow({
    account_id: e.account_id,
    event_id: e.event_id,
    product: e.product,
    currency: e.currency,
    unit: e.unit,
    quantity: int64(toMicros(e.quantity), 'quantity'),
    unit_price: int64(toMicros(e.unit_price), 'unit_price'),
    per: String(e.per),
    amount: int64(toMicros(e.amount), 'amount'),
    from_grants: int64(fromGrants, 'grants'),
    postpaid: int64(toMicros(e.postpaid), 'postpaid'),
    overdraft: int64(toMicros(e.overdraft), 'overdraft'),
    balance_after: int64(toMicros(e.balance_after), 'balance_after'),
    ledger_seq: String(e.ledger_seq),
    grants: JSON.stringify(e.grants),
    properties: JSON.stringify(e.properties ?? {}),
    event_time: utcDateTime64(e.timestamp),
    rated_at: utcDateTime64(e.rated_at),
  });
}

/** Both paths end here, so that they cannot disagree on the encoding. */
export function encodeRow(v: RowValues): RatedRow {
  const line = `[${JSON.stringify(v.account_id)},${JSON.stringify(v.event_id)},${JSON.stringify(v.product)},"${v.currency}","${v.unit}",`
    + `${v.quantity},${v.unit_price},${v.per},${v.amount},${v.from_grants},${v.postpaid},${v.overdraft},${v.balance_after},${v.ledger_seq},`
    + `${JSON.stringify(v.grants)},${v.properties},"${v.event_time}","${v.rated_at}"]`;
  return { account_id: v.account_id, event_id: v.event_id, event_time: v.event_time, line };
}

export const INT64_MAX = 2n ** 63n - 1n;

// MoneyString allows 15 integer digits, i.e. up to 1e21 micro-units, and ClickHouse parses an
// Int64 that does not fit by silently wrapping it: such an event must be rejected, not stored.
function int64(micros: bigint, field: string): string {
  if (micros > INT64_MAX || micros < -INT64_MAX - 1n) throw new RangeError(`${field} does not fit Int64 micro-units`);
  return micros.toString();
}

/** The schema has validated the ISO text already; sub-millisecond digits are dropped, as DateTime64(3) would. */
function utcDateTime64(iso: string): string {
  return new Date(Date.parse(iso)).toISOString().slice(0, 23).replace('T', ' ');
}
