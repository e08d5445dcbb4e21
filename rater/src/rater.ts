import type { Kafka, Message } from 'kafkajs';
import { topicNames } from '@meterstream/schemas';
import { IDEMPOTENT_PRODUCER_CONFIG, serialSender } from '@meterstream/schemas/kafka';
import type { Pool } from '@meterstream/schemas/postgres';
import type { Logger } from '@meterstream/schemas/logger';
import type { BalanceCache } from '@meterstream/schemas/ledger/balance-cache';
import { loadAccountStates, type AccountState } from '@meterstream/schemas/ledger/account-state';
import type { RaterConfig } from './config.js';
import { PriceBook } from './price-book.js';
import { parseMessages, type DeadLetter, type RawMessage } from './parse.js';
import { rateBatch, toRatedEvent, type LedgerRow, type SourceEvent } from './rate-batch.js';
import { findRated, ledgerRowsFromSource, lockOffsets, markPublished, writeBatch } from './ledger-store.js';

export interface RaterDeps {
  config: RaterConfig;
  pool: Pool;
  cache: BalanceCache;
  kafka: Kafka;
  log: Logger;
}

type Outcome =
  | { kind: 'gap'; resumeAt: bigint }
  | { kind: 'done'; publishedUpTo: bigint; rated: number; duplicates: number; dead: number; accounts: number; republished: number };

/**
 * The rater: one consumer group on usage.events. Per partition batch, one Postgres transaction
 * holds the charges, the grant changes and the partition's offset (the fence that makes a
 * redelivered or zombie batch a no-op). After the commit the rated events go to usage.rated and
 * the states to Redis; only then is the Kafka offset committed. A crash anywhere in between is
 * repaired on redelivery: whatever Postgres holds beyond published_offset is published again.
 */
export async function startRater({ config, pool, cache, kafka, log }: RaterDeps): Promise<{ stop(): Promise<void> }> {
  const topics = topicNames(config.KAFKA_TOPIC_PREFIX);
  const groupId = config.RATER_GROUP_ID;
  const prices = new PriceBook(pool, log);
  await prices.start();
  const producer = kafka.producer(IDEMPOTENT_PRODUCER_CONFIG);
  await producer.connect();
  const send = serialSender(producer);
  const consumer = kafka.consumer({
    groupId,
    sessionTimeout: config.RATER_SESSION_TIMEOUT_MS,
    heartbeatInterval: Math.min(3000, config.RATER_SESSION_TIMEOUT_MS / 3),
    maxBytesPerPartition: config.RATER_MAX_BYTES_PER_PARTITION,
    maxBytes: 4 * config.RATER_MAX_BYTES_PER_PARTITION,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: topics.events, fromBeginning: true });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    // kafkajs restarts the consumer after retriable errors; after any other it stops consuming
    // for good, so exit and let the supervisor start a fresh rater (Postgres holds the position).
    if (payload.restart) return;
    log.fatal({ err: payload.error }, 'consumer crashed for good; exiting');
    process.exit(1);
  });
  consumer.on(consumer.events.GROUP_JOIN, ({ payload }) => {
    log.info({ partitions: payload.memberAssignment[topics.events] ?? [], leader: payload.isLeader }, 'partitions assigned');
  });
  let batchNo = 0;

  const crashPoint = (point: RaterConfig['RATER_CRASH_AT'], n: number) => {
    if (config.RATER_CRASH_AT === point && n === config.RATER_CRASH_ON_BATCH) {
      log.warn({ point, batch: n }, 'fault injection: SIGKILL');
      process.kill(process.pid, 'SIGKILL');
    }
  };

  async function sendDeadLetters(partition: number, dead: DeadLetter[]): Promise<void> {
    if (dead.length === 0) return;
    await send({
      topic: topics.dlq,
      acks: -1,
      messages: dead.map((d) => ({
        key: d.message.key,
        value: d.message.value,
        headers: {
          'error-code': d.code, 'error-reason': d.reason,
          'source-topic': topics.events, 'source-partition': String(partition), 'source-offset': d.message.offset,
        },
      })),
    });
    log.warn({ partition, count: dead.length, codes: [...new Set(dead.map((d) => d.code))] }, 'events sent to dead-letter topic');
  }

  async function publish(rows: { row: LedgerRow; ratedAt: string }[], states: Iterable<AccountState>): Promise<void> {
    const messages: Message[] = rows.map(({ row, ratedAt }) => ({ key: row.accountId, value: JSON.stringify(toRatedEvent(row, ratedAt)) }));
    await Promise.all([
      messages.length > 0 ? send({ topic: topics.rated, acks: -1, messages }) : undefined,
      cache.write(states),
    ]);
  }

  /** Re-publishes and re-caches what a crashed predecessor committed in [from, to) but may not have sent. */
  async function repair(partition: number, events: SourceEvent[], from: bigint, to: bigint): Promise<number> {
    const keys = events.filter((e) => BigInt(e.offset) >= from && BigInt(e.offset) < to).map((e) => ({ account: e.event.account_id, event: e.event.id }));
    if (keys.length === 0) return 0;
    const c = await pool.connect();
    try {
      const rows = await ledgerRowsFromSource(c, keys, topics.events, partition, from, to);
      const states = await loadAccountStates(c, [...new Set(rows.map((r) => r.row.accountId))], { forUpdate: false });
      await publish(rows, states.values());
      log.info({ partition, from: String(from), to: String(to), events: rows.length }, 'republished committed events after a restart');
      return rows.length;
    } finally {
      c.release();
    }
  }

  async function rateMessages(partition: number, messages: RawMessage[]): Promise<Outcome> {
    const first = messages[0]!.offset;
    const end = BigInt(messages[messages.length - 1]!.offset) + 1n;
    const ratedAt = new Date().toISOString();
    // Decoding happens before the transaction: row locks are held only for database work.
    const parsed = parseMessages(messages);
    const c = await pool.connect();
    let fence: { next: bigint; published: bigint };
    let result: { rows: LedgerRow[]; changed: Map<string, AccountState>; duplicates: number; dead: number } | undefined;
    try {
      await c.query('BEGIN');
      fence = await lockOffsets(c, groupId, topics.events, partition, first);
      if (BigInt(first) > fence.next) {
        await c.query('ROLLBACK');
        return { kind: 'gap', resumeAt: fence.published };
      }
      const isFresh = (offset: string) => BigInt(offset) >= fence.next;
      const events = parsed.events.filter((e) => isFresh(e.offset));
      const dead = parsed.dead.filter((d) => isFresh(d.message.offset));
      if (events.length + dead.length === 0) {
        await c.query('ROLLBACK');
      } else {
        const n = ++batchNo;
        const states = await loadAccountStates(c, [...new Set(events.map((e) => e.event.account_id))], { forUpdate: true });
        await prices.ensureKnown(events.flatMap((e) => {
          const s = states.get(e.event.account_id);
          return s ? [[e.event.product, s.currency] as [string, typeof s.currency]] : [];
        }));
        const already = await findRated(c, events.map((e) => ({ account: e.event.account_id, event: e.event.id })));
        const batch = rateBatch(events, states, prices.lookup, already);
        await writeBatch(c, batch, { groupId, topic: topics.events, partition, nextOffset: end.toString() }, ratedAt);
        const byOffset = new Map(messages.map((m) => [m.offset, m]));
        dead.push(...batch.rejected.map((r) => ({ message: byOffset.get(r.offset)!, code: r.code, reason: r.message })));
        // Before the commit: a crash re-rates the batch and re-sends these, never loses them.
        await sendDeadLetters(partition, dead);
        crashPoint('before-pg-commit', n);
        await c.query('COMMIT');
        crashPoint('after-pg-commit', n);
        result = { rows: batch.rows, changed: batch.changed, duplicates: batch.duplicates, dead: dead.length };
      }
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
    const replayedUpTo = fence.next < end ? fence.next : end;
    const republished = await repair(partition, parsed.events, fence.published, replayedUpTo);
    if (result) await publish(result.rows.map((row) => ({ row, ratedAt })), result.changed.values());
    return {
      kind: 'done', republished, publishedUpTo: result ? end : replayedUpTo,
      rated: result?.rows.length ?? 0, duplicates: result?.duplicates ?? 0, dead: result?.dead ?? 0, accounts: result?.changed.size ?? 0,
    };
  }

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: config.RATER_CONCURRENCY,
    eachBatch: async ({ batch, resolveOffset, commitOffsetsIfNecessary, isRunning, isStale }) => {
      if (batch.isEmpty() || !isRunning() || isStale()) return;
      const started = performance.now();
      const outcome = await rateMessages(batch.partition, batch.messages);
      if (outcome.kind === 'gap') {
        // Kafka's committed offset ran ahead of Postgres (e.g. a restored database): Postgres wins,
        // from its published offset so that whatever was committed but not yet published is redelivered.
        log.warn({ partition: batch.partition, resumeAt: String(outcome.resumeAt) }, 'resuming from the offset stored in Postgres');
        consumer.seek({ topic: batch.topic, partition: batch.partition, offset: outcome.resumeAt.toString() });
        return;
      }
      // Resolving moves this consumer's fetch position; without it kafkajs fetches the same data again.
      resolveOffset(batch.lastOffset());
      const next = (BigInt(batch.lastOffset()) + 1n).toString();
      // Everything up to here is published, so both watermarks may move, in parallel: the Kafka
      // offset only says where to fetch; published_offset only bounds what a restart re-checks.
      // The batch's own commit still goes through while a SIGTERM's disconnect waits for us.
      const { kind: _kind, publishedUpTo, ...stats } = outcome;
      await Promise.all([
        markPublished(pool, groupId, topics.events, batch.partition, publishedUpTo),
        commitOffsetsIfNecessary({ topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: next }] }] }),
      ]);
      log.info({
        partition: batch.partition, size: batch.messages.length, ...stats,
        ms: Math.round(performance.now() - started), lag: batch.offsetLag(),
      }, 'batch rated');
    },
  });

  return {
    async stop() {
      await consumer.disconnect(); // lets the running batch finish and leaves the group
      await producer.disconnect();
      await prices.stop();
    },
  };
}
