import type { PoolClient } from '@meterstream/platform/postgres';
import { lockHoldsForCapture, markCaptured, type CapturableHold, type Capture } from '@meterstream/platform/stores/holds';
import type { AccountState } from '../account-state.js';
import type { CachedState } from '../balance-cache.js';
import type { LedgerRow, SourceEvent } from '../core/rate.js';

/**
 * The rater's side of the gate, inside its batch transaction (rate-batch.ts): an event naming a
 * hold (hold_id) is charged min(its price, the hold) and closes it. Per batch: one query locks
 * the holds the batch names (none when no event names one), one statement closes the captured.
 */
export async function attachHolds(c: PoolClient, events: readonly SourceEvent[]): Promise<{ events: readonly SourceEvent[]; holds: Map<string, CapturableHold> }> {
  const ids = [...new Set(events.flatMap((e) => (e.event.hold_id ? [e.event.hold_id] : [])))];
  const holds = await lockHoldsForCapture(c, ids);
  if (holds.size === 0) return { events, holds };
  return {
    holds,
    events: events.map((e) => {
      const h = e.event.hold_id === undefined ? undefined : holds.get(e.event.hold_id);
      // An unknown hold (or another account's) caps nothing: the usage happened and is charged at its price.
      return h ? { ...e, hold: { id: h.id, accountId: h.accountId, cap: h.captured ? 0n : h.amount } } : e;
    }),
  };
}

/**
 * Closes the holds the rated rows captured (the first row naming each); a capture after the hold
 * expired or was released is still charged, capped, and recorded as late. Returns the captures.
 */
export async function captureHolds(c: PoolClient, rows: readonly LedgerRow[], holds: ReadonlyMap<string, CapturableHold>, nowMs: number): Promise<Capture[]> {
  const captures = new Map<string, Capture>();
  for (const row of rows) {
    const h = row.holdId === undefined ? undefined : holds.get(row.holdId);
    if (!h || h.captured || captures.has(h.id)) continue;
    captures.set(h.id, { holdId: h.id, eventId: row.eventId, amount: row.amount, late: h.status !== 'open' || nowMs >= h.expiresMs });
  }
  const list = [...captures.values()];
  await markCaptured(c, list, new Date(nowMs));
  return list;
}

/**
 * The states to cache, each with the holds its rows captured: Redis frees them with the charge, in
 * one step. Rows a crashed predecessor committed (republished) close theirs the same way; closing
 * a hold Redis no longer counts (captured again at zero, late) changes nothing.
 */
export function withClosedHolds(states: readonly AccountState[], rows: readonly LedgerRow[]): CachedState[] {
  const byAccount = new Map<string, string[]>();
  for (const row of rows) if (row.holdId !== undefined) byAccount.set(row.accountId, [...(byAccount.get(row.accountId) ?? []), row.holdId]);
  if (byAccount.size === 0) return [...states];
  return states.map((s) => (byAccount.has(s.id) ? { ...s, closedHolds: byAccount.get(s.id)! } : s));
}
