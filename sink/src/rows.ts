import { INT64_MAX, RatedEvent, toMicros } from '@meterstream/schemas';
import { canonicalRow } from './canonical.js';
import { encodeRow, type RatedRow } from './row-format.js';

export type Decoded =
  | { ok: true; row: RatedRow }
  | { ok: false; code: 'INVALID_JSON' | 'INVALID_RATED_EVENT' | 'OUT_OF_RANGE'; reason: string };

/** Never throws: whatever cannot become a row comes back with the reason for the dead-letter topic. */
export function decodeRatedEvent(value: Buffer | null): Decoded {
  if (!value || value.length === 0) return { ok: false, code: 'INVALID_JSON', reason: 'empty message' };
  const text = value.toString('utf8');
  // What the rater publishes takes the hand-written path; anything else gets zod's verdict.
  const fast = canonicalRow(text);
  if (fast) return { ok: true, row: fast };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, code: 'INVALID_JSON', reason: (e as Error).message };
  }
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
    event_time: utcDateTime64(e.timestamp, 'timestamp'),
    rated_at: utcDateTime64(e.rated_at, 'rated_at'),
    workspace_id: e.workspace_id ?? '',
  });
}

// MoneyString allows 15 integer digits, i.e. up to 1e21 micro-units, and ClickHouse parses an
// Int64 that does not fit by silently wrapping it: such an event must be rejected, not stored.
export function int64(micros: bigint, field: string): string {
  if (micros > INT64_MAX || micros < -INT64_MAX - 1n) throw new RangeError(`${field} does not fit Int64 micro-units`);
  return micros.toString();
}

/**
 * The schema has validated the ISO text already; sub-millisecond digits are dropped, as
 * DateTime64(3) would. Outside DateTime64's range ClickHouse stores another time or refuses the
 * whole insert, so such an event is rejected instead.
 */
export function utcDateTime64(iso: string, field: string): string {
  const utc = new Date(Date.parse(iso)).toISOString(); // RangeError if V8 cannot parse it
  const year = Number(utc.slice(0, 4)); // the '+YYYYYY' and '-YYYYYY' forms land outside too
  if (!(year >= 1900 && year <= 2299)) throw new RangeError(`${field} is outside DateTime64's range (years 1900 to 2299)`);
  return utc.slice(0, 23).replace('T', ' ');
}
