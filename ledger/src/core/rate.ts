import { formatMicros, INT64_MAX, MAX_MONEY_MICROS, type RatedEvent, type UsageEvent } from '@meterstream/schemas';
import { balanceAt, monthOf, type AccountState } from '../account-state.js';
import { burn, usableAt, type GrantTake } from './burn.js';
import { captureCharge } from './holds.js';
import { price, type PriceLookup } from './price.js';

export interface SourceEvent {
  offset: string;
  event: UsageEvent;
  eventMs: number;
  /** The hold the event names (hold_id), as the batch found it: the event is charged at most `cap`. */
  hold?: { id: string; accountId: string; cap: bigint };
}

/** One rated event as the ledger stores it; usage.rated messages are built from this alone. */
export interface LedgerRow {
  accountId: string;
  eventId: string;
  product: string;
  quantity: bigint;
  properties: Record<string, string> | undefined;
  /** The hold the event captured: amount is at most the hold's. */
  holdId?: string;
  /** The workspace the event named, if any. */
  workspaceId: string | undefined;
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
  /** accounts whose state changed, as they stand after the batch (new objects; the given states are untouched) */
  changed: Map<string, AccountState>;
}

export const eventKey = (accountId: string, eventId: string): string => `${accountId}\u0000${eventId}`;

export const emptyBatch = (): RatedBatch => ({ rows: [], rejected: [], duplicates: 0, grantRemaining: new Map(), postpaid: new Map(), changed: new Map() });

/**
 * Why charging this amount would take a stored value out of int8 (or past what one event may
 * cost), if it would: Postgres would refuse the whole batch, so the event is refused alone.
 */
function amountProblem(
  amount: bigint, state: AccountState, eventMs: number, month: string | undefined, batchPostpaid: ReadonlyMap<string, bigint>,
): string | undefined {
  if (amount > MAX_MONEY_MICROS) {
    return `the event costs ${formatMicros(amount)} ${state.currency}, more than one event may cost (${formatMicros(MAX_MONEY_MICROS)})`;
  }
  const accrued = month === undefined ? state.overdraft
    : month === state.postpaidMonth ? state.postpaidAmount : (batchPostpaid.get(`${state.id}\u0000${month}`) ?? 0n);
  if (accrued + amount <= INT64_MAX) return undefined; // fits even if no grant covers any of it
  let usable = 0n;
  for (const g of state.grants) if (usableAt(g, eventMs)) usable += g.remaining;
  if (accrued + amount - usable <= INT64_MAX) return undefined;
  return month === undefined
    ? `the account's overdraft would exceed ${formatMicros(INT64_MAX)}`
    : `the account's postpaid usage for ${month} would exceed ${formatMicros(INT64_MAX)}`;
}

/**
 * Prices the events in order and burns them against the accounts' grants. Pure: the given
 * states and sets are not touched; the accounts' next states come back in `changed`, so rating
 * a batch in slices (threading `changed` and the rated keys) gives what rating it whole gives.
 */
export function rateBatch(
  events: readonly SourceEvent[],
  states: ReadonlyMap<string, AccountState>,
  lookup: PriceLookup,
  alreadyRated: ReadonlySet<string>,
): RatedBatch {
  const out = emptyBatch();
  const seen = new Set<string>();
  // A hold is captured once: a second event naming it is charged nothing (its call never got a hold).
  const captured = new Set<string>();
  for (const src of events) {
    const e = src.event;
    const key = eventKey(e.account_id, e.id);
    if (alreadyRated.has(key) || seen.has(key)) {
      out.duplicates++;
      continue;
    }
    const state = out.changed.get(e.account_id) ?? states.get(e.account_id);
    if (!state) {
      out.rejected.push({ offset: src.offset, code: 'UNKNOWN_ACCOUNT', message: `account ${e.account_id} does not exist` });
      continue;
    }
    const entry = lookup(e.product, state.currency);
    if (!entry) {
      out.rejected.push({ offset: src.offset, code: 'UNKNOWN_PRODUCT', message: `no ${state.currency} price for product ${e.product}` });
      continue;
    }
    const hold = src.hold?.accountId === e.account_id ? src.hold : undefined;
    const amount = hold ? captureCharge(price(e.quantity, entry), captured.has(hold.id) ? 0n : hold.cap) : price(e.quantity, entry);
    // The month a postpaid account's uncovered usage accrues to.
    const month = state.billingMode === 'postpaid' ? monthOf(src.eventMs) : undefined;
    const problem = amountProblem(amount, state, src.eventMs, month, out.postpaid);
    if (problem) {
      out.rejected.push({ offset: src.offset, code: 'AMOUNT_OUT_OF_RANGE', message: problem });
      continue;
    }
    seen.add(key);
    if (hold) captured.add(hold.id);
    const { takes, postpaid, overdraft, next } = burn(state, amount, src.eventMs);
    if (postpaid > 0n) {
      const k = `${state.id}\u0000${month}`;
      out.postpaid.set(k, (out.postpaid.get(k) ?? 0n) + postpaid);
    }
    out.changed.set(state.id, next);
    out.rows.push({
      accountId: e.account_id, eventId: e.id, product: e.product, quantity: e.quantity, properties: e.properties, workspaceId: e.workspace_id,
      ...(hold ? { holdId: hold.id } : {}),
      currency: state.currency, eventMs: src.eventMs, offset: src.offset, seq: next.ledgerSeq,
      unit: entry.unit, unitPrice: entry.unitPrice, per: entry.per,
      amount, fromGrants: amount - postpaid - overdraft, postpaid, overdraft, takes,
      balanceAfter: balanceAt(next, src.eventMs),
    });
  }
  for (const [id, next] of out.changed) grantChanges(states.get(id)!, next, out.grantRemaining);
  return out;
}

/**
 * Records the remaining of every grant whose remaining differs between the two states (0 once it
 * left). Burning keeps the grants' order and only drops some, so one walk over both lists does.
 */
function grantChanges(before: AccountState, after: AccountState, into: Map<string, bigint>): void {
  if (before.grants === after.grants) return;
  let j = 0;
  for (const g of before.grants) {
    let remaining = 0n;
    if (after.grants[j]?.id === g.id) remaining = after.grants[j++]!.remaining;
    if (remaining !== g.remaining) into.set(g.id, remaining);
  }
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
    ...(row.workspaceId ? { workspace_id: row.workspaceId } : {}),
    ...(row.holdId ? { hold_id: row.holdId } : {}),
  };
}
