import { setTimeout as sleep } from 'node:timers/promises';
import { rng } from '@meterstream/bench/workload';
import type { Pool } from '@meterstream/platform/postgres';
import type { OwnKafka } from './own-kafka.js';
import type { PrivateRedis } from '../../tests/support/redis-server.js';
import type { Role, Supervisor } from './supervisor.js';
import { formatSeconds as seconds } from '@meterstream/platform/clock';

export const FAULT_KINDS = [
  'kill-rater', 'kill-sink', 'kill-ingest', 'kafka-restart', 'redis-refuse-writes', 'pg-terminate',
  'clickhouse-fail-inserts', 'second-rater', 'second-sink',
] as const;
export type FaultKind = (typeof FAULT_KINDS)[number];

export interface PlannedFault {
  n: number;
  kind: FaultKind;
  /** when it starts, ms after the workload started */
  atMs: number;
  /** how long it lasts: the restart delay of a kill, how long the broker stays down, Redis refuses
   * writes, ClickHouse fails inserts or a second rater/sink stays in its group */
  holdMs: number;
  /** redis-refuse-writes: how long after writes are allowed again Redis is flushed */
  flushAfterMs: number;
  /** clickhouse-fail-inserts: refused before they run, or run and then answered with an error (the write landed, its answer was lost) */
  insertFailure: 'fail' | 'fail-after';
}

const range = (random: () => number, lo: number, hi: number) => Math.round(lo + random() * (hi - lo));

/**
 * The fault plan, a function of the seed, the duration and the form alone: print the seed and the
 * same plan (and workload) comes back. Faults start between 5% and 80% of the run, so that the
 * last ones end while the workload still flows; those of one kind never overlap (a lock per target).
 */
export function planFaults(seed: number, seconds: number, form: 'quick' | 'full'): PlannedFault[] {
  const random = rng(seed);
  const per = (n: number) => Math.max(1, Math.round(seconds / n));
  const counts: Record<FaultKind, number> = form === 'quick'
    ? {
        'kill-rater': 2, 'kill-sink': 2, 'kill-ingest': 2, 'kafka-restart': 1, 'redis-refuse-writes': 1, 'pg-terminate': 2,
        'clickhouse-fail-inserts': 1, 'second-rater': 1, 'second-sink': 1,
      }
    : {
        'kill-rater': per(20), 'kill-sink': per(25), 'kill-ingest': per(25), 'kafka-restart': Math.max(2, per(150)),
        'redis-refuse-writes': Math.max(2, per(120)), 'pg-terminate': Math.max(3, per(60)),
        'clickhouse-fail-inserts': Math.max(2, per(120)), 'second-rater': Math.max(2, per(90)), 'second-sink': Math.max(2, per(90)),
      };
  const hold: Record<FaultKind, [number, number]> = {
    'kill-rater': [200, 3_000], 'kill-sink': [200, 3_000], 'kill-ingest': [200, 3_000], 'kafka-restart': [1_000, 6_000],
    'redis-refuse-writes': [3_000, 10_000], 'pg-terminate': [0, 0], 'clickhouse-fail-inserts': [5_000, 15_000],
    'second-rater': [5_000, 25_000], 'second-sink': [5_000, 25_000],
  };
  const span = seconds * 1000;
  const faults: Omit<PlannedFault, 'n'>[] = [];
  for (const kind of FAULT_KINDS) {
    for (let k = 0; k < counts[kind]; k++) {
      // Spread evenly with jitter (slot k of n), so that faults of one kind do not bunch up.
      const atMs = Math.round(span * (0.05 + (0.75 * (k + random())) / counts[kind]));
      faults.push({
        kind, atMs, holdMs: range(random, ...hold[kind]), flushAfterMs: range(random, 1_000, 4_000),
        insertFailure: random() < 0.5 ? 'fail' : 'fail-after',
      });
    }
  }
  return faults.sort((a, b) => a.atMs - b.atMs).map((f, i) => ({ n: i + 1, ...f }));
}

export interface FaultRecord {
  fault: PlannedFault;
  startedMs: number;
  endedMs: number;
  /** what was done, with pids, counts, durations */
  detail: string;
  /** set when the fault could not be injected in this setup (and why) */
  skipped?: string;
}

export interface FaultTargets {
  supervisor: Supervisor;
  kafka: OwnKafka;
  redis: PrivateRedis;
  /** the harness's pool: its own connections (application_name) are spared */
  pool: Pool;
  databaseName: string;
  harnessAppName: string;
  /** rows in usage_ledger now: shows whether rating went on during an outage of Redis or ClickHouse */
  ledgerRows(): Promise<bigint>;
  /** a string when ClickHouse cannot be made to fail (embedded chDB): the reason */
  failClickHouseInserts: ((mode: PlannedFault['insertFailure'], forMs: number, during: (ms: number) => Promise<string>) => Promise<string>) | string;
  /** undefined when a second sink can join; else why not */
  secondSinkUnsupported?: string;
}

const TARGET: Record<FaultKind, string> = {
  'kill-rater': 'rater', 'kill-sink': 'sink', 'kill-ingest': 'ingest', 'kafka-restart': 'kafka', 'redis-refuse-writes': 'redis',
  'pg-terminate': 'postgres', 'clickhouse-fail-inserts': 'clickhouse', 'second-rater': 'rater-2', 'second-sink': 'sink-2',
};

/**
 * Injects the planned faults at their times, one at a time per target (a kill of the rater waits
 * until the previous one restarted it), printing a line as each starts and ends.
 */
export async function runFaults(
  plan: PlannedFault[], t: FaultTargets, startMs: number, say: (line: string) => void, now: () => number = Date.now,
): Promise<FaultRecord[]> {
  const locks = new Map<string, Promise<unknown>>();
  const records: FaultRecord[] = [];
  const elapsed = () => now() - startMs;

  /** Waits out an outage and says how many events were rated meanwhile. */
  async function during(ms: number): Promise<string> {
    const before = await t.ledgerRows();
    await sleep(ms);
    return `${await t.ledgerRows() - before} events rated meanwhile`;
  }

  async function kill(role: Role, f: PlannedFault): Promise<string> {
    const pid = await t.supervisor.kill(role);
    if (pid === undefined) return `${role} was not running (being restarted after an exit of its own)`;
    await sleep(f.holdMs);
    const svc = t.supervisor.get(role) ?? t.supervisor.start(role);
    return `SIGKILL ${role} pid ${pid}; restarted after ${seconds(f.holdMs)} as pid ${svc.pid}`;
  }

  async function joinAndLeave(role: Role, f: PlannedFault): Promise<string> {
    const svc = t.supervisor.start(role);
    await sleep(f.holdMs);
    const code = await t.supervisor.stop(role);
    return `${role} pid ${svc.pid} joined, left after ${seconds(f.holdMs)} (SIGTERM, exit ${code ?? 'before the stop'})`;
  }

  async function inject(f: PlannedFault): Promise<{ detail: string; skipped?: string }> {
    switch (f.kind) {
      case 'kill-rater':
        return { detail: await kill('rater', f) };
      case 'kill-sink':
        return { detail: await kill('sink', f) };
      case 'kill-ingest':
        return { detail: await kill('ingest', f) };
      case 'kafka-restart': {
        const pid = await t.kafka.kill();
        await sleep(f.holdMs);
        const down = now();
        await t.kafka.start();
        return { detail: `SIGKILL broker pid ${pid ?? '(none)'}; down ${seconds(f.holdMs)}, then restarted, serving again after ${seconds(now() - down)} more` };
      }
      case 'redis-refuse-writes': {
        // A primary told to require a replica it does not have refuses every write (NOREPLICAS).
        await t.redis.admin.config('SET', 'min-replicas-to-write', '1');
        const probe = await t.redis.admin.set('chaos:probe', '1').then(() => 'a write still succeeded', (e: Error) => e.message.split('\n')[0]);
        const rated = await during(f.holdMs);
        await t.redis.admin.config('SET', 'min-replicas-to-write', '0');
        await sleep(f.flushAfterMs);
        await t.redis.admin.flushall();
        return { detail: `writes refused for ${seconds(f.holdMs)} (probe: ${probe}; ${rated}), allowed again, FLUSHALL ${seconds(f.flushAfterMs)} later` };
      }
      case 'pg-terminate': {
        const r = await t.pool.query<{ pid: number; application_name: string }>(
          `SELECT pid, application_name FROM pg_stat_activity
            WHERE datname = $1 AND pid <> pg_backend_pid() AND application_name <> $2 AND pg_terminate_backend(pid)`,
          [t.databaseName, t.harnessAppName],
        );
        return { detail: `pg_terminate_backend on ${r.rowCount} connections of the services (database ${t.databaseName})` };
      }
      case 'clickhouse-fail-inserts':
        if (typeof t.failClickHouseInserts === 'string') return { detail: '', skipped: t.failClickHouseInserts };
        return { detail: await t.failClickHouseInserts(f.insertFailure, f.holdMs, during) };
      case 'second-rater':
        return { detail: await joinAndLeave('rater-2', f) };
      case 'second-sink':
        if (t.secondSinkUnsupported) return { detail: '', skipped: t.secondSinkUnsupported };
        return { detail: await joinAndLeave('sink-2', f) };
    }
  }

  await Promise.all(plan.map(async (f) => {
    await sleep(Math.max(0, startMs + f.atMs - now()));
    const target = TARGET[f.kind];
    const run = (locks.get(target) ?? Promise.resolve()).then(async () => {
      const startedMs = elapsed();
      say(`fault #${f.n} ${f.kind} starts${startedMs - f.atMs > 1000 ? ` (planned at +${seconds(f.atMs)}, waited for the previous ${target} fault)` : ''}`);
      let outcome: { detail: string; skipped?: string };
      try {
        outcome = await inject(f);
      } catch (e) {
        outcome = { detail: `FAILED to inject: ${(e as Error).message.split('\n')[0]}` };
      }
      const rec: FaultRecord = { fault: f, startedMs, endedMs: elapsed(), ...outcome };
      records.push(rec);
      say(`fault #${f.n} ${f.kind} ${outcome.skipped ? `skipped: ${outcome.skipped}` : `done: ${outcome.detail}`}`);
    });
    locks.set(target, run);
    await run;
  }));
  return records.sort((a, b) => a.fault.n - b.fault.n);
}
