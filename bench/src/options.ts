import { parseArgs } from 'node:util';

export const PHASES = ['e2e', 'ceiling', 'naive', 'latency', 'http', 'gate', 'invoicer'] as const;
export type Phase = (typeof PHASES)[number];

export interface BenchOptions {
  mode: 'quick' | 'full';
  /** main workload: produced once, rated end to end, then re-read by the ceiling consumer */
  events: number;
  accounts: number;
  duplicateFraction: number;
  partitions: number;
  seed: number;
  naiveEvents: number;
  naiveConnections: number;
  /** offered loads of the latency phases, events/s */
  latencyRates: number[];
  latencySeconds: number;
  /** accounts whose events are timed to Redis visibility */
  latencySample: number;
  /** after a latency phase, how long the backlog may take to drain before the run fails */
  drainTimeoutMs: number;
  httpBatches: number[];
  httpSeconds: number;
  httpConnections: number;
  /** offered loads of the gate phase, authorizations/s */
  gateRates: number[];
  gateSeconds: number;
  /** accounts seeded for the gate phase only (after the main workload's) */
  gateAccounts: number;
  /** autocannon connections per gate rate; default rate / 100 (2 to 64) */
  gateConnections: number | undefined;
  /** false: granted holds are left to expire (the gate alone, without captures and releases flowing) */
  gateSettle: boolean;
  /** postpaid accounts the invoicer phase closes a month for */
  invoiceAccounts: number;
  skip: Set<Phase>;
  /** run the rater, the sink and ingest under --cpu-prof; the profiles land next to the results */
  profile: boolean;
  /** keep the database, topics, Redis keys and chDB data for inspection */
  keep: boolean;
  /** results file; default bench/results/<timestamp>.json */
  out: string | undefined;
  /** extra env for the rater process, e.g. RATER_CONCURRENCY=8 */
  raterEnv: Record<string, string>;
  /** run rater/src/main.ts of this checkout instead of the repo's (e.g. a scratch copy with a fix) */
  raterRoot: string | undefined;
  /** hard limit for the whole e2e phase */
  e2eTimeoutMs: number;
}

const HELP = `npm run bench -- [flags]

  --quick                small run (~1-2 min): 20k events, 500 accounts, short phases
  --events N             main workload size            (full 1000000, quick 20000)
  --accounts N           accounts (Zipf-distributed)   (full 10000, quick 500)
  --dup F                duplicate (re-sent) fraction  (0.01)
  --partitions N         usage.events partitions       (12)
  --seed N               workload seed                 (42)
  --naive-events N       naive baseline sample         (full 20000, quick 3000)
  --naive-conns N        naive baseline connections    (8)
  --latency-rates A,B    offered loads, events/s       (full 5000,10000,20000, quick 1000,3000)
  --latency-seconds S    per latency phase             (full 25, quick 4)
  --latency-sample N     accounts timed to Redis       (full 100, quick 40)
  --http-batches A,B     events per HTTP request       (100,1000)
  --http-seconds S       per HTTP phase                (full 15, quick 3)
  --http-conns N         autocannon connections        (full 16, quick 4)
  --gate-rates A,B       authorizations/s offered      (full 250,500,1000,2000,5000; quick 300)
  --gate-seconds S       per gate rate                 (full 10, quick 2)
  --gate-accounts N      accounts behind the gate      (full 1000, quick 40)
  --gate-conns N         autocannon connections        (default rate/100, 2 to 64)
  --gate-no-settle       leave granted holds to expire: the gate alone, no captures or
                         releases flowing (not the issue's condition; for comparison)
  --invoice-accounts N   postpaid accounts invoiced    (full 10000, quick 200)
  --skip a,b             skip phases: ${PHASES.filter((p) => p !== 'e2e').join(', ')}
  --rater-env K=V,...    extra rater env (e.g. RATER_CONCURRENCY=8)
  --rater-root DIR       run DIR/rater/src/main.ts instead of the repo's rater (A/B a fix;
                         env BENCH_RATER_ROOT does the same)
  --profile              run the rater, sink and ingest with --cpu-prof (and summarize the profiles)
  --keep                 keep database, topics, Redis keys and chDB data
  --out FILE             results JSON (default bench/results/<timestamp>.json)
`;

export function parseOptions(argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      events: { type: 'string' },
      accounts: { type: 'string' },
      dup: { type: 'string' },
      partitions: { type: 'string' },
      seed: { type: 'string' },
      'naive-events': { type: 'string' },
      'naive-conns': { type: 'string' },
      'latency-rates': { type: 'string' },
      'latency-seconds': { type: 'string' },
      'latency-sample': { type: 'string' },
      'http-batches': { type: 'string' },
      'http-seconds': { type: 'string' },
      'http-conns': { type: 'string' },
      'gate-rates': { type: 'string' },
      'gate-seconds': { type: 'string' },
      'gate-accounts': { type: 'string' },
      'gate-conns': { type: 'string' },
      'gate-no-settle': { type: 'boolean', default: false },
      'invoice-accounts': { type: 'string' },
      skip: { type: 'string' },
      'rater-env': { type: 'string' },
      'rater-root': { type: 'string' },
      profile: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    process.exit(0);
  }
  const quick = values.quick === true;
  const int = (name: string, v: string | undefined, dflt: number, min = 1): number => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got "${v}"`);
    return n;
  };
  const list = (name: string, v: string | undefined, dflt: number[]): number[] =>
    v === undefined ? dflt : v.split(',').filter(Boolean).map((x) => int(name, x, 0));
  const dup = values.dup === undefined ? 0.01 : Number(values.dup);
  if (!(dup >= 0 && dup < 1)) throw new Error(`--dup must be in [0, 1), got "${values.dup}"`);
  const skip = new Set<Phase>();
  for (const s of (values.skip ?? '').split(',').filter(Boolean)) {
    if (!(PHASES as readonly string[]).includes(s) || s === 'e2e') throw new Error(`--skip: unknown phase "${s}" (${PHASES.slice(1).join(', ')})`);
    skip.add(s as Phase);
  }
  const raterEnv: Record<string, string> = {};
  for (const kv of (values['rater-env'] ?? '').split(',').filter(Boolean)) {
    const i = kv.indexOf('=');
    if (i <= 0) throw new Error(`--rater-env: expected K=V, got "${kv}"`);
    raterEnv[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const latencySeconds = int('latency-seconds', values['latency-seconds'], quick ? 4 : 25);
  return {
    mode: quick ? 'quick' : 'full',
    events: int('events', values.events, quick ? 20_000 : 1_000_000),
    accounts: int('accounts', values.accounts, quick ? 500 : 10_000),
    duplicateFraction: dup,
    partitions: int('partitions', values.partitions, 12),
    seed: int('seed', values.seed, 42, 0),
    naiveEvents: int('naive-events', values['naive-events'], quick ? 3_000 : 20_000),
    naiveConnections: int('naive-conns', values['naive-conns'], 8),
    latencyRates: list('latency-rates', values['latency-rates'], quick ? [1_000, 3_000] : [5_000, 10_000, 20_000]),
    latencySeconds,
    latencySample: int('latency-sample', values['latency-sample'], quick ? 40 : 100),
    drainTimeoutMs: quick ? 60_000 : 300_000,
    httpBatches: list('http-batches', values['http-batches'], [100, 1000]),
    httpSeconds: int('http-seconds', values['http-seconds'], quick ? 3 : 15),
    httpConnections: int('http-conns', values['http-conns'], quick ? 4 : 16),
    gateRates: list('gate-rates', values['gate-rates'], quick ? [300] : [250, 500, 1_000, 2_000, 5_000]),
    gateSeconds: int('gate-seconds', values['gate-seconds'], quick ? 2 : 10),
    gateAccounts: int('gate-accounts', values['gate-accounts'], quick ? 40 : 1_000),
    gateConnections: values['gate-conns'] === undefined ? undefined : int('gate-conns', values['gate-conns'], 1),
    gateSettle: values['gate-no-settle'] !== true,
    invoiceAccounts: int('invoice-accounts', values['invoice-accounts'], quick ? 200 : 10_000),
    skip,
    profile: values.profile === true,
    keep: values.keep === true,
    out: values.out,
    raterEnv,
    raterRoot: values['rater-root'] ?? (process.env.BENCH_RATER_ROOT || undefined),
    e2eTimeoutMs: quick ? 120_000 : 1_800_000,
  };
}
