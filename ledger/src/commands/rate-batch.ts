import type { PoolClient } from '@meterstream/platform/postgres';
import type { Logger } from '@meterstream/platform/logger';
import type { Currency } from '@meterstream/schemas';
import { loadAccountStates, type AccountState } from '../account-state.js';
import type { PriceLookup } from '../core/price.js';
import { emptyBatch, rateBatch as rateEvents, toRatedEvent, type LedgerRow, type SourceEvent } from '../core/rate.js';
import { deadLetter, deadLettersFromSource, dlqMessages, type DeadLetter, type DeadLetterCode } from '../dead-letters.js';
import type { Send } from '../entries.js';
import { isDataRefusal, rateIsolated } from '../isolate.js';
import { attachHolds, captureHolds, withClosedHolds } from './capture-holds.js';
import { triggerAutoTopUps } from './trigger-auto-top-up.js';
import { ratedChanges, recordAlerts } from '../outbox.js';
import { findRated, ledgerRowsFromSource, lockOffsets, writeBatch } from '../rating-store.js';
import type { Effects, WriteOrder } from '../write-order.js';

/** The price book the batch is charged at: loaded for what the batch needs, then looked up in memory. */
export interface Prices {
  ensureKnown(keys: Iterable<[string, Currency]>): Promise<void>;
  lookup: PriceLookup;
}

/** One consumer's fetch from one partition of usage.events, decoded. */
export interface PartitionBatch {
  groupId: string;
  topic: string;
  partition: number;
  /** Fetched from `fetched` up to `end` (exclusive), transaction markers and aborted records included. */
  fetched: bigint;
  end: bigint;
  /** The raw messages, whose bytes a dead letter keeps. */
  messages: readonly { offset: string; key: Buffer | null; value: Buffer | null }[];
  events: readonly SourceEvent[];
  /** Messages that did not decode. */
  dead: readonly DeadLetter[];
  ratedAt: string;
  /** Accepts that the fence jumps from this offset to `fetched`: retention deleted what lay in between. */
  lostFrom?: bigint;
}

export type RateOutcome =
  /** Fetched past Postgres's fence: nothing was done; the consumer seeks back (or accepts the gap). */
  | { kind: 'behind'; next: bigint; published: bigint }
  | {
      kind: 'done';
      /** A transaction moved the fence (false: everything was rated already). */
      committed: boolean;
      /** Postgres refused the batch as a whole and it was rated by bisection. */
      isolated: boolean;
      /** Everything before this offset is committed and published. */
      publishedUpTo: bigint;
      rated: number;
      duplicates: number;
      dead: number;
      accounts: number;
      /** Events a crashed predecessor committed and that were published again. */
      republished: number;
      /** Offsets [from, to) deleted by retention before they were rated, which the fence stepped over. */
      lost?: { from: bigint; to: bigint };
    };
export type RatedOutcome = Extract<RateOutcome, { kind: 'done' }>;

export interface RateBatchDeps {
  order: WriteOrder;
  prices: Prices;
  log: Logger;
}

interface Publication {
  rows: { row: LedgerRow; ratedAt: string }[];
  dead: DeadLetter[];
  states: AccountState[];
}

/**
 * Rates one partition batch through the write order: one transaction locks the partition's fence
 * (consumer_offsets: messages below it were rated already), rates what is new and writes the
 * charges, grant balances, dead letters and the new fence together; then the rated events go to
 * usage.rated and the dead letters to usage.dlq, the states to Redis, and `offsets` moves the
 * consumer's watermarks. What a crashed predecessor committed beyond its published watermark is
 * published again in the same pass. A batch Postgres refuses for its data is rated again by
 * bisection, so that only what it refuses alone becomes a dead letter.
 */
export async function rateBatch(
  { order, prices, log }: RateBatchDeps, batch: PartitionBatch, offsets: (outcome: RatedOutcome) => Promise<void>,
): Promise<RateOutcome> {
  const { rated, dlq } = order.topics;
  const where = { partition: batch.partition, from: String(batch.fetched), to: String(batch.end) };

  /** Committed in [from, to) by a predecessor that may have died before publishing it. */
  async function unpublished(c: PoolClient, from: bigint, to: bigint): Promise<Publication> {
    if (from >= to) return { rows: [], dead: [], states: [] };
    const keys = batch.events.filter((e) => BigInt(e.offset) >= from && BigInt(e.offset) < to).map((e) => ({ account: e.event.account_id, event: e.event.id }));
    const rows = await ledgerRowsFromSource(c, keys, batch.topic, batch.partition, from, to);
    const dead = await deadLettersFromSource(c, batch.topic, batch.partition, from, to);
    const states = await loadAccountStates(c, [...new Set(rows.map((r) => r.row.accountId))], { forUpdate: false, nowMs: order.now() });
    return { rows, dead, states: withClosedHolds([...states.values()], rows.map((r) => r.row)) };
  }

  async function publish(send: Send, p: Publication, republished: Publication): Promise<void> {
    const rows = [...republished.rows, ...p.rows];
    const dead = [...republished.dead, ...p.dead];
    await Promise.all([
      rows.length > 0 ? send({ topic: rated, acks: -1, messages: rows.map(({ row, ratedAt }) => ({ key: row.accountId, value: JSON.stringify(toRatedEvent(row, ratedAt)) })) }) : undefined,
      dead.length > 0 ? send({ topic: dlq, acks: -1, messages: dlqMessages(batch.topic, batch.partition, dead) }) : undefined,
    ]);
    if (republished.rows.length + republished.dead.length > 0) {
      log.info({ ...where, events: republished.rows.length, dead: republished.dead.length }, 'republished committed events after a restart');
    }
    if (dead.length > 0) log.warn({ partition: batch.partition, count: dead.length, codes: [...new Set(dead.map((d) => d.code))] }, 'events sent to dead-letter topic');
  }

  async function transaction(c: PoolClient, isolate: boolean): Promise<Effects<RateOutcome>> {
    const fence = await lockOffsets(c, batch.groupId, batch.topic, batch.partition, batch.fetched.toString());
    if (batch.fetched > fence.next && batch.lostFrom !== fence.next) {
      return { commit: false, value: { kind: 'behind', next: fence.next, published: fence.published } };
    }
    const isFresh = (offset: string) => BigInt(offset) >= fence.next;
    const events = batch.events.filter((e) => isFresh(e.offset));
    const dead = batch.dead.filter((d) => isFresh(d.offset));
    const replayedUpTo = fence.next < batch.end ? fence.next : batch.end;
    const republished = await unpublished(c, fence.published, replayedUpTo);
    const done = {
      kind: 'done', isolated: isolate, republished: republished.rows.length,
      ...(batch.fetched > fence.next ? { lost: { from: fence.next, to: batch.fetched } } : {}),
    } as const;
    if (events.length + dead.length === 0 && batch.end <= fence.next) {
      return {
        commit: false,
        value: { ...done, committed: false, publishedUpTo: replayedUpTo, rated: 0, duplicates: 0, dead: 0, accounts: 0 },
        publish: (send) => publish(send, { rows: [], dead: [], states: [] }, republished),
        states: republished.states,
      };
    }

    // A closed account's events are dead-lettered like an unknown account's.
    const states = await loadAccountStates(c, [...new Set(events.map((e) => e.event.account_id))], { forUpdate: true, nowMs: order.now(), excludeClosed: true });
    await prices.ensureKnown(events.flatMap((e) => {
      const s = states.get(e.event.account_id);
      return s ? [[e.event.product, s.currency] as [string, Currency]] : [];
    }));
    const already = await findRated(c, events.map((e) => ({ account: e.event.account_id, event: e.event.id })));
    // Events naming a hold are charged at most the hold (capture-holds.ts).
    const gated = await attachHolds(c, events);
    const src = { groupId: batch.groupId, topic: batch.topic, partition: batch.partition, nextOffset: batch.end.toString() };
    const byOffset = new Map(batch.messages.map((m) => [m.offset, m]));
    const eventAt = new Map(events.map((e) => [e.offset, e.event]));
    const letter = (offset: string, code: DeadLetterCode, reason: string) => deadLetter(byOffset.get(offset)!, code, reason, eventAt.get(offset));
    let charged: { rows: LedgerRow[]; duplicates: number; changed: Map<string, AccountState> };
    if (!isolate) {
      const whole = rateEvents(gated.events, states, prices.lookup, already);
      dead.push(...whole.rejected.map((r) => letter(r.offset, r.code, r.message)));
      await writeBatch(c, whole, dead, src, batch.ratedAt);
      charged = whole;
    } else {
      const sliced = await rateIsolated(c, gated.events, states, prices.lookup, already, (b) => writeBatch(c, b, [], src, batch.ratedAt));
      dead.push(
        ...sliced.rejected.map((r) => letter(r.offset, r.code, r.message)),
        ...sliced.refused.map((r) => letter(r.offset, 'DB_REFUSED', r.reason)),
      );
      await writeBatch(c, emptyBatch(), dead, src, batch.ratedAt);
      charged = sliced;
    }
    // Alerts crossed by the batch (balance low or zero, spend thresholds), judged from the states
    // locked above: no query unless one fired or re-armed, then one for the whole batch.
    const changes = ratedChanges(states, charged.changed, charged.rows);
    await recordAlerts(c, changes, order.now(), true);
    // Automatic top-ups for the balances the batch took to their threshold: the same judgement
    // from the locked states, no statement unless one crossed; Stripe is called after the commit.
    await triggerAutoTopUps(c, changes, order.now());
    await captureHolds(c, charged.rows, gated.holds, order.now());
    // An account also republished keeps the holds its republished rows close.
    const changed = withClosedHolds([...charged.changed.values()], [...republished.rows.map((r) => r.row), ...charged.rows]);
    const committed: Publication = { rows: charged.rows.map((row) => ({ row, ratedAt: batch.ratedAt })), dead, states: changed };
    return {
      commit: true,
      value: {
        ...done, committed: true, publishedUpTo: batch.end,
        rated: charged.rows.length, duplicates: charged.duplicates, dead: dead.length, accounts: changed.length,
      },
      publish: (send) => publish(send, committed, republished),
      // An account both republished and charged now is cached as the batch left it.
      states: [...new Map([...republished.states, ...changed].map((st) => [st.id, st])).values()],
    };
  }

  const run = (isolate: boolean) => order.run<RateOutcome>({
    name: 'rate-batch',
    transaction: (c) => transaction(c, isolate),
    offsets: (outcome) => (outcome.kind === 'done' ? offsets(outcome) : Promise.resolve()),
  });
  try {
    return await run(false);
  } catch (e) {
    if (!isDataRefusal(e)) throw e;
    log.warn({ ...where, err: e.message }, 'Postgres refused the batch; rating it again slice by slice to isolate what it refuses');
    return run(true);
  }
}
