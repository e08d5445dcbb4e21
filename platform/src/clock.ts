/**
 * Where time-based code (the scheduler, allowances, expiry) reads the time, so that tests cross
 * month boundaries in seconds by setting it instead of waiting.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that stands still until a test sets or advances it. */
export class TestClock implements Clock {
  constructor(private ms: number) {}

  now(): number {
    return this.ms;
  }

  set(at: number | string | Date): void {
    this.ms = typeof at === 'number' ? at : new Date(at).getTime();
  }

  advance(ms: number): void {
    this.ms += ms;
  }
}

/** A duration as seconds with one decimal ("12.3 s"), from integer milliseconds, without float formatting. */
export function formatSeconds(ms: number): string {
  const tenths = Math.round(ms / 100);
  return `${Math.trunc(tenths / 10)}.${Math.abs(tenths % 10)} s`;
}
