import { formatMicros, INT64_MAX, MAX_MONEY_MICROS, priceMicros, type RatedEvent, type UsageEvent } from '@meterstream/schemas';
import { balanceAt, monthOf, type AccountState } from '@meterstream/ledger/account-state';
import type { PriceLookup } from './price-book.js';

export interface SourceEvent {
  offset: string;
  event: UsageEvent;
  eventMs: number;
}

export interface GrantTake {
  grantId: string;
  kind: string;
  amount: bigint;
}

/** One rated event as the ledger stores it; usage.rated messages are built from this alone. */
export interface LedgerRow {
  accountId: string;
  eventId: string;
  product: string;
  quantity: bigint;
  properties: Record<string, string> | undefined;
  currency: RatedEvent['currency'];
  eventMs: number;
  offset: string;
  seq: bigint;
  unit: string;
  unitPrice: bigint;
  per: bigint;
  amount: bigint;
  fromGrants: bigint;
  postpaid: bigint;
  overdraft: bigint;
  takes: GrantTake[];
  balanceAfter: bigint;
}

export interface Rejection {
  offset: string;
  code: 'UNKNOWN_ACCOUNT' | 'UNKNOWN_PRODUCT' | 'AMOUNT_OUT_OF_RANGE';
  message: string;
}

export interface RatedBatch {
  rows: LedgerRow[];
  rejected: Rejection[];
  duplicates: number;
  /** grant id -> remaining after the batch, for grants the batch burned */
  grantRemaining: Map<string, bigint>;
  /** `${account}\u0000${YYYY-MM}` -> postpaid accrued by this batch */
  postpaid: Map<string, bigint>;
  /** accounts whose state changed, as they stand after the batch */
  changed: Map<string, AccountState>;
}

export const eventKey = (accountId: string, eventId: string): string => `${accountId}\u0000${eventId}`;

export const emptyBatch = (): RatedBatch => ({ rows: [], rejected: [], duplicates: 0, grantRemaining: new Map(), postpaid: new Map(), changed: new Map() });

/**
 * Why charging this amount would take a stored value out of int8 (or past what one event may
 * cost), if it would: Postgres would refuse the whole batch, so the event is refused alone.
 */
function amountProblem(amount: bigint, state: AccountState, eventMs: number, batchPostpaid: ReadonlyMap<string, bigint>): string | undefined {
  if (amount > MAX_MONEY_MICROS) {
    return `the event costs ${formatMicros(amount)} ${state.currency}, more than one event may cost (${formatMicros(MAX_MONEY_MICROS)})`;
  }
  const month = state.billingMode === 'postpaid' ? monthOf(eventMs) : undefined;
  const accrued = month === undefined ? state.overdraft
    : month === state.postpaidMonth ? state.postpaidAmount : (batchPostpaid.get(`${state.id}\u0000${month}`) ?? 0n);
  if (accrued + amount <= INT64_MAX) return undefined; // fits even if no grant covers any of it
  let usable = 0n;
  for (const g of state.grants) if (g.expiresAt === null || g.expiresAt > eventMs) usable += g.remaining;
  if (accrued + amount - usable <= INT64_MAX) return undefined;
  return month === undefined
    ? `the account's overdraft would exceed ${formatMicros(INT64_MAX)}`
    : `the account's postpaid usage for ${month} would exceed ${formatMicros(INT64_MAX)}`;
}

/**
 * Prices the events in order and burns them against the accounts' grants. Pure apart from
 * mutating the given states, which the caller loaded under lock for exactly this batch.
 * A grant is usable by an event only when it had not expired at the event's own timestamp,
 * which makes re-rating after a crash give the same answer as the first time.
 */
export function rateBatch(
  events: readonly SourceEvent[],
  states: Map<string, AccountState>,
  lookup: PriceLookup,
  alreadyRated: ReadonlySet<string>,
): RatedBatch {
  const out = emptyBatch();
  const seen = new Set<string>();
  for (const src of events) {
    const e = src.event;
    const key = eventKey(e.account_id, e.id);
    if (alreadyRated.has(key) || seen.has(key)) {
      out.duplicates++;
      continue;
    }
    const state = states.get(e.account_id);
    if (!state) {
      out.rejected.push({ offset: src.offset, code: 'UNKNOWN_ACCOUNT', message: `account ${e.account_id} does not exist` });
      continue;
    }
    const price = lookup(e.product, state.currency);
    if (!price) {
      out.rejected.push({ offset: src.offset, code: 'UNKNOWN_PRODUCT', message: `no ${state.currency} price for product ${e.product}` });
      continue;
    }
    const amount = priceMicros(e.quantity, price.unitPrice, price.per);
    const problem = amountProblem(amount, state, src.eventMs, out.postpaid);
    if (problem) {
      out.rejected.push({ offset: src.offset, code: 'AMOUNT_OUT_OF_RANGE', message: problem });
      continue;
    }
    seen.add(key);
    let left = amount;
    const takes: GrantTake[] = [];
    for (const g of state.grants) {
      if (left === 0n) break;
      if (g.remaining === 0n || (g.expiresAt !== null && g.expiresAt <= src.eventMs)) continue;
      const take = g.remaining < left ? g.remaining : left;
      g.remaining -= take;
      left -= take;
      takes.push({ grantId: g.id, kind: g.kind, amount: take });
      out.grantRemaining.set(g.id, g.remaining);
    }
    let postpaid = 0n;
    let overdraft = 0n;
    if (left > 0n) {
      if (state.billingMode === 'postpaid') {
        postpaid = left;
        const month = monthOf(src.eventMs);
        const k = `${state.id}\u0000${month}`;
        out.postpaid.set(k, (out.postpaid.get(k) ?? 0n) + left);
        if (month === state.postpaidMonth) state.postpaidAmount += left;
      } else {
        // The usage happened: a prepaid account goes below zero and the next grant pays it off.
        overdraft = left;
        state.overdraft += left;
      }
    }
    state.ledgerSeq += 1n;
    out.changed.set(state.id, state);
    out.rows.push({
      accountId: e.account_id, eventId: e.id, product: e.product, quantity: e.quantity, properties: e.properties,
      currency: state.currency, eventMs: src.eventMs, offset: src.offset, seq: state.ledgerSeq,
      unit: price.unit, unitPrice: price.unitPrice, per: price.per,
      amount, fromGrants: amount - left, postpaid, overdraft, takes,
      balanceAfter: balanceAt(state, src.eventMs),
    });
  }
  for (const s of out.changed.values()) s.grants = s.grants.filter((g) => g.remaining > 0n);
  return out;
}

export function toRatedEvent(row: LedgerRow, ratedAt: string): RatedEvent {
  return {
    event_id: row.eventId,
    account_id: row.accountId,
    product: row.product,
    quantity: formatMicros(row.quantity),
    unit: row.unit as RatedEvent['unit'],
    unit_price: formatMicros(row.unitPrice),
    per: Number(row.per),
    currency: row.currency,
    amount: formatMicros(row.amount),
    grants: row.takes.map((t) => ({ grant_id: t.grantId, kind: t.kind as RatedEvent['grants'][number]['kind'], amount: formatMicros(t.amount) })),
    postpaid: formatMicros(row.postpaid),
    overdraft: formatMicros(row.overdraft),
    balance_after: formatMicros(row.balanceAfter),
    ledger_seq: Number(row.seq),
    timestamp: new Date(row.eventMs).toISOString(),
    rated_at: ratedAt,
    ...(row.properties ? { properties: row.properties } : {}),
  };
}
