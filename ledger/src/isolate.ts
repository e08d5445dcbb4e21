import type { PoolClient } from '@meterstream/platform/postgres';
import type { AccountState } from './account-state.js';
import type { PriceLookup } from './core/price.js';
import { eventKey, rateBatch, type LedgerRow, type RatedBatch, type Rejection, type SourceEvent } from './core/rate.js';

/**
 * Postgres refused the statement for what it holds (SQLSTATE class 22 data exception, 23
 * integrity constraint, 54 program limit): the same data would be refused again, so retrying the
 * batch cannot help. A lost connection, a timeout or a deadlock are not data refusals.
 */
export function isDataRefusal(e: unknown): e is Error & { code: string } {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^(22|23|54)[0-9A-Z]{3}$/.test(code);
}

export function refusalReason(e: Error & { detail?: string }): string {
  return e.detail ? `${e.message} (${e.detail})` : e.message;
}

export interface IsolatedBatch {
  rows: LedgerRow[];
  rejected: Rejection[];
  /** Events Postgres refused on their own, with its message. */
  refused: { offset: string; reason: string }[];
  duplicates: number;
  /** Accounts the written events changed, as they stand after them. */
  changed: Map<string, AccountState>;
}

/**
 * Rates a batch Postgres refused as a whole, inside the caller's transaction, by bisection: a
 * slice is rated and written under a savepoint; if Postgres refuses it, its halves are tried in
 * turn, from the states the written slices left, down to the single event, which is refused alone.
 * k bad events among n cost about 2k log2(n) writes; the good events keep their order, so they
 * are charged exactly as an undisturbed batch would have charged them.
 */
export async function rateIsolated(
  c: PoolClient, events: readonly SourceEvent[], states: ReadonlyMap<string, AccountState>, lookup: PriceLookup,
  alreadyRated: ReadonlySet<string>, write: (batch: RatedBatch) => Promise<void>,
): Promise<IsolatedBatch> {
  const out: IsolatedBatch = { rows: [], rejected: [], refused: [], duplicates: 0, changed: new Map() };
  const done = new Set(alreadyRated);
  // rateBatch leaves the states it is given alone: a refused slice has nothing to put back.
  const current = new Map(states);

  const attempt = async (slice: readonly SourceEvent[]): Promise<void> => {
    await c.query('SAVEPOINT isolate');
    const batch = rateBatch(slice, current, lookup, done);
    try {
      await write(batch);
      await c.query('RELEASE SAVEPOINT isolate');
    } catch (e) {
      if (!isDataRefusal(e)) throw e;
      await c.query('ROLLBACK TO SAVEPOINT isolate; RELEASE SAVEPOINT isolate');
      if (slice.length === 1) {
        out.refused.push({ offset: slice[0]!.offset, reason: refusalReason(e) });
        return;
      }
      const mid = Math.ceil(slice.length / 2);
      await attempt(slice.slice(0, mid));
      await attempt(slice.slice(mid));
      return;
    }
    for (const row of batch.rows) done.add(eventKey(row.accountId, row.eventId));
    out.rows.push(...batch.rows);
    out.rejected.push(...batch.rejected);
    out.duplicates += batch.duplicates;
    for (const [id, next] of batch.changed) {
      current.set(id, next);
      out.changed.set(id, next);
    }
  };

  if (events.length > 0) await attempt(events);
  return out;
}
