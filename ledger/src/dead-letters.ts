import type { PoolClient } from '@meterstream/platform/postgres';
import type { Send } from './entries.js';

type Message = Parameters<Send>[0]['messages'][number];

export const DEAD_LETTER_CODES = [
  'INVALID_JSON', 'INVALID_EVENT', 'UNKNOWN_ACCOUNT', 'UNKNOWN_PRODUCT', 'AMOUNT_OUT_OF_RANGE', 'DB_REFUSED',
] as const;
export type DeadLetterCode = (typeof DEAD_LETTER_CODES)[number];

/** A message of usage.events the rater could not charge, with the original bytes. */
export interface DeadLetter {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  code: DeadLetterCode;
  reason: string;
  /** Known when the message decoded to an event. */
  accountId?: string;
  eventId?: string;
}

// Node 20 has String.prototype.toWellFormed; the project's TypeScript lib (ES2023) does not declare it.
const toWellFormed = (s: string): string => (s as unknown as { toWellFormed(): string }).toWellFormed();

/**
 * Reasons quote what was sent, and Postgres text refuses NUL and lone surrogates: the dead letter
 * of a poison event must not be poison itself. Each becomes U+FFFD.
 */
export function storableText(s: string): string {
  return toWellFormed(s).replaceAll('\u0000', '\uFFFD');
}

export function deadLetter(
  m: { offset: string; key: Buffer | null; value: Buffer | null }, code: DeadLetterCode, reason: string,
  event?: { account_id: string; id: string },
): DeadLetter {
  return {
    offset: m.offset, key: m.key, value: m.value, code, reason: storableText(reason),
    ...(event ? { accountId: event.account_id, eventId: event.id } : {}),
  };
}

/** The rows writeBatch inserts into dead_letters (as JSON: bytes travel as base64). */
export function deadLetterRecords(dead: readonly DeadLetter[]): object[] {
  return dead.map((d) => ({
    src_offset: d.offset, account_id: d.accountId ?? null, event_id: d.eventId ?? null, code: d.code, reason: d.reason,
    msg_key: d.key?.toString('base64') ?? null, payload: d.value?.toString('base64') ?? null,
  }));
}

/** usage.dlq messages: the original key and bytes, the cause and the source position in headers. */
export function dlqMessages(topic: string, partition: number, dead: readonly DeadLetter[]): Message[] {
  return dead.map((d) => ({
    key: d.key,
    value: d.value,
    headers: {
      'error-code': d.code, 'error-reason': d.reason,
      'source-topic': topic, 'source-partition': String(partition), 'source-offset': d.offset,
    },
  }));
}

interface DeadLetterRow {
  src_offset: bigint; account_id: string | null; event_id: string | null; code: DeadLetterCode; reason: string;
  msg_key: Buffer | null; payload: Buffer | null;
}

/** Dead letters committed from [from, to) of a partition, which a crash may have kept off usage.dlq. */
export async function deadLettersFromSource(c: PoolClient, topic: string, partition: number, from: bigint, to: bigint): Promise<DeadLetter[]> {
  if (from >= to) return [];
  const r = await c.query<DeadLetterRow>(
    `SELECT src_offset, account_id, event_id, code, reason, msg_key, payload FROM dead_letters
      WHERE src_topic = $1 AND src_partition = $2 AND src_offset >= $3 AND src_offset < $4 ORDER BY src_offset`,
    [topic, partition, from.toString(), to.toString()],
  );
  return r.rows.map((d) => ({
    offset: d.src_offset.toString(), key: d.msg_key, value: d.payload, code: d.code, reason: d.reason,
    ...(d.account_id !== null && d.event_id !== null ? { accountId: d.account_id, eventId: d.event_id } : {}),
  }));
}
