import { z } from 'zod';
import { formatMicros, MAX_QUANTITY_MICROS } from '../money.js';
import { Id, IsoTimestamp, Properties, Quantity } from './common.js';
import { WorkspaceId } from './workspace.js';
import { HoldId } from './hold.js';

/**
 * A usage event as producers send it (HTTP or straight to Kafka). Keys it does not name are
 * dropped, like every object of the contract (zod's default), and never reach usage.events.
 */
export const UsageEvent = z.object({
  id: Id.describe('chosen by the producer, unique per account: the idempotency key'),
  account_id: Id,
  product: Id,
  quantity: Quantity.describe(`non-negative, at most 6 decimal places, at most ${formatMicros(MAX_QUANTITY_MICROS)}`),
  timestamp: IsoTimestamp,
  properties: Properties.optional(),
  workspace_id: WorkspaceId.optional().describe('the account\'s workspace the usage belongs to, for the per-workspace breakdown (POST /v1/accounts/{id}/workspaces)'),
  hold_id: HoldId.optional().describe('the hold POST /v1/authorize returned for this call: the event captures it and is charged at most its amount'),
});
export type UsageEventInput = z.input<typeof UsageEvent>;
/** quantity is bigint micro-units of the product's unit. */
export type UsageEvent = z.output<typeof UsageEvent>;

/** What POST /v1/events documents; the route judges each event on its own, never the batch. */
export const UsageEventBatch = z
  .union([UsageEvent, z.array(UsageEvent)])
  .describe('One event or an array of events; with Content-Type application/x-ndjson, one event per line.');

export const UsageEventsAccepted = z.object({
  accepted: z.array(z.string()).describe('ids of the events Kafka acknowledged (acks=all)'),
  rejected: z.array(
    z.object({
      index: z.number().int().describe('position in the request (array index or NDJSON line among non-blank lines)'),
      id: z.string().optional(),
      code: z.string().describe('VALIDATION_ERROR, TIMESTAMP_IN_FUTURE, TIMESTAMP_TOO_OLD, FORBIDDEN or MALFORMED_JSON'),
      message: z.string(),
    }),
  ),
});
export type UsageEventsAccepted = z.infer<typeof UsageEventsAccepted>;

export const FUTURE_SKEW_MS = 5 * 60_000;

export type TimestampVerdict = { ok: true } | { ok: false; code: 'TIMESTAMP_IN_FUTURE' | 'TIMESTAMP_TOO_OLD'; message: string };

/** Ingest-time window check; the rater never re-applies it, so an accepted event stays rateable. */
export function checkTimestampWindow(timestamp: string, nowMs: number, maxAgeMs: number): TimestampVerdict {
  const t = Date.parse(timestamp);
  if (t > nowMs + FUTURE_SKEW_MS) {
    return { ok: false, code: 'TIMESTAMP_IN_FUTURE', message: 'timestamp is more than 5 minutes in the future' };
  }
  if (t < nowMs - maxAgeMs) {
    return { ok: false, code: 'TIMESTAMP_TOO_OLD', message: `timestamp is older than ${Math.round(maxAgeMs / 86_400_000)} days` };
  }
  return { ok: true };
}

/** The bytes put on usage.events: quantity in canonical decimal text, so every reader parses it the same. */
export function encodeUsageEvent(e: UsageEvent): string {
  return JSON.stringify({ ...e, quantity: formatMicros(e.quantity) });
}
