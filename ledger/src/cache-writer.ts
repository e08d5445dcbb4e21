import { systemClock } from '@meterstream/platform/clock';
import type { Pool } from '@meterstream/platform/postgres';
import type { Logger } from '@meterstream/platform/logger';
import type { BalanceCache } from './balance-cache.js';
import { loadAccountStates, type AccountState } from './account-state.js';

export interface CacheWriterOptions {
  /** Waits between repair rounds while Redis keeps failing: doubling, capped. */
  retryInitialMs?: number;
  retryMaxMs?: number;
  /** Accounts reloaded from Postgres and written per round. */
  chunk?: number;
  /** The clock of the month whose postpaid figure a repaired state carries (the ledger's). */
  now?: () => number;
}

/**
 * The write order's 'cache' step (write-order.ts): writes account states to Redis after each
 * commit without ever failing or stalling the command:
 * Postgres is the truth, so a failed write only remembers the accounts (a set of ids, bounded by
 * the number of accounts), which a background loop reloads from Postgres and writes again, with
 * backoff, until Redis takes them. While accounts wait, writes skip Redis altogether instead of
 * waiting on a server that is known to be failing. Readers compare Redis's ledger seq with
 * Postgres's, so even a repair lost to a crash never shows a stale balance.
 */
export class CacheWriter {
  /** account id -> generation of its latest failed write: a repair only clears what it covered. */
  private readonly dirty = new Map<string, number>();
  private generation = 0;
  private timer: NodeJS.Timeout | undefined;
  private delayMs: number;
  private stopped = false;
  private readonly retryInitialMs: number;
  private readonly retryMaxMs: number;
  private readonly chunk: number;
  private readonly now: () => number;

  constructor(private readonly cache: BalanceCache, private readonly pool: Pool, private readonly log: Logger, opts: CacheWriterOptions = {}) {
    this.now = opts.now ?? systemClock.now;
    this.retryInitialMs = opts.retryInitialMs ?? 200;
    this.retryMaxMs = opts.retryMaxMs ?? 10_000;
    this.chunk = opts.chunk ?? 1000;
    this.delayMs = this.retryInitialMs;
  }

  /** Accounts whose Redis copy is known to be behind Postgres. */
  get pending(): number {
    return this.dirty.size;
  }

  async write(states: readonly AccountState[]): Promise<void> {
    if (states.length === 0) return;
    if (this.dirty.size > 0) return this.markDirty(states);
    try {
      await this.cache.write(states);
    } catch (e) {
      this.log.warn({ err: (e as Error).message, accounts: states.length }, 'Redis write failed; commands go on, the accounts are rewritten from Postgres when Redis answers');
      this.markDirty(states);
    }
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private markDirty(states: readonly AccountState[]): void {
    const gen = ++this.generation;
    for (const s of states) this.dirty.set(s.id, gen);
    this.schedule();
  }

  private schedule(): void {
    if (this.timer || this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.repair();
    }, this.delayMs);
  }

  private async repair(): Promise<void> {
    const round: [string, number][] = [];
    for (const entry of this.dirty) {
      if (round.length === this.chunk) break;
      round.push(entry);
    }
    try {
      const states = await loadAccountStates(this.pool, round.map(([id]) => id), { forUpdate: false, nowMs: this.now() });
      await this.cache.write(states.values());
      for (const [id, gen] of round) if (this.dirty.get(id) === gen) this.dirty.delete(id);
      this.delayMs = this.retryInitialMs;
      this.log.info({ accounts: round.length, left: this.dirty.size }, 'Redis repaired from Postgres');
    } catch (e) {
      this.delayMs = Math.min(this.delayMs * 2, this.retryMaxMs);
      this.log.debug({ err: (e as Error).message, left: this.dirty.size, retryInMs: this.delayMs }, 'Redis repair failed; retrying');
    }
    if (this.dirty.size > 0) this.schedule();
  }
}
