import type { Batch, Kafka, Message } from 'kafkajs';
import { topicNames } from '@meterstream/schemas';
import { IDEMPOTENT_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import type { Pool } from '@meterstream/platform/postgres';
import type { Logger } from '@meterstream/platform/logger';
import type { BalanceCache } from '@meterstream/ledger/balance-cache';
import { loadAccountStates, type AccountState } from '@meterstream/ledger/account-state';
import type { RaterConfig } from './config.js';
import { PriceBook } from './price-book.js';
import { parseMessages, type RawMessage } from './parse.js';
import { emptyBatch, rateBatch, toRatedEvent, type LedgerRow, type SourceEvent } from './rate-batch.js';
import { findRated, ledgerRowsFromSource, lockOffsets, markPublished, publishedOffsets, skipUnreadable, writeBatch } from './ledger-store.js';
import { deadLetter, deadLettersFromSource, dlqMessages, type DeadLetter } from './dead-letters.js';
import { isDataRefusal, rateIsolated } from './isolate.js';
import { CacheWriter } from './cache-writer.js';
import { PartitionLanes } from './partition-lanes.js';

export interface RaterDeps {
  config: RaterConfig;
  pool: Pool;
  cache: BalanceCache;
  kafka: Kafka;
  log: Logger;
  now?: () => number;
}

/** Figures an operator (or a test) reads to see that the rater progresses and never spins. */
export interface RaterStats {
  /** Rating transactions committed: each moved a partition's fence forward. */
  transactions: number;
  /** Batches Postgres refused as a whole and that were rated again by bisection. */
  isolatedBatches: number;
  /** Seeks back to Postgres's position because Kafka's was ahead of it. */
  resumeSeeks: number;
  /** Offsets deleted from Kafka (retention) before they were rated: [from, to) per partition. */
  lostRanges: { partition: number; from: string; to: string }[];
}

export interface Rater {
  stop(): Promise<void>;
  readonly stats: RaterStats;
  /** Accounts whose Redis copy waits for a repair (Redis refused or missed their last write). */
  readonly cachePending: number;
}

/** Where a batch lies in its partition: fetched from `fetched` up to `end` (exclusive), control records included. */
interface Span {
  fetched: bigint;
  end: bigint;
}

type Outcome =
  | { kind: 'behind'; next: bigint; published: bigint }
  | { kind: 'done'; publishedUpTo: bigint; rated: number; duplicates: number; dead: number; accounts: number; republished: number };

interface Committed {
  rows: LedgerRow[];
  dead: DeadLetter[];
  changed: AccountState[];
  duplicates: number;
}

// kafkajs (pinned) knows the offset each batch was fetched from but does not declare it.
const fetchedOffset = (batch: Batch): bigint =>
  BigInt((batch as Batch & { fetchedOffset?: string }).fetchedOffset ?? batch.firstOffset() ?? batch.lastOffset());

/**
 * The rater: one consumer group on usage.events. Per partition batch, one Postgres transaction
 * holds the charges, the grant changes, the dead letters and the partition's offset (the fence
 * that makes a redelivered or zombie batch a no-op). After the commit the rated events go to
 * usage.rated, the dead letters to usage.dlq and the states to Redis; only then is the Kafka
 * offset committed. A crash anywhere in between is repaired on redelivery: whatever Postgres
 * holds beyond published_offset is published again.
 */
export async function startRater({ config, pool, cache, kafka, log, now = Date.now }: RaterDeps): Promise<Rater> {
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const groupId = config.RATER_GROUP_ID;
  const stats: RaterStats = { transactions: 0, isolatedBatches: 0, resumeSeeks: 0, lostRanges: [] };
  const prices = new PriceBook(pool, log);
  const cacheWriter = new CacheWriter(cache, pool, log);
  const producer = kafka.producer(IDEMPOTENT_PRODUCER_CONFIG);
  const send = serialSender(producer);
  const admin = kafka.admin();
  const lanes = new PartitionLanes();
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: config.RATER_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.min(3000, config.RATER_SESSION_TIMEOUT_MS / 3),
    maxBytesPerPartition: config.RATER_MAX_BYTES_PER_PARTITION,
    maxBytes: 4 * config.RATER_MAX_BYTES_PER_PARTITION,
  });
  async function stop(): Promise<void> {
    await consumer.disconnect(); // lets the running batch finish and leaves the group
    await Promise.all([producer.disconnect(), admin.disconnect()]);
    cacheWriter.stop();
    await prices.stop();
  }
  // A start that fails halfway (Kafka or Postgres unreachable) closes what it opened, so that
  // the caller can simply try again.
  async function abandon(err: unknown): Promise<never> {
    await stop().catch(() => undefined);
    throw err;
  }
  await prices.start();
  try {
    await producer.connect();
    await admin.connect();
    await consumer.connect();
    await consumer.subscribe({ topic: topics.events, fromBeginning: true });
  } catch (err) {
    await abandon(err);
  }
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    // kafkajs restarts the consumer after retriable errors; after any other it stops consuming
    // for good, so exit and let the supervisor start a fresh rater (Postgres holds the position).
    if (payload.restart) return;
    log.fatal({ err: payload.error }, 'consumer crashed for good; exiting');
    process.exit(1);
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    const partitions = payload.memberAssignment[topics.events] ?? [];
    log.info({ partitions, leader: payload.isLeader }, 'partitions assigned');
    resumeFromPostgres(partitions).catch((err: unknown) => log.warn({ err }, 'could not read the published offsets; Kafka\'s committed offsets are used'));
  });
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    // kafkajs resolves a fetch holding only transaction markers or aborted records by itself,
    // without eachBatch: the fence steps over it here, or a partition ending in a marker would
    // never show lag 0. In the partition's lane, so that the next batch sees the moved fence.
    if (payload.batchSize > 0 || payload.topic !== topics.events || payload.firstOffset == null) return;
    const { partition } = payload;
    const from = BigInt(payload.firstOffset);
    const to = BigInt(payload.lastOffset) + 1n;
    lanes.run(partition, async () => {
      if (!(await skipUnreadable(pool, groupId, topics.events, partition, from, to))) return;
      log.debug({ partition, from: String(from), to: String(to) }, 'stepped over transaction markers and aborted records');
      await consumer.commitOffsets([{ topic: topics.events, partition, offset: to.toString() }]);
    }).catch((err: unknown) => log.warn({ err, partition }, 'could not step over transaction markers; the next batch will'));
  });
  let batchNo = 0;

  /**
   * Starts each assigned partition at Postgres's published offset rather than Kafka's committed
   * one, which can be ahead of it (a restored database): whatever Postgres does not hold as
   * published is fetched again. A fetch that went out before the seek is caught by the fence.
   */
  async function resumeFromPostgres(partitions: number[]): Promise<void> {
    if (partitions.length === 0) return;
    for (const [partition, offset] of await publishedOffsets(pool, groupId, topics.events, partitions)) {
      consumer.seek({ topic: topics.events, partition, offset: offset.toString() });
    }
  }

  async function logStartOffset(partition: number): Promise<bigint> {
    const offsets = await admin.fetchTopicOffsets(topics.events);
    return BigInt(offsets.find((o) => o.partition === partition)?.low ?? '0');
  }

  const crashPoint = (point: RaterConfig['RATER_CRASH_AT'], n: number) => {
    if (config.RATER_CRASH_AT === point && n === config.RATER_CRASH_ON_BATCH) {
      log.warn({ point, batch: n }, 'fault injection: SIGKILL');
      process.kill(process.pid, 'SIGKILL');
    }
  };

  /** Rated events, dead letters, then Redis (which never fails or delays the batch). */
  async function publish(partition: number, rows: { row: LedgerRow; ratedAt: string }[], dead: DeadLetter[], states: AccountState[]): Promise<void> {
    const rated: Message[] = rows.map(({ row, ratedAt }) => ({ key: row.accountId, value: JSON.stringify(toRatedEvent(row, ratedAt)) }));
    await Promise.all([
      rated.length > 0 ? send({ topic: topics.rated, acks: -1, messages: rated }) : undefined,
      dead.length > 0 ? send({ topic: topics.dlq, acks: -1, messages: dlqMessages(topics.events, partition, dead) }) : undefined,
      cacheWriter.write(states),
    ]);
    if (dead.length > 0) {
      log.warn({ partition, count: dead.length, codes: [...new Set(dead.map((d) => d.code))] }, 'events sent to dead-letter topic');
    }
  }

  /** Re-publishes and re-caches what a crashed predecessor committed in [from, to) but may not have sent. */
  async function repair(partition: number, events: SourceEvent[], from: bigint, to: bigint): Promise<number> {
    if (from >= to) return 0;
    const keys = events.filter((e) => BigInt(e.offset) >= from && BigInt(e.offset) < to).map((e) => ({ account: e.event.account_id, event: e.event.id }));
    const c = await pool.connect();
    let rows: Awaited<ReturnType<typeof ledgerRowsFromSource>>;
    let dead: DeadLetter[];
    let states: Map<string, AccountState>;
    try {
      rows = await ledgerRowsFromSource(c, keys, topics.events, partition, from, to);
      dead = await deadLettersFromSource(c, topics.events, partition, from, to);
      states = await loadAccountStates(c, [...new Set(rows.map((r) => r.row.accountId))], { forUpdate: false });
    } finally {
      c.release();
    }
    if (rows.length + dead.length === 0) return 0;
    await publish(partition, rows, dead, [...states.values()]);
    log.info({ partition, from: String(from), to: String(to), events: rows.length, dead: dead.length }, 'republished committed events after a restart');
    return rows.length;
  }

  /**
   * The batch's one transaction. `isolate` rates it by bisection (after Postgres refused it as a
   * whole); `lostFrom` accepts that the fence jumps from that offset to the batch (the offsets
   * in between were deleted by retention).
   */
  async function transact(
    partition: number, span: Span, messages: RawMessage[], parsed: ReturnType<typeof parseMessages>, ratedAt: string,
    opts: { isolate?: boolean; lostFrom?: bigint },
  ): Promise<{ fence: { next: bigint; published: bigint }; committed?: Committed }> {
    const c = await pool.connect();
    try {
      await c.query('BEGIN');
      const fence = await lockOffsets(c, groupId, topics.events, partition, span.fetched.toString());
      if (span.fetched > fence.next && opts.lostFrom !== fence.next) {
        await c.query('ROLLBACK');
        return { fence };
      }
      const isFresh = (offset: string) => BigInt(offset) >= fence.next;
      const events = parsed.events.filter((e) => isFresh(e.offset));
      const dead = parsed.dead.filter((d) => isFresh(d.offset));
      if (events.length + dead.length === 0 && span.end <= fence.next) {
        await c.query('ROLLBACK');
        return { fence };
      }
      const n = ++batchNo;
      const states = await loadAccountStates(c, [...new Set(events.map((e) => e.event.account_id))], { forUpdate: true });
      await prices.ensureKnown(events.flatMap((e) => {
        const s = states.get(e.event.account_id);
        return s ? [[e.event.product, s.currency] as [string, typeof s.currency]] : [];
      }));
      const already = await findRated(c, events.map((e) => ({ account: e.event.account_id, event: e.event.id })));
      const src = { groupId, topic: topics.events, partition, nextOffset: span.end.toString() };
      const byOffset = new Map(messages.map((m) => [m.offset, m]));
      const eventAt = new Map(events.map((e) => [e.offset, e.event]));
      const letter = (offset: string, code: DeadLetter['code'], reason: string) => deadLetter(byOffset.get(offset)!, code, reason, eventAt.get(offset));
      let committed: Committed;
      if (!opts.isolate) {
        const batch = rateBatch(events, states, prices.lookup, already);
        dead.push(...batch.rejected.map((r) => letter(r.offset, r.code, r.message)));
        await writeBatch(c, batch, dead, src, ratedAt);
        committed = { rows: batch.rows, dead, changed: [...batch.changed.values()], duplicates: batch.duplicates };
      } else {
        const batch = await rateIsolated(c, events, states, prices.lookup, already, (b) => writeBatch(c, b, [], src, ratedAt));
        dead.push(
          ...batch.rejected.map((r) => letter(r.offset, r.code, r.message)),
          ...batch.refused.map((r) => letter(r.offset, 'DB_REFUSED', r.reason)),
        );
        await writeBatch(c, emptyBatch(), dead, src, ratedAt);
        committed = { rows: batch.rows, dead, changed: [...batch.changed].map((id) => states.get(id)!), duplicates: batch.duplicates };
      }
      crashPoint('before-pg-commit', n);
      await c.query('COMMIT');
      stats.transactions++;
      crashPoint('after-pg-commit', n);
      return { fence, committed };
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
  }

  async function rateMessages(partition: number, span: Span, messages: RawMessage[], opts: { lostFrom?: bigint }): Promise<Outcome> {
    const ratedAt = new Date(now()).toISOString();
    // Decoding happens before the transaction: row locks are held only for database work.
    const parsed = parseMessages(messages);
    let result: Awaited<ReturnType<typeof transact>>;
    try {
      result = await transact(partition, span, messages, parsed, ratedAt, opts);
    } catch (e) {
      if (!isDataRefusal(e)) throw e;
      stats.isolatedBatches++;
      log.warn({ partition, from: String(span.fetched), to: String(span.end), err: (e as Error).message },
        'Postgres refused the batch; rating it again slice by slice to isolate what it refuses');
      result = await transact(partition, span, messages, parsed, ratedAt, { ...opts, isolate: true });
    }
    const { fence, committed } = result;
    if (span.fetched > fence.next && !committed) return { kind: 'behind', next: fence.next, published: fence.published };
    if (span.fetched > fence.next && opts.lostFrom !== undefined) {
      const lost = { partition, from: String(opts.lostFrom), to: String(span.fetched) };
      stats.lostRanges.push(lost);
      log.error(lost, 'offsets [from, to) were deleted from Kafka (retention) before they were rated: those events are lost');
    }
    const replayedUpTo = fence.next < span.end ? fence.next : span.end;
    const republished = await repair(partition, parsed.events, fence.published, replayedUpTo);
    if (committed) await publish(partition, committed.rows.map((row) => ({ row, ratedAt })), committed.dead, committed.changed);
    return {
      kind: 'done', republished, publishedUpTo: committed ? span.end : replayedUpTo,
      rated: committed?.rows.length ?? 0, duplicates: committed?.duplicates ?? 0, dead: committed?.dead.length ?? 0, accounts: committed?.changed.length ?? 0,
    };
  }

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: config.RATER_CONCURRENCY,
    eachBatch: ({ batch, resolveOffset, commitOffsetsIfNecessary, isRunning, isStale }) => lanes.run(batch.partition, async () => {
      if (batch.isEmpty() || !isRunning() || isStale()) return;
      const started = performance.now();
      // The fence follows Kafka's own offsets, transaction markers and aborted records included.
      const span: Span = { fetched: fetchedOffset(batch), end: BigInt(batch.lastOffset()) + 1n };
      let outcome = await rateMessages(batch.partition, span, batch.messages, {});
      if (outcome.kind === 'behind') {
        // Fetched past Postgres's fence: Kafka's committed offset ran ahead of Postgres (e.g. a
        // restored database), or retention deleted what lay in between. Postgres wins, from its
        // published offset so that whatever was committed but not yet published is redelivered,
        // unless that is gone: then the loss is reported once and rating goes on.
        const logStart = await logStartOffset(batch.partition);
        const resumeAt = outcome.published > logStart ? outcome.published : logStart;
        if (resumeAt < span.fetched) {
          stats.resumeSeeks++;
          log.warn({ partition: batch.partition, fetched: String(span.fetched), resumeAt: String(resumeAt) }, 'resuming from the offset stored in Postgres');
          consumer.seek({ topic: batch.topic, partition: batch.partition, offset: resumeAt.toString() });
          return;
        }
        outcome = await rateMessages(batch.partition, span, batch.messages, { lostFrom: outcome.next });
        if (outcome.kind === 'behind') throw new Error(`partition ${batch.partition}: the fence moved while a gap was examined; the batch is retried`);
      }
      // Resolving moves this consumer's fetch position; without it kafkajs fetches the same data again.
      resolveOffset(batch.lastOffset());
      // Everything up to here is published, so both watermarks may move, in parallel: the Kafka
      // offset only says where to fetch; published_offset only bounds what a restart re-checks.
      // The batch's own commit still goes through while a SIGTERM's disconnect waits for us.
      const { kind: _kind, publishedUpTo, ...figures } = outcome;
      await Promise.all([
        markPublished(pool, groupId, topics.events, batch.partition, publishedUpTo),
        commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: span.end.toString() }] }] }),
      ]);
      log.info({
        partition: batch.partition, size: batch.messages.length, ...figures,
        ms: Math.round(performance.now() - started), lag: batch.offsetLag(),
      }, 'batch rated');
    }),
  }).catch(abandon);

  return {
    stats,
    get cachePending() {
      return cacheWriter.pending;
    },
    stop,
  };
}
