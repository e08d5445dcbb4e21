import { RatedEvent, toMicros } from '@meterstream/schemas';

/**
 * One rated_events row, ready for JSONEachRow. Int64 columns travel as decimal strings, which
 * ClickHouse parses exactly; times as 'YYYY-MM-DD hh:mm:ss.sss' in UTC, the columns' zone.
 */
export interface RatedRow {
  account_id: string;
  event_id: string;
  product: string;
  currency: string;
  unit: string;
  quantity: string;
  unit_price: string;
  per: string;
  amount: string;
  from_grants: string;
  postpaid: string;
  overdraft: string;
  balance_after: string;
  ledger_seq: string;
  grants: string;
  properties: Record<string, string>;
  event_time: string;
  rated_at: string;
}

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

export function toRow(e: RatedEvent): RatedRow {
  const fromGrants = e.grants.reduce((sum, g) => sum + toMicros(g.amount), 0n);
  return {
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
    properties: e.properties ?? {},
    event_time: utcDateTime64(e.timestamp),
    rated_at: utcDateTime64(e.rated_at),
  };
}

const INT64_MAX = 2n ** 63n - 1n;

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
