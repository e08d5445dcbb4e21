import type { Pool, PoolClient } from '@meterstream/platform/postgres';
import type { Logger } from '@meterstream/platform/logger';
import type { TopicNames } from '@meterstream/schemas';
import type { AccountState } from './account-state.js';
import type { CacheWriter } from './cache-writer.js';
import type { Send } from './entries.js';
import { systemClock } from '@meterstream/platform/clock';

/**
 * Where a crash test may stop the process between the steps (SIGKILL, like a real crash): before
 * and after the Postgres commit, after the publication, after the cache write. The offsets step
 * is the last, so a crash after it leaves nothing to repair.
 */
export const CRASH_POINTS = ['before-pg-commit', 'after-pg-commit', 'after-publish', 'after-cache'] as const;
export type CrashPoint = (typeof CRASH_POINTS)[number];

export interface FaultInjection {
  at: CrashPoint;
  /** At which of this write order's commits (1 = the first). */
  onCommit: number;
  /** What stopping means; by default the process SIGKILLs itself. */
  crash?: (point: CrashPoint) => void;
}

/** What a command's transaction leaves for the steps after it. */
export interface Effects<T> {
  /** What the command answers. */
  value: T;
  /**
   * false: the transaction changed nothing and is rolled back; publish and cache still run for
   * what it read (a republication of what a crash kept from Kafka or Redis).
   */
  commit: boolean;
  /** Sends what was committed (acks=all); only ever called after the commit. */
  publish?: (send: Send) => Promise<void>;
  /** The accounts' states as committed, for Redis. */
  states?: readonly AccountState[];
}

export interface Command<T> {
  /** For logs: the verb (add-grant, rate-batch). */
  name: string;
  /** The one Postgres transaction; everything it returns happens only if it commits (or chose not to). */
  transaction(c: PoolClient): Promise<Effects<T>>;
  /**
   * Consumers only: moves their positions (Postgres's published watermark, the Kafka commit) once
   * everything before is done. A command with no offsets has nothing that would redeliver it: a
   * publication it could not finish is left to the entry sweeper (entry-sweeper.ts).
   */
  offsets?(value: T): Promise<void>;
}

export interface WriteOrderDeps {
  pool: Pool;
  send: Send;
  cache: CacheWriter;
  topics: TopicNames;
  log: Logger;
  now?: () => number;
  /**
   * Commands without offsets wait this long for Kafka to acknowledge their publication, then
   * answer anyway: their money has moved, and the sweeper publishes what is left.
   */
  publishWaitMs?: number;
  fault?: FaultInjection;
}

const sigkill = () => {
  process.kill(process.pid, 'SIGKILL');
};

/**
 * The one owner of the order in which money reaches the stores, for every command:
 *   commit  — one Postgres transaction (the truth);
 *   publish — Kafka, acks=all, only what committed;
 *   cache   — Redis, never failing the command (CacheWriter repairs in the background);
 *   offsets — consumers only: their fence and Kafka offset move last.
 * A crash between two steps leaves the earlier ones done and the later ones to repair: a consumer
 * is redelivered its batch and republishes what Postgres holds beyond its published watermark; a
 * command's unpublished ledger entries are published by the sweeper; Redis is seq-guarded and
 * rebuilt from Postgres when behind.
 */
export class WriteOrder {
  private commits = 0;
  /** What commands use besides the steps: where they read, where they publish, their clock. */
  readonly pool: Pool;
  readonly topics: TopicNames;
  readonly now: () => number;

  constructor(private readonly deps: WriteOrderDeps) {
    this.pool = deps.pool;
    this.topics = deps.topics;
    this.now = deps.now ?? systemClock.now;
  }

  async run<T>(command: Command<T>): Promise<T> {
    const { effects, n } = await this.commit(command);
    await this.publish(command, effects);
    this.stopAt('after-publish', n);
    if (effects.states && effects.states.length > 0) await this.deps.cache.write(effects.states);
    this.stopAt('after-cache', n);
    await command.offsets?.(effects.value);
    return effects.value;
  }

  private async commit<T>(command: Command<T>): Promise<{ effects: Effects<T>; n: number | undefined }> {
    const c = await this.deps.pool.connect();
    let effects: Effects<T>;
    let n: number | undefined;
    try {
      await c.query('BEGIN');
      effects = await command.transaction(c);
      if (effects.commit) {
        n = ++this.commits;
        this.stopAt('before-pg-commit', n);
        await c.query('COMMIT');
      } else {
        await c.query('ROLLBACK');
      }
    } catch (e) {
      await c.query('ROLLBACK').catch(() => undefined);
      throw e;
    } finally {
      c.release();
    }
    this.stopAt('after-pg-commit', n);
    return { effects, n };
  }

  private async publish<T>(command: Command<T>, effects: Effects<T>): Promise<void> {
    if (!effects.publish) return;
    // A consumer's batch fails with its publication and is redelivered, which republishes it.
    if (command.offsets) return effects.publish(this.deps.send);
    // Anything else has committed money that must not be answered as a failure: what Kafka does
    // not take now, the sweeper publishes.
    const sent = effects.publish(this.deps.send);
    sent.catch(() => undefined);
    const waitMs = this.deps.publishWaitMs;
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<'late'>((resolve) => {
      if (waitMs !== undefined) timer = setTimeout(() => resolve('late'), waitMs);
    });
    try {
      if ((await Promise.race([sent, late])) === 'late') {
        this.deps.log.warn({ command: command.name, waitedMs: waitMs }, 'Kafka did not acknowledge the publication in time; answering anyway, the sweeper publishes what is left');
      }
    } catch (e) {
      this.deps.log.warn({ command: command.name, err: (e as Error).message }, 'publication failed after the commit; the sweeper publishes what is left');
    } finally {
      clearTimeout(timer);
    }
  }

  private stopAt(point: CrashPoint, n: number | undefined): void {
    const fault = this.deps.fault;
    if (!fault || fault.at !== point || n !== fault.onCommit) return;
    this.deps.log.warn({ point, commit: n }, 'fault injection: stopping here');
    (fault.crash ?? sigkill)(point);
  }
}
