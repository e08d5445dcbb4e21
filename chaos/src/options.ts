import { randomInt } from 'node:crypto';
import { parseArgs } from 'node:util';

export interface ChaosOptions {
  form: 'quick' | 'full';
  /** seeds the fault plan, the fault parameters and the workload: the same seed replays the same run */
  seed: number;
  /** how long the workload runs while faults are injected */
  seconds: number;
  /** offered load, events per second (HTTP and producer client together) */
  eventsPerSecond: number;
  accounts: number;
  partitions: number;
  /** how long the pipeline may take to drain once the faults are over before the lag check fails */
  quiesceTimeoutMs: number;
  /** keep the stack's files (logs, Kafka data, chDB) and database even when every check passed */
  keep: boolean;
  /** 'server': chDB behind tests/support/clickhouse-http.ts, shared by every process; 'chdb': the sink's embedded chDB */
  clickhouse: 'server' | 'chdb';
  /** run the services of another checkout (e.g. an older commit), the harness staying this one */
  servicesRoot: string | undefined;
}

const int = (name: string, v: string | undefined, fallback: number): number => {
  if (v === undefined || v === '') return fallback;
  if (!/^\d+$/.test(v)) throw new Error(`${name} must be a non-negative integer, got '${v}'`);
  return Number(v);
};

/** `--quick` (or form: 'quick') is the CI form; the CHAOS_* variables (chaos/README.md) override. */
export function chaosOptions(argv: string[], env: NodeJS.ProcessEnv, form?: 'quick' | 'full'): ChaosOptions {
  const { values } = parseArgs({ args: argv, options: { quick: { type: 'boolean', default: false } } });
  const quick = (form ?? (values.quick ? 'quick' : 'full')) === 'quick';
  return {
    form: quick ? 'quick' : 'full',
    seed: int('CHAOS_SEED', env.CHAOS_SEED, randomInt(1, 2 ** 31)),
    seconds: int('CHAOS_SECONDS', env.CHAOS_SECONDS, quick ? 75 : 300),
    eventsPerSecond: int('CHAOS_RATE', env.CHAOS_RATE, quick ? 40 : 60),
    accounts: 40,
    partitions: 4,
    quiesceTimeoutMs: quick ? 120_000 : 240_000,
    keep: env.CHAOS_KEEP === '1',
    clickhouse: env.CHAOS_CLICKHOUSE === 'chdb' ? 'chdb' : 'server',
    servicesRoot: env.CHAOS_SERVICES_ROOT || undefined,
  };
}
