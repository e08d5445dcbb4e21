import { readFileSync } from 'node:fs';

export interface BatchLogStats {
  batches: number;
  items: number;
  meanItems: number;
  maxItems: number;
  msP50: number;
  msP95: number;
  msMax: number;
  /** sum of per-batch ms: > wall time means batches overlapped (concurrency) */
  msTotal: number;
}

/**
 * Per-batch figures from a service's pino log: the rater's "batch rated" lines (size, ms) or the
 * sink's "batch written to ClickHouse" lines (messages, ms), optionally only those logged within a window.
 */
export function batchStats(logFile: string, msg: string, sizeField: string, window?: { from: number; to: number }): BatchLogStats | null {
  let text: string;
  try {
    text = readFileSync(logFile, 'utf8');
  } catch {
    return null;
  }
  const sizes: number[] = [];
  const ms: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.includes(msg)) continue;
    try {
      const j = JSON.parse(line) as Record<string, unknown>;
      if (j.msg !== msg) continue;
      if (window && (Number(j.time) < window.from || Number(j.time) > window.to)) continue;
      sizes.push(Number(j[sizeField] ?? 0));
      ms.push(Number(j.ms ?? 0));
    } catch {
      // not a JSON line
    }
  }
  if (sizes.length === 0) return null;
  const sorted = [...ms].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  const items = sizes.reduce((a, b) => a + b, 0);
  return {
    batches: sizes.length, items, meanItems: Math.round(items / sizes.length), maxItems: Math.max(...sizes),
    msP50: at(0.5), msP95: at(0.95), msMax: sorted[sorted.length - 1]!, msTotal: ms.reduce((a, b) => a + b, 0),
  };
}
