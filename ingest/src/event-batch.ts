import { checkTimestampWindow, UsageEvent } from '@meterstream/schemas';
import type { Principal } from './auth.js';
import { canAccess } from './auth.js';
import { formatIssues } from './issues.js';
import { parseJsonExact } from './exact-json.js';

/** An NDJSON line that is not JSON: rejected on its own, the other lines still count. */
export class MalformedLine {
  constructor(readonly message: string) {}
}

export interface Rejection {
  index: number;
  id?: string;
  code: string;
  message: string;
}

export interface BatchVerdict {
  events: UsageEvent[];
  rejected: Rejection[];
}

/** Blank lines are skipped, so a trailing newline or a spacer line never becomes an event. */
export function parseNdjson(text: string): unknown[] {
  return text
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => {
      try {
        return parseJsonExact(line);
      } catch (e) {
        return new MalformedLine(`line is not valid JSON: ${(e as Error).message}`);
      }
    });
}

const idOf = (item: unknown): string | undefined =>
  typeof item === 'object' && item !== null && typeof (item as { id?: unknown }).id === 'string'
    ? (item as { id: string }).id
    : undefined;

/** Judges every event on its own, so one bad event never sinks the rest of the batch. */
export function judgeEvents(
  items: readonly unknown[],
  opts: { principal: Principal; nowMs: number; maxAgeMs: number },
): BatchVerdict {
  const verdict: BatchVerdict = { events: [], rejected: [] };
  // A plain loop over a module-level judge: tsx names every closure it creates (keepNames), and a
  // closure per event showed up in the request path's profile.
  for (let index = 0; index < items.length; index++) {
    const item = items[index];
    const outcome = judgeOne(item, opts);
    if ('code' in outcome) {
      const id = idOf(item);
      verdict.rejected.push(id === undefined ? { index, ...outcome } : { index, id, ...outcome });
    } else {
      verdict.events.push(outcome);
    }
  }
  return verdict;
}

function judgeOne(
  item: unknown,
  opts: { principal: Principal; nowMs: number; maxAgeMs: number },
): UsageEvent | { code: string; message: string } {
  if (item instanceof MalformedLine) return { code: 'MALFORMED_JSON', message: item.message };
  const parsed = UsageEvent.safeParse(item);
  if (!parsed.success) return { code: 'VALIDATION_ERROR', message: formatIssues(parsed.error.issues) };
  const event = parsed.data;
  if (!canAccess(opts.principal, event.account_id)) {
    return { code: 'FORBIDDEN', message: `this API key cannot send events for account ${event.account_id}` };
  }
  const window = checkTimestampWindow(event.timestamp, opts.nowMs, opts.maxAgeMs);
  return window.ok ? event : { code: window.code, message: window.message };
}
