import type { Message } from 'kafkajs';
import { inTransaction, type Pool } from '@meterstream/platform/postgres';
import type { Logger } from '@meterstream/platform/logger';
import type { TopicNames } from '@meterstream/schemas';
import type { DeadLetterCode } from '@meterstream/ledger/dead-letters';

export interface ReplayFilter {
  code?: DeadLetterCode;
  account?: string;
  /** Only dead letters recorded at or after this time. */
  since?: Date;
}

export interface ReplayResult {
  /** Payloads produced to usage.events again. */
  replayed: number;
  /** Dead letters whose event the ledger holds already (or that repeat one replayed in this run): marked, not produced. */
  skipped: number;
}

/**
 * Produces the dead letters matching the filter to usage.events again, keyed by account, and
 * marks them replayed in the same transaction, page by page (rows locked, so two replays running
 * at once share the work). An event the ledger already holds is not produced at all; and should
 * a crash between the produce and the commit replay one twice, the ledger's primary key charges
 * it once.
 */
export async function replayDeadLetters(
  pool: Pool, send: (record: { topic: string; messages: Message[] }) => Promise<void>, topics: TopicNames,
  filter: ReplayFilter, log: Logger, pageSize = 500,
): Promise<ReplayResult> {
  const total: ReplayResult = { replayed: 0, skipped: 0 };
  const seen = new Set<string>();
  for (;;) {
    const page = await inTransaction(pool, async (c) => {
      const r = await c.query<{ src_topic: string; src_partition: number; src_offset: bigint; account_id: string | null; event_id: string | null; msg_key: Buffer | null; payload: Buffer; charged: boolean }>(
        `SELECT d.src_topic, d.src_partition, d.src_offset, d.account_id, d.event_id, d.msg_key, d.payload,
                EXISTS (SELECT 1 FROM usage_ledger l WHERE l.account_id = d.account_id AND l.event_id = d.event_id) AS charged
           FROM dead_letters d
          WHERE d.replayed_at IS NULL AND d.payload IS NOT NULL
            AND ($1::text IS NULL OR d.code = $1) AND ($2::text IS NULL OR d.account_id = $2) AND ($3::timestamptz IS NULL OR d.created_at >= $3)
          ORDER BY d.created_at, d.src_topic, d.src_partition, d.src_offset
          LIMIT $4 FOR UPDATE OF d SKIP LOCKED`,
        [filter.code ?? null, filter.account ?? null, filter.since?.toISOString() ?? null, pageSize],
      );
      const messages: Message[] = [];
      for (const d of r.rows) {
        const id = d.account_id !== null && d.event_id !== null ? `${d.account_id}\u0000${d.event_id}` : undefined;
        if (d.charged || (id !== undefined && seen.has(id))) continue;
        if (id !== undefined) seen.add(id);
        messages.push({ key: d.account_id ?? d.msg_key, value: d.payload, headers: { 'replay-of': `${d.src_topic}/${d.src_partition}/${d.src_offset}` } });
      }
      if (messages.length > 0) await send({ topic: topics.events, messages });
      await c.query(
        `UPDATE dead_letters SET replayed_at = now()
          WHERE (src_topic, src_partition, src_offset) IN (SELECT * FROM unnest($1::text[], $2::int[], $3::bigint[]))`,
        [r.rows.map((d) => d.src_topic), r.rows.map((d) => d.src_partition), r.rows.map((d) => d.src_offset.toString())],
      );
      return { selected: r.rows.length, replayed: messages.length };
    });
    total.replayed += page.replayed;
    total.skipped += page.selected - page.replayed;
    if (page.selected > 0) log.info({ ...total, page: page.selected }, 'dead letters replayed to usage.events');
    if (page.selected < pageSize) return total;
  }
}
