import type { Pool } from '@meterstream/platform/postgres';
import type { Logger } from '@meterstream/platform/logger';
import { sweepUnpublishedEntries, type Send } from './entries.js';

export interface EntrySweeperOptions {
  /** Between sweeps. */
  intervalMs?: number;
  /** Entries younger than this are left to the command that is publishing them right now. */
  olderThanMs?: number;
  /** Entries per round; a full round is followed by another at once. */
  limit?: number;
}

/**
 * Publishes the ledger entries a command committed but did not get onto ledger.entries (a crash
 * between commit and publish, Kafka away longer than the command waited). Runs in every process
 * that runs commands (ingest, the rater). Two sweepers may publish the same entry twice, as may
 * a crash after a publication before its mark: consumers key entries by (account, entry id).
 */
export class EntrySweeper {
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly intervalMs: number;
  private readonly olderThanMs: number;
  private readonly limit: number;

  constructor(
    private readonly pool: Pool, private readonly send: Send, private readonly topic: string, private readonly log: Logger,
    opts: EntrySweeperOptions = {},
  ) {
    this.intervalMs = opts.intervalMs ?? 2000;
    this.olderThanMs = opts.olderThanMs ?? 5000;
    this.limit = opts.limit ?? 500;
  }

  start(): this {
    this.schedule();
    return this;
  }

  /** Waits for a running round; no new one starts. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.round;
  }

  /** Publishes what is left unpublished now; returns how many entries. */
  async sweep(): Promise<number> {
    let total = 0;
    for (;;) {
      const n = await sweepUnpublishedEntries(this.pool, this.send, this.topic, { olderThanMs: this.olderThanMs, limit: this.limit });
      total += n;
      if (n < this.limit || this.stopped) break;
    }
    if (total > 0) this.log.warn({ entries: total, olderThanMs: this.olderThanMs }, 'published ledger entries a command had left unpublished');
    return total;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.round = this.sweep().then(
        () => undefined,
        (err: unknown) => this.log.warn({ err: (err as Error).message }, 'ledger entry sweep failed; retrying next round'),
      ).finally(() => this.schedule());
    }, this.intervalMs);
    this.timer.unref();
  }
}
