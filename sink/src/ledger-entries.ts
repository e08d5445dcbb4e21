import { Readable } from 'node:stream';
import type { EachBatchPayload, Kafka, Producer } from 'kafkajs';
import { RetryAborted } from '@meterstream/platform/backoff';
import { LedgerEntry, toMicros, topicNames } from '@meterstream/schemas';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import type { Logger } from '@meterstream/platform/logger';
import type { SinkConfig } from './config.js';
import { deadLetterMessage, type DeadLetter } from './dead-letters.js';
import { int64, utcDateTime64 } from './rows.js';
import { dedupToken, sqlString } from './store.js';
import { keepAlive } from './write-support.js';

/** The columns of an entry's line, in order (platform/migrations/clickhouse/003_ledger_entries.sql). */
export const ENTRY_COLUMNS = [
  'account_id', 'entry_id', 'seq', 'kind', 'amount', 'currency', 'grant_id', 'overdraft_paid', 'balance_after', 'reason',
  'idempotency_key', 'created_at',
] as const;

/** One ledger_entries row as a JSONCompactEachRow line: Int64 as exact digits, strings JSON-escaped. */
export interface EntryRow {
  key: string;
  line: string;
}

export type DecodedEntry =
  | { ok: true; row: EntryRow }
  | { ok: false; code: 'INVALID_JSON' | 'INVALID_LEDGER_ENTRY' | 'OUT_OF_RANGE'; reason: string };

/** Never throws: what cannot become a row comes back with the reason for the dead-letter topic. */
export function decodeLedgerEntry(value: Buffer | null): DecodedEntry {
  if (!value || value.length === 0) return { ok: false, code: 'INVALID_JSON', reason: 'empty message' };
  let json: unknown;
  try {
    json = JSON.parse(value.toString('utf8'));
  } catch (e) {
    return { ok: false, code: 'INVALID_JSON', reason: (e as Error).message };
  }
  const parsed = LedgerEntry.safeParse(json);
  if (!parsed.success) {
    const reason = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ');
    return { ok: false, code: 'INVALID_LEDGER_ENTRY', reason };
  }
  try {
    return { ok: true, row: entryRow(parsed.data) };
  } catch (e) {
    if (e instanceof RangeError) return { ok: false, code: 'OUT_OF_RANGE', reason: e.message };
    throw e;
  }
}

export function entryRow(e: LedgerEntry): EntryRow {
  const line = [
    JSON.stringify(e.account_id), JSON.stringify(e.entry_id), String(e.seq), JSON.stringify(e.kind),
    int64(toMicros(e.amount), 'amount'), JSON.stringify(e.currency), JSON.stringify(e.grant_id),
    int64(toMicros(e.overdraft_paid), 'overdraft_paid'), int64(toMicros(e.balance_after), 'balance_after'),
    JSON.stringify(e.reason), JSON.stringify(e.idempotency_key), JSON.stringify(utcDateTime64(e.created_at, 'created_at')),
  ];
  return { key: `${e.account_id}\u0000${e.entry_id}`, line: `[${line.join(',')}]` };
}

/**
 * One insert under a deduplication token, like rated_events (see store.ts insertRows for why the
 * settings are in the SQL text). No check for rows already there: entries are few, and a copy
 * inserted twice is collapsed by ReplacingMergeTree and never seen through FINAL.
 */
export async function insertEntries(ch: ClickHouseClient, database: string, rows: readonly EntryRow[], token: string): Promise<void> {
  const query = `INSERT INTO ${database}.ledger_entries (${ENTRY_COLUMNS.join(', ')}) SETTINGS async_insert = 0, insert_deduplicate = 1, `
    + `insert_deduplication_token = ${sqlString(token)} FORMAT JSONCompactEachRow`;
  const { stream } = await ch.exec({ query, values: Readable.from([rows.map((r) => r.line).join('\n')]) });
  stream.destroy();
}

export interface EntriesSinkDeps {
  config: SinkConfig;
  ch: ClickHouseClient;
  database: string;
  kafka: Kafka;
  log: Logger;
  /** The sink's producer, for dead letters. */
  producer: Producer;
  /** The sink's retry with backoff (counted in its stats), stopped by signal. */
  retry<T>(what: string, signal: AbortSignal, op: () => Promise<T>): Promise<T>;
  stopping: AbortSignal;
  onFatal?: (err: Error) => void;
  /** Counted as entries are written and dead-lettered. */
  stats: { entries: number; invalid: number };
}

/**
 * ledger.entries -> ClickHouse ledger_entries: a small consumer beside the usage path, in a group
 * of its own (`<SINK_GROUP_ID>.entries`, so the usage group's assignment never changes), one
 * insert per partition batch. Offsets are committed after the write, as for usage.
 */
export function createEntriesConsumer(deps: EntriesSinkDeps): { start(): Promise<void>; stop(): Promise<void> } {
  const { config, ch, database, kafka, log, producer, retry, stopping, onFatal, stats } = deps;
  const { entries: topic, dlq } = topicNames(config.KAFKA_TOPIC_PREFIX);
  const consumer = kafka.consumer({
    groupId: `${config.SINK_GROUP_ID}.entries`,
    sessionTimeout: config.SINK_SESSION_TIMEOUT_MS,
    maxWaitTimeInMs: config.SINK_FETCH_MAX_WAIT_MS,
    allowAutoTopicCreation: false,
  });
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    log.error({ err: payload.error, restart: payload.restart }, 'ledger entries consumer crashed');
    if (!payload.restart) onFatal?.(payload.error);
  });

  async function write({ batch, resolveOffset, heartbeat, commitOffsetsIfNecessary }: EachBatchPayload): Promise<void> {
    const rows: EntryRow[] = [];
    const dead: DeadLetter[] = [];
    for (const m of batch.messages) {
      const d = decodeLedgerEntry(m.value);
      if (d.ok) rows.push(d.row);
      else dead.push({ topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value, code: d.code, reason: d.reason });
    }
    const beat = keepAlive(heartbeat);
    const signal = AbortSignal.any([stopping, beat.lost]);
    try {
      if (dead.length > 0) {
        await retry('dead-letter publish', signal, () => producer.send({ topic: dlq, acks: -1, messages: dead.map(deadLetterMessage) }));
        log.warn({ count: dead.length, codes: [...new Set(dead.map((d) => d.code))] }, 'invalid ledger entries sent to the dead-letter topic');
      }
      if (rows.length > 0) {
        const range = { topic: batch.topic, partition: batch.partition, first: batch.messages[0]!.offset, last: batch.messages.at(-1)!.offset };
        await retry('ClickHouse write of ledger entries', signal, () => insertEntries(ch, database, rows, dedupToken([range], rows.map((r) => r.key))));
      }
      const last = batch.lastOffset();
      resolveOffset(last);
      await commitOffsetsIfNecessary({ topics: [{ topic, partitions: [{ partition: batch.partition, offset: (BigInt(last) + 1n).toString() }] }] });
      stats.entries += rows.length;
      stats.invalid += dead.length;
      log.info({ partition: batch.partition, rows: rows.length, invalid: dead.length }, 'ledger entries written to ClickHouse');
    } catch (err) {
      // A failed heartbeat means the group is rebalancing: kafkajs rejoins when it sees that error.
      if (beat.lost.aborted) throw beat.lost.reason;
      if (err instanceof RetryAborted) return; // stopping while ClickHouse fails: the next start redoes the batch
      throw err;
    } finally {
      beat.stop();
    }
  }

  return {
    async start() {
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: write });
    },
    /** Waits for the batch in hand, then leaves the group. */
    stop: () => consumer.disconnect(),
  };
}
