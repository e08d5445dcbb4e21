import type { Batch, Kafka } from 'kafkajs';
import { topicNames } from '@meterstream/schemas';
import { SERIAL_PRODUCER_CONFIG, serialSender } from '@meterstream/platform/kafka';
import type { Pool } from '@meterstream/platform/postgres';
import type { Logger } from '@meterstream/platform/logger';
import type { BalanceCache } from '@meterstream/ledger/balance-cache';
import { CacheWriter } from '@meterstream/ledger/cache-writer';
import { EntrySweeper } from '@meterstream/ledger/entry-sweeper';
import { markPublished, publishedOffsets, skipUnreadable } from '@meterstream/ledger/rating-store';
import { WriteOrder } from '@meterstream/ledger/write-order';
import { rateBatch, type RatedOutcome } from '@meterstream/ledger/commands/rate-batch';
import type { RaterConfig } from './config.js';
import { PriceBook } from './price-book.js';
import { parseMessages } from './parse.js';
import { PartitionLanes } from './partition-lanes.js';
import { systemClock } from '@meterstream/platform/clock';

export interface RaterDeps {
  config: RaterConfig;
  pool: Pool;
  cache: BalanceCache;
  kafka: Kafka;
  log: Logger;
  now?: () => number;
  /** The consumer stopped for good (kafkajs will not restart it): the process should exit. */
  onFatal?: (err: Error) => void;
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

// kafkajs (pinned) knows the offset each batch was fetched from but does not declare it.
const fetchedOffset = (batch: Batch): bigint =>
  BigInt((batch as Batch & { fetchedOffset?: string }).fetchedOffset ?? batch.firstOffset() ?? batch.lastOffset());

/**
 * The rater: one consumer group on usage.events, handing each partition batch to the ledger's
 * rate-batch command, which runs it through the write order (commit, publish, cache, offsets; see
 * @meterstream/ledger/write-order). What stays here is Kafka's side: assignments, seeks back to
 * Postgres's position, stepping over transaction markers, the consumer's offsets.
 */
export async function startRater({ config, pool, cache, kafka, log, now = systemClock.now, onFatal }: RaterDeps): Promise<Rater> {
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const groupId = config.RATER_GROUP_ID;
  const stats: RaterStats = { transactions: 0, isolatedBatches: 0, resumeSeeks: 0, lostRanges: [] };
  const prices = new PriceBook(pool, log);
  const cacheWriter = new CacheWriter(cache, pool, log, { now });
  const producer = kafka.producer(SERIAL_PRODUCER_CONFIG);
  const send = serialSender(producer);
  const order = new WriteOrder({
    pool, send, cache: cacheWriter, topics, log, now,
    ...(config.RATER_CRASH_AT ? { fault: { at: config.RATER_CRASH_AT, onCommit: config.RATER_CRASH_ON_BATCH } } : {}),
  });
  // Ledger entries (grants) a crashed command left unpublished; usage is republished by the batches.
  const sweeper = new EntrySweeper(pool, send, topics.entries, log);
  const admin = kafka.admin();
  const lanes = new PartitionLanes();
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: config.RATER_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.min(3000, config.RATER_SESSION_TIMEOUT_MS / 3),
    maxBytesPerPartition: config.RATER_MAX_BYTES_PER_PARTITION,
    maxBytes: 4 * config.RATER_MAX_BYTES_PER_PARTITION,
    minBytes: config.RATER_FETCH_MIN_BYTES,
    maxWaitTimeInMs: config.RATER_FETCH_MAX_WAIT_MS,
  });
  async function stop(): Promise<void> {
    await consumer.disconnect(); // lets the running batch finish and leaves the group
    await sweeper.stop();
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
  sweeper.start();
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    // kafkajs restarts the consumer after retriable errors; after any other it stops consuming
    // for good: the owner of the process exits and a fresh rater starts (Postgres holds the position).
    if (payload.restart) return;
    log.fatal({ err: payload.error }, 'consumer crashed for good');
    onFatal?.(payload.error);
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

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: config.RATER_CONCURRENCY,
    eachBatch: ({ batch, resolveOffset, commitOffsetsIfNecessary, isRunning, isStale }) => lanes.run(batch.partition, async () => {
      if (batch.isEmpty() || !isRunning() || isStale()) return;
      const started = performance.now();
      const { partition } = batch;
      // Decoding happens before the transaction: row locks are held only for database work.
      const decoded = {
        groupId, topic: topics.events, partition, messages: batch.messages, ...parseMessages(batch.messages),
        ratedAt: new Date(now()).toISOString(),
        // The fence follows Kafka's own offsets, transaction markers and aborted records included.
        fetched: fetchedOffset(batch), end: BigInt(batch.lastOffset()) + 1n,
      };
      // The write order's last step: everything up to here is published, so both watermarks may
      // move, in parallel: the Kafka offset only says where to fetch; published_offset only bounds
      // what a restart re-checks. The batch's own commit still goes through while a SIGTERM's
      // disconnect waits for us.
      const offsets = async ({ publishedUpTo }: RatedOutcome) => {
        // Resolving moves this consumer's fetch position; without it kafkajs fetches the same data again.
        resolveOffset(batch.lastOffset());
        await Promise.all([
          markPublished(pool, groupId, topics.events, partition, publishedUpTo),
          commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition, offset: decoded.end.toString() }] }] }),
        ]);
      };
      const deps = { order, prices, log };
      let outcome = await rateBatch(deps, decoded, offsets);
      if (outcome.kind === 'behind') {
        // Fetched past Postgres's fence: Kafka's committed offset ran ahead of Postgres (e.g. a
        // restored database), or retention deleted what lay in between. Postgres wins, from its
        // published offset so that whatever was committed but not yet published is redelivered,
        // unless that is gone: then the loss is reported once and rating goes on.
        const logStart = await logStartOffset(partition);
        const resumeAt = outcome.published > logStart ? outcome.published : logStart;
        if (resumeAt < decoded.fetched) {
          stats.resumeSeeks++;
          log.warn({ partition, fetched: String(decoded.fetched), resumeAt: String(resumeAt) }, 'resuming from the offset stored in Postgres');
          consumer.seek({ topic: batch.topic, partition, offset: resumeAt.toString() });
          return;
        }
        outcome = await rateBatch(deps, { ...decoded, lostFrom: outcome.next }, offsets);
        if (outcome.kind === 'behind') throw new Error(`partition ${partition}: the fence moved while a gap was examined; the batch is retried`);
      }
      const { kind: _kind, committed, isolated, lost, publishedUpTo: _upTo, ...figures } = outcome;
      if (committed) stats.transactions++;
      if (isolated) stats.isolatedBatches++;
      if (lost) {
        const range = { partition, from: String(lost.from), to: String(lost.to) };
        stats.lostRanges.push(range);
        log.error(range, 'offsets [from, to) were deleted from Kafka (retention) before they were rated: those events are lost');
      }
      log.info({ partition, size: batch.messages.length, ...figures, ms: Math.round(performance.now() - started), lag: batch.offsetLag() }, 'batch rated');
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
