import { setTimeout as sleep } from 'node:timers/promises';

/** The signal was aborted while an operation kept failing; `cause` is its last error. */
export class RetryAborted extends Error {
  override readonly name = 'RetryAborted';
}

export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  /** Ends the waiting between attempts; an attempt already running is not interrupted. */
  signal: AbortSignal;
  onError(err: unknown, attempt: number, delayMs: number): void;
}

/** Exponential, capped, with jitter so that several sinks do not hammer a recovering ClickHouse in step. */
export function backoffDelay(attempt: number, initialMs: number, maxMs: number): number {
  const ceiling = Math.min(maxMs, initialMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
}

/** Runs op until it succeeds or the signal is aborted (then RetryAborted). */
export async function retryWithBackoff<T>(op: () => Promise<T>, o: BackoffOptions): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await op();
    } catch (err) {
      if (o.signal.aborted) throw new RetryAborted('aborted while retrying', { cause: err });
      const delayMs = backoffDelay(attempt, o.initialMs, o.maxMs);
      o.onError(err, attempt, delayMs);
      await sleep(delayMs, undefined, { signal: o.signal }).catch(() => {
        throw new RetryAborted('aborted while retrying', { cause: err });
      });
    }
  }
}
