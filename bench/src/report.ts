import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { CeilingResult } from './ceiling.js';
import type { GateResult } from './gate.js';
import type { HttpResult } from './http.js';
import type { InvoicerResult } from './invoicer.js';
import type { LatencyResult } from './latency.js';
import type { BatchLogStats } from './logstats.js';
import type { NaiveResult } from './naive.js';
import type { ProfileSummary } from './profile-summary.js';
import type { ProcStats } from './services.js';
import type { CpuBreakdown, PgActivity } from './sampler.js';
import type { Check } from './verify.js';

export interface EndToEnd {
  events: number;
  distinctEvents: number;
  /** first produce -> last event committed in Postgres, in Redis and in ClickHouse */
  seconds: number;
  eventsPerSecond: number;
  /** first produce -> last event committed in Postgres and written to Redis */
  pgRedisSeconds: number;
  pgRedisEventsPerSecond: number;
  /** how long ClickHouse trailed Postgres+Redis at the end */
  clickhouseLagMs: number;
  produceSeconds: number;
  produceEventsPerSecond: number;
  raterCpuSeconds: number | null;
  sinkCpuSeconds: number | null;
  raterBatches: BatchLogStats | null;
  sinkWrites: BatchLogStats | null;
  cpu?: CpuBreakdown;
  pgActivity?: PgActivity;
}

export interface BenchResult {
  runId: string;
  startedAt: string;
  finishedAt?: string;
  mode: string;
  options: Record<string, unknown>;
  machine: Record<string, unknown>;
  ceiling?: CeilingResult;
  e2e?: EndToEnd;
  naive?: NaiveResult;
  ratios?: { e2eOverCeiling: number | null; e2eOverNaive: number | null };
  latency: LatencyResult[];
  http: HttpResult[];
  gate?: GateResult;
  invoicer?: InvoicerResult;
  memory: Record<string, ProcStats | null>;
  checks: Check[];
  ok: boolean;
  error?: string;
  profiles?: Record<string, ProfileSummary>;
  artifacts: string;
  cleanupProblems?: string[];
}

export function writeResult(file: string, r: BenchResult): void {
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, JSON.stringify(r, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2) + '\n');
}

const n0 = (v: number | undefined | null) => (v === undefined || v === null || Number.isNaN(v) ? '-' : Math.round(v).toLocaleString('en-US'));
export const n1 = (v: number | undefined | null) => (v === undefined || v === null || Number.isNaN(v) ? '-' : v.toFixed(1));
const mb = (b: number | undefined) => (b === undefined || Number.isNaN(b) ? '-' : `${Math.round(b / 1048576)} MB`);

export function printResult(r: BenchResult): void {
  const o = r.options;
  const line = '-'.repeat(100);
  console.log(`\n${line}\nmeterstream bench ${r.runId} (${r.mode})  ${n0(o.events as number)} events, ${n0(o.accounts as number)} accounts, `
    + `${o.partitions as number} partitions, ${((o.duplicateFraction as number) * 100).toFixed(1)}% re-sent`);
  if (o.raterRoot) console.log(`NOTE: rater from ${String(o.raterRoot)}, not from this repository`);
  console.log(`machine: ${String(r.machine.cpus)} cpus ${String(r.machine.cpuModel)}, ${String(r.machine.memGB)} GB, load at start ${String(r.machine.loadAtStart)}\n${line}`);
  const row = (k: string, v: string, note = '') => console.log(`${k.padEnd(48)}${v.padStart(14)}   ${note}`);
  row('', 'events/s');
  if (r.ceiling) row('1 ceiling: bare kafkajs consumer + JSON.parse', n0(r.ceiling.eventsPerSecond), `${n0(r.ceiling.events)} events in ${n1(r.ceiling.seconds)} s`);
  if (r.e2e) {
    const e = r.e2e;
    row('2 meterstream end to end (PG + Redis + ClickHouse)', n0(e.eventsPerSecond), `${n0(e.events)} events in ${n1(e.seconds)} s from first produce`);
    row('    of which Postgres + Redis done', n0(e.pgRedisEventsPerSecond), `${n1(e.pgRedisSeconds)} s; ClickHouse trailed by ${n0(e.clickhouseLagMs)} ms`);
    row('    producer (harness -> usage.events)', n0(e.produceEventsPerSecond), `${n1(e.produceSeconds)} s`);
    if (e.raterCpuSeconds !== null) {
      row('    rater CPU per event', `${n1((e.raterCpuSeconds * 1e6) / e.events)} us`, `${n1(e.raterCpuSeconds)} CPU-s; sink ${n1(e.sinkCpuSeconds)} CPU-s`);
    }
    if (e.raterBatches) {
      const b = e.raterBatches;
      row('    rater batches', n0(b.batches), `mean ${n0(b.meanItems)} events (max ${n0(b.maxItems)}), ms p50 ${b.msP50} p95 ${b.msP95} max ${b.msMax}`);
    }
    if (e.sinkWrites) {
      const b = e.sinkWrites;
      row('    sink ClickHouse writes', n0(b.batches), `mean ${n0(b.meanItems)} rows (max ${n0(b.maxItems)}), ms p50 ${b.msP50} p95 ${b.msP95} max ${b.msMax}`);
    }
    if (e.cpu) {
      const parts = Object.entries(e.cpu.cpuSeconds).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${n1(v)}`).join(', ');
      console.log(`    CPU during e2e: machine ${Math.round(e.cpu.machineBusy * 100)}% busy of ${e.cpu.cores} cores over ${n1(e.cpu.seconds)} s; CPU-s: ${parts}`);
    }
    if (e.pgActivity) {
      console.log(`    rater's Postgres sessions (pg_stat_activity, ${e.pgActivity.samples} samples, mean ${e.pgActivity.meanActive} non-idle):`);
      for (const st of e.pgActivity.states.slice(0, 6)) console.log(`      ${(st.share * 100).toFixed(0).padStart(3)}%  ${st.what}`);
    }
  }
  if (r.naive) {
    const nv = r.naive;
    row(`3 naive Postgres: 1 tx/event, FOR UPDATE, ${nv.connections} conns`, n0(nv.eventsPerSecond), `${n0(nv.events)} events in ${n1(nv.seconds)} s, exact: ${nv.exact.ok ? 'yes' : 'NO'}`);
  }
  if (r.ratios) {
    console.log(`ratios: meterstream/ceiling = ${r.ratios.e2eOverCeiling?.toFixed(3) ?? '-'}   meterstream/naive = ${r.ratios.e2eOverNaive?.toFixed(2) ?? '-'}`);
  }
  if (r.latency.length > 0) {
    console.log(`\n4 latency, produce -> balance visible in Redis (sampled accounts) | produce -> rated_at in ledger (all events), ms`);
    console.log('  offered    achieved  sampled     p50     p95     p99     max  unseen |  ledger p50     p95     p99');
    for (const l of r.latency) {
      console.log(`  ${n0(l.offeredRate).padStart(7)}/s ${n0(l.achievedRate).padStart(8)}/s ${String(l.redis.count).padStart(8)} ${n0(l.redis.p50).padStart(7)} ${n0(l.redis.p95).padStart(7)} `
        + `${n0(l.redis.p99).padStart(7)} ${n0(l.redis.max).padStart(7)} ${String(l.unseen).padStart(7)} | ${n0(l.ledger.p50).padStart(11)} ${n0(l.ledger.p95).padStart(7)} ${n0(l.ledger.p99).padStart(7)}`);
    }
  }
  if (r.http.length > 0) {
    console.log('\n5 HTTP ingest, POST /v1/events (autocannon, loopback)');
    console.log('  batch  conns   events/s    req/s   p50 ms   p99 ms   non-2xx  errors');
    for (const h of r.http) {
      console.log(`  ${String(h.batch).padStart(5)} ${String(h.connections).padStart(6)} ${n0(h.eventsPerSecond).padStart(10)} ${n0(h.requestsPerSecond).padStart(8)} `
        + `${String(h.latencyMs.p50).padStart(8)} ${String(h.latencyMs.p99).padStart(8)} ${String(h.non2xx).padStart(9)} ${String(h.errors).padStart(7)}`);
    }
  }
  if (r.gate) {
    const g = r.gate;
    console.log(`\n7 spend gate, POST /v1/authorize (autocannon, loopback; ${g.accounts} accounts; ${g.settled ? 'captures and releases flowing, the rater rating' : 'holds left to expire, nothing settled (--gate-no-settle)'})`);
    console.log('  offered    answered  conns     p50     p95     p99     max   holds  refusals');
    for (const x of g.rates) {
      const l = x.latencyMs;
      const refused = Object.entries(x.refusals).map(([k, v]) => `${k} ${v}`).join(', ') || '-';
      console.log(`  ${n0(x.offeredRate).padStart(7)}/s ${n0(x.achievedRate).padStart(8)}/s ${String(x.connections).padStart(6)} ${n1(l.p50).padStart(7)} `
        + `${n1(l.p95).padStart(7)} ${n1(l.p99).padStart(7)} ${n1(l.max).padStart(7)} ${String(x.statusCodes['200'] ?? 0).padStart(7)}  ${refused}`);
    }
    console.log(`  largest rate with p99 <= ${g.p99TargetMs} ms: ${g.largestRateWithinP99 === null ? 'none' : `${n0(g.largestRateWithinP99)}/s`}`);
    console.log(`  holds ${g.holds}: captured ${g.captured} (${g.capturedOverHold} used more than authorized), released ${g.released}; `
      + `failures: capture ${g.captureFailures}, release ${g.releaseFailures}`);
  }
  if (r.invoicer) {
    const v = r.invoicer;
    console.log(`\n8 invoicer, closing ${v.month} for ${n0(v.accounts)} postpaid accounts (2 products each; reconciled ClickHouse vs ledger)`);
    row('  dry run', `${n0(v.dryRunAccountsPerSecond)} acc/s`, `${n1(v.dryRunSeconds)} s`);
    row('  run billing through the Stripe-shaped server', `${n0(v.runAccountsPerSecond)} acc/s`,
      `${n1(v.runSeconds)} s; ${n0(v.invoicesCreated)} invoices, ${n0(v.stripeInvoices)} Stripe invoices, ${n0(v.stripeCalls)} Stripe calls, concurrency ${v.stripeConcurrency}`);
  }
  console.log('\n6 peak RSS (VmHWM)');
  for (const [k, v] of Object.entries(r.memory)) console.log(`  ${k.padEnd(8)} ${mb(v?.peakRss).padStart(8)}   cpu ${n1(v?.cpuSeconds)} s total`);
  console.log('\nexactness');
  for (const c of r.checks) console.log(`  [${c.ok ? 'ok' : 'FAIL'}] ${c.name}: ${c.detail}`);
  if (r.error) console.log(`\nERROR: ${r.error}`);
  console.log(`\n${r.ok ? 'PASS' : 'FAIL'}   results: ${String(r.options.out)}   logs: ${r.artifacts}\n${line}`);
}
