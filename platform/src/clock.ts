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
