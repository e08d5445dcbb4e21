import type { Batch } from 'kafkajs';
import { decodeRatedEvent } from './rows.js';
import type { RatedRow } from './row-format.js';
import type { DeadLetter } from './dead-letters.js';
import type { OffsetRange } from './store.js';

export interface DecodedBatch {
  range: OffsetRange;
  /** What kafkajs must resolve: the batch's last offset, which may lie past the last message (control records). */
  lastOffset: string;
  /** The offset to commit once the batch is written. */
  next: string;
  /** Messages still behind this batch in its partition. */
  lag: bigint;
  messages: number;
  rows: RatedRow[];
  dead: DeadLetter[];
}

export function decodeBatch(batch: Batch): DecodedBatch {
  const rows: RatedRow[] = [];
  const dead: DeadLetter[] = [];
  for (const m of batch.messages) {
    const d = decodeRatedEvent(m.value);
    if (d.ok) rows.push(d.row);
    else dead.push({ topic: batch.topic, partition: batch.partition, offset: m.offset, key: m.key, value: m.value, code: d.code, reason: d.reason });
  }
  const lastOffset = batch.lastOffset();
  return {
    range: { topic: batch.topic, partition: batch.partition, first: batch.messages[0]!.offset, last: batch.messages.at(-1)!.offset },
    lastOffset,
    next: (BigInt(lastOffset) + 1n).toString(),
    lag: BigInt(batch.offsetLag()),
    messages: batch.messages.length,
    rows,
    dead,
  };
}
