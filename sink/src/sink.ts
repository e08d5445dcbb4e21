import { Partitioners, type EachBatchPayload, type Kafka } from 'kafkajs';
import { topicNames } from '@meterstream/schemas';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import type { Logger } from '@meterstream/platform/logger';
import type { SinkConfig } from './config.js';
import { decodeBatch, type DecodedBatch } from './batch.js';
import { retryWithBackoff, RetryAborted } from '@meterstream/platform/backoff';
import { createCoalescer } from './coalescer.js';
import { deadLetterMessage } from './dead-letters.js';
import { rowKey, type RatedRow } from './row-format.js';
import { writeFresh, type UniqueRows } from './store.js';
import { brief, keepAlive } from './write-support.js';
import { createEntriesConsumer } from './ledger-entries.js';

export interface SinkDeps {
  config: SinkConfig;
  ch: ClickHouseClient;
  database: string;
  kafka: Kafka;
  log: Logger;
  /** kafkajs gave up on the consumer (a non-retriable error): the sink no longer consumes. */
  onFatal?: (err: Error) => void;
}

export interface SinkStats {
  /** ClickHouse writes (each covers one or more partition batches) */
  writes: number;
  rows: number;
  duplicates: number;
  invalid: number;
  retries: number;
  groupJoins: number;
  /** ledger entries written (ledger.entries -> ledger_entries) */
  entries: number;
}

export interface Sink {
  readonly stats: Readonly<SinkStats>;
  /** Finishes the batch in hand (unless ClickHouse is failing: then it stays uncommitted), commits, leaves the group. */
  stop(): Promise<void>;
}

type Work = DecodedBatch & { kafka: Pick<EachBatchPayload, 'resolveOffset' | 'heartbeat' | 'commitOffsetsIfNecessary'> };

// Up to this many partition batches of one fetch are handed over together and merged into one insert.
const PARTITIONS_PER_WRITE = 64;

/**
 * usage.rated -> ClickHouse rated_events, in its own consumer group. Rows whose (account_id,
 * event_id) the table already holds are dropped first, and the insert carries a deduplication
 * token, so a retried or replayed batch writes nothing twice. Neither is atomic across processes
 * (two sinks during a rebalance can both insert an event); what keeps the figures exact is that
 * they are read through rated_events FINAL. Offsets are committed only after the write, so a
 * failing ClickHouse stalls the sink (with backoff) and it catches up later. Beside it, a small
 * consumer writes ledger.entries (grants and every other non-usage movement) to ledger_entries
 * (ledger-entries.ts).
 */
export async function startSink({ config, ch, database, kafka, log, onFatal }: SinkDeps): Promise<Sink> {
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const stats: SinkStats = { writes: 0, rows: 0, duplicates: 0, invalid: 0, retries: 0, groupJoins: 0, entries: 0 };
  const stopping = new AbortController();
  const producer = kafka.producer({ allowAutoTopicCreation: false, createPartitioner: Partitioners.DefaultPartitioner });
  const consumer = kafka.consumer({
    groupId: config.SINK_GROUP_ID,
    sessionTimeout: config.SINK_SESSION_TIMEOUT_MS,
    // The broker returns at most maxBytesPerPartition of a partition: were minBytes more than that,
    // a backlog in one partition alone would wait out maxWaitTimeInMs on every fetch.
    minBytes: Math.min(config.SINK_FETCH_MIN_BYTES, config.SINK_MAX_BYTES_PER_PARTITION),
    maxWaitTimeInMs: config.SINK_FETCH_MAX_WAIT_MS,
    maxBytesPerPartition: config.SINK_MAX_BYTES_PER_PARTITION,
    maxBytes: 4 * config.SINK_MAX_BYTES_PER_PARTITION,
    allowAutoTopicCreation: false,
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    stats.groupJoins++;
    log.info({ group: payload.groupId, memberId: payload.memberId, partitions: payload.memberAssignment[topics.rated] ?? [] }, 'sink joined its consumer group');
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    log.error({ err: payload.error, restart: payload.restart }, 'sink consumer crashed');
    if (!payload.restart) onFatal?.(payload.error);
  });

  function retry<T>(what: string, signal: AbortSignal, op: () => Promise<T>): Promise<T> {
    return retryWithBackoff(op, {
      initialMs: config.SINK_RETRY_INITIAL_MS,
      maxMs: config.SINK_RETRY_MAX_MS,
      signal,
      onError(err, attempt, delayMs) {
        stats.retries++;
        log.warn({ error: brief(err), attempt, delayMs }, `${what} failed; retrying the same batch, its offsets stay uncommitted`);
      },
    });
  }

  async function write(works: Work[]): Promise<void> {
    const started = performance.now();
    works.sort((a, b) => a.range.partition - b.range.partition); // the same batches give the same token
    const beat = keepAlive(works[0]!.kafka.heartbeat);
    const signal = AbortSignal.any([stopping.signal, beat.lost]);
    try {
      const dead = works.flatMap((w) => w.dead);
      if (dead.length > 0) {
        await retry('dead-letter publish', signal, () => producer.send({ topic: topics.dlq, acks: -1, messages: dead.map(deadLetterMessage) }));
        log.warn({ count: dead.length, codes: [...new Set(dead.map((d) => d.code))] }, 'invalid rated events sent to the dead-letter topic');
      }
      const { unique, repeats } = firstOccurrences(works);
      const inserted = await retry('ClickHouse write', signal, () => writeFresh(ch, database, unique, works.map((w) => w.range)));
      for (const w of works) w.kafka.resolveOffset(w.lastOffset);
      // The payload's commit goes straight to the group coordinator; consumer.commitOffsets()
      // would be skipped silently once disconnect() has begun, losing the commit of the last batch.
      await works[0]!.kafka.commitOffsetsIfNecessary({
        topics: [{ topic: topics.rated, partitions: works.map((w) => ({ partition: w.range.partition, offset: w.next })) }],
      });
      const duplicates = unique.rows.length - inserted + repeats;
      stats.writes++;
      stats.rows += inserted;
      stats.duplicates += duplicates;
      stats.invalid += dead.length;
      log.info({
        partitions: works.map((w) => w.range.partition),
        messages: works.reduce((n, w) => n + w.messages, 0),
        rows: inserted, duplicates, invalid: dead.length,
        lag: Number(works.reduce((n, w) => n + w.lag, 0n)),
        ms: Math.round(performance.now() - started),
      }, 'batch written to ClickHouse');
    } catch (err) {
      // A failed heartbeat means the group is rebalancing: kafkajs rejoins when it sees that error.
      throw beat.lost.aborted ? beat.lost.reason : err;
    } finally {
      beat.stop();
    }
  }

  const coalescer = createCoalescer<Work>({ maxWeight: config.SINK_MAX_INSERT_ROWS, weight: (w) => w.messages, write });

  const entries = createEntriesConsumer({ config, ch, database, kafka, log, producer, retry, stopping: stopping.signal, onFatal, stats });
  async function stop(): Promise<void> {
    stopping.abort();
    // Each waits for the batch in hand, then leaves its group.
    await Promise.all([consumer.disconnect(), entries.stop()]);
    await producer.disconnect();
  }
  // A start that fails halfway (Kafka unreachable) closes what it opened, so the caller can retry.
  const abandon = async (err: unknown): Promise<never> => {
    await stop().catch(() => undefined);
    throw err;
  };

  await producer.connect().catch(abandon);
  await consumer.connect().catch(abandon);
  await consumer.subscribe({ topic: topics.rated, fromBeginning: true }).catch(abandon);
  await consumer.run({
    autoCommit: false,
    // An unresolved batch is fetched again: one given up on at stop() or a rebalance is never skipped.
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: PARTITIONS_PER_WRITE,
    eachBatch: async ({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary }) => {
      try {
        await coalescer.submit({ ...decodeBatch(batch), kafka: { resolveOffset, heartbeat, commitOffsetsIfNecessary } });
      } catch (err) {
        if (err instanceof RetryAborted) return; // stop() while ClickHouse fails: the next start redoes it
        throw err;
      }
    },
  }).catch(abandon);
  await entries.start().catch(abandon);

  return { stats, stop };
}

/** The same event twice in one write (republished within the batch window) is written once. */
function firstOccurrences(works: readonly { rows: readonly RatedRow[] }[]): { unique: UniqueRows; repeats: number } {
  const seen = new Set<string>();
  const unique: UniqueRows = { rows: [], keys: [] };
  let repeats = 0;
  for (const w of works) {
    for (const r of w.rows) {
      const key = rowKey(r);
      if (seen.has(key)) {
        repeats++;
        continue;
      }
      seen.add(key);
      unique.rows.push(r);
      unique.keys.push(key);
    }
  }
  return { unique, repeats };
}
