import { UsageEvent } from '@meterstream/schemas';
import { deadLetter, type DeadLetter } from '@meterstream/ledger/dead-letters';
import type { SourceEvent } from '@meterstream/ledger/core/rate';

export interface RawMessage {
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
}

/**
 * Decodes usage.events messages; anything unreadable becomes a dead letter, never a stall. The
 * contract also refuses what Postgres could not store (NUL, lone surrogates, quantities past int8),
 * so a message produced straight to Kafka, past ingest, is stopped here before any transaction.
 */
export function parseMessages(messages: readonly RawMessage[]): { events: SourceEvent[]; dead: DeadLetter[] } {
  const events: SourceEvent[] = [];
  const dead: DeadLetter[] = [];
  for (const m of messages) {
    let json: unknown;
    try {
      json = JSON.parse(m.value?.toString('utf8') ?? '');
    } catch {
      dead.push(deadLetter(m, 'INVALID_JSON', 'message value is not JSON'));
      continue;
    }
    const parsed = UsageEvent.safeParse(json);
    if (!parsed.success) {
      const reason = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
      dead.push(deadLetter(m, 'INVALID_EVENT', reason));
      continue;
    }
    events.push({ offset: m.offset, event: parsed.data, eventMs: Date.parse(parsed.data.timestamp) });
  }
  return { events, dead };
}
