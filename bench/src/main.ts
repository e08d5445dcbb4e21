// `npm run bench` (full) / `npm run bench -- --quick`: see bench/README.md and `--help`.
import { cpus, loadavg, totalmem } from 'node:os';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Message } from 'kafkajs';
import { createClickHouse } from '@meterstream/platform/clickhouse';
import { usageTotals } from '@meterstream/platform/stores/usage-ledger';
import { closeContext, newRunId, openContext, ROOT, type RunContext } from './context.js';
import { runCeiling } from './ceiling.js';
import { checkGate, runGate } from './gate.js';
import { runHttp, startIngest } from './http.js';
import { runInvoicerPhase } from './invoicer.js';
import { runLatencyPhase, sampleAccounts } from './latency.js';
import { batchStats } from './logstats.js';
import { runNaive } from './naive.js';
import { parseOptions } from './options.js';
import { now, openProducer, produceAll, toMessage } from './produce.js';
import { printProfile, summarizeProfile } from './profile-summary.js';
import { topicEnds, totalOf, waitRaterDone, waitSinkDone } from './progress.js';
import { printResult, writeResult, type BenchResult } from './report.js';
import { Sampler } from './sampler.js';
import { procStats, startService, waitGroupStable, type ServiceProcess } from './services.js';
import { seedAccounts, setPrices } from './setup.js';
import {
  checkClickHouse, checkPostgres, checkRedis, clickHouseTotals, redisSample, replayTopic, selfCheck, type Check, type ClickHouseTotals,
} from './verify.js';
import { workload } from './workload.js';

const opts = parseOptions(process.argv.slice(2));
const runId = newRunId();
const stamp = new Date().toISOString().replace(/[:.]/g, '-');
const resultsDir = resolve(ROOT, 'bench/results');
const artifactsDir = join(resultsDir, `${stamp}-${runId}`);
mkdirSync(artifactsDir, { recursive: true });
const outFile = resolve(opts.out ?? join(resultsDir, `${stamp}.json`));
const say = (msg: string) => console.log(`[bench ${new Date().toISOString().slice(11, 19)}] ${msg}`);

const result: BenchResult = {
  runId,
  startedAt: new Date().toISOString(),
  mode: opts.mode,
  options: { ...opts, skip: [...opts.skip], out: outFile },
  machine: {
    cpus: cpus().length, cpuModel: cpus()[0]?.model ?? '?', memGB: Math.round(totalmem() / 2 ** 30),
    loadAtStart: loadavg().map((l) => l.toFixed(2)).join(' '), node: process.version,
  },
  latency: [], http: [], memory: {}, checks: [], ok: false, artifacts: artifactsDir,
};

const services: ServiceProcess[] = [];
let interrupted = false;
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    interrupted = true;
    say(`${sig}: stopping the services, then cleaning up`);
    for (const s of services) if (s.isRunning()) s.child.kill('SIGTERM');
  });
}

const SPAN_MS = 10 * 60_000;
/** The bar for the gate: the largest rate whose p99 stays within it is reported. */
const GATE_P99_TARGET_MS = 10;

async function run(ctx: RunContext): Promise<void> {
  const t = opts;
  const mainStart = Date.now() - SPAN_MS;
  const giftMid = mainStart + SPAN_MS / 2;
  const giftLate = Date.now() + 30 * 86_400_000;

  say(`setup: database ${ctx.databaseName}, topics ${ctx.topicPrefix}*, ${t.accounts} accounts`);
  await setPrices(ctx.pool);
  // The gate phase's accounts follow the main workload's: same grants, no usage before the gate.
  const gated = t.skip.has('gate') ? 0 : t.gateAccounts;
  const seeded = await seedAccounts(ctx.pool, t.accounts + gated, giftMid, giftLate);
  const accounts = seeded.slice(0, t.accounts).map((a) => a.id);
  const gateAccounts = seeded.slice(t.accounts).map((a) => a.id);
  // Postpaid accounts with a card spend up to their monthly limit; the rest stop at their free credits (seed 001).
  await ctx.pool.query(
    "UPDATE accounts SET payment_method = 'bench-card' WHERE billing_mode = 'postpaid' AND id = ANY($1::text[])",
    [gateAccounts.filter((_, i) => i % 2 === 0)]);
  /** Every hold the gate granted: the replay charges its capture min(price, hold). */
  const holds = new Map<string, bigint>();
  const gateChecks: Check[] = [];
  const mainWorkload = () => workload({
    accounts, events: t.events, seed: t.seed, duplicateFraction: t.duplicateFraction, startMs: mainStart, spanMs: SPAN_MS, idPrefix: 'ev',
  });
  const messages: Message[] = [];
  for (const e of mainWorkload()) messages.push(toMessage(e));
  say(`encoded ${messages.length} events`);

  const profDir = (name: string) => ['--cpu-prof', '--cpu-prof-dir', join(artifactsDir, `${name}-profile`)];
  const raterFlags = t.profile ? profDir('rater') : [];
  const raterRoot = t.raterRoot ? resolve(t.raterRoot) : ROOT;
  if (t.raterRoot) say(`NOTE: the rater runs from ${raterRoot}, not from this repository`);
  const rater = startService('rater', 'rater/src/main.ts', { ...ctx.serviceEnv, ...t.raterEnv }, artifactsDir, raterFlags, raterRoot);
  services.push(rater);
  const sink = startService('sink', 'sink/src/main.ts', { ...ctx.serviceEnv, CHDB_PATH: join(ctx.chdbDir, 'sink') }, artifactsDir,
    t.profile ? profDir('sink') : []);
  services.push(sink);
  await Promise.all([waitGroupStable(ctx.admin, ctx.raterGroup, rater), waitGroupStable(ctx.admin, ctx.sinkGroup, sink)]);
  say(`rater (pid ${rater.pid}) and sink (pid ${sink.pid}) hold their partitions`);
  const live = [rater, sink];

  // 2. end to end
  const producer = await openProducer(ctx.kafka);
  try {
    const cpu0 = { rater: procStats(rater.pid)?.cpuSeconds ?? null, sink: procStats(sink.pid)?.cpuSeconds ?? null };
    const sampler = new Sampler(ctx.pool, ctx.databaseName, { rater: rater.pid, sink: sink.pid });
    sampler.start();
    say(`e2e: producing ${messages.length} events while the rater and sink run`);
    const produced = await produceAll(producer, ctx.topics.events, messages);
    const mainEnds = await topicEnds(ctx.admin, ctx.topics.events);
    if (totalOf(mainEnds) !== BigInt(messages.length)) throw new Error(`usage.events holds ${totalOf(mainEnds)} messages, ${messages.length} were produced`);
    say(`e2e: produced in ${((produced.endedAt - produced.startedAt) / 1000).toFixed(1)} s; waiting for Postgres + Redis`);
    const pgDone = await waitRaterDone(ctx, mainEnds, t.e2eTimeoutMs, live);
    say(`e2e: Postgres + Redis complete after ${((pgDone - produced.startedAt) / 1000).toFixed(1)} s; waiting for ClickHouse`);
    const chDone = await waitSinkDone(ctx, t.e2eTimeoutMs, live);
    const sampled = sampler.stop();
    const cpu1 = { rater: procStats(rater.pid)?.cpuSeconds ?? null, sink: procStats(sink.pid)?.cpuSeconds ?? null };
    const seconds = (chDone - produced.startedAt) / 1000;
    const distinct = await usageTotals(ctx.pool);
    const window = { from: produced.startedAt - 1000, to: chDone + 1000 };
    result.e2e = {
      events: messages.length,
      distinctEvents: Number(distinct.events),
      seconds,
      eventsPerSecond: messages.length / seconds,
      pgRedisSeconds: (pgDone - produced.startedAt) / 1000,
      pgRedisEventsPerSecond: messages.length / ((pgDone - produced.startedAt) / 1000),
      clickhouseLagMs: chDone - pgDone,
      produceSeconds: (produced.endedAt - produced.startedAt) / 1000,
      produceEventsPerSecond: messages.length / ((produced.endedAt - produced.startedAt) / 1000),
      raterCpuSeconds: cpu0.rater !== null && cpu1.rater !== null ? cpu1.rater - cpu0.rater : null,
      sinkCpuSeconds: cpu0.sink !== null && cpu1.sink !== null ? cpu1.sink - cpu0.sink : null,
      raterBatches: batchStats(rater.logFile, 'batch rated', 'size', window),
      sinkWrites: batchStats(sink.logFile, 'batch written to ClickHouse', 'messages', window),
      cpu: sampled.cpu,
      pgActivity: sampled.pg,
    };
    say(`e2e: ${Math.round(result.e2e.eventsPerSecond)} events/s end to end (${seconds.toFixed(1)} s)`);

    // 1. ceiling, on the very same topic data
    if (!t.skip.has('ceiling')) {
      const maxBytes = Number(t.raterEnv.RATER_MAX_BYTES_PER_PARTITION ?? 2 * 1024 * 1024);
      const concurrency = Number(t.raterEnv.RATER_CONCURRENCY ?? 4);
      say('ceiling: bare consumer over the same usage.events data');
      result.ceiling = await runCeiling(ctx.kafka, ctx.topics.events, `bench-ceiling-${runId}`, mainEnds,
        { maxBytesPerPartition: maxBytes, partitionsConsumedConcurrently: concurrency }, t.e2eTimeoutMs);
      say(`ceiling: ${Math.round(result.ceiling.eventsPerSecond)} events/s`);
    }

    // 3. naive baseline
    if (!t.skip.has('naive')) {
      const sampleEvents = [];
      for (const e of mainWorkload()) {
        sampleEvents.push(e);
        if (sampleEvents.length >= t.naiveEvents) break;
      }
      say(`naive: ${sampleEvents.length} events, one transaction each, ${t.naiveConnections} connections`);
      result.naive = await runNaive(ctx.pool, sampleEvents, accounts, t.naiveConnections);
      say(`naive: ${Math.round(result.naive.eventsPerSecond)} events/s (exact: ${result.naive.exact.ok})`);
    }
    result.ratios = {
      e2eOverCeiling: result.ceiling ? result.e2e.eventsPerSecond / result.ceiling.eventsPerSecond : null,
      e2eOverNaive: result.naive ? result.e2e.eventsPerSecond / result.naive.eventsPerSecond : null,
    };

    // 4. latency at fixed offered loads
    if (!t.skip.has('latency')) {
      const sample = sampleAccounts(accounts, t.latencySample, t.seed + 7);
      for (const rate of t.latencyRates) {
        const count = rate * t.latencySeconds;
        say(`latency: ${rate} events/s for ${t.latencySeconds} s (${count} events), ${sample.length} accounts timed`);
        const r = await runLatencyPhase({
          producer, topic: ctx.topics.events, redis: ctx.redis, pool: ctx.pool, redisKey: (a) => ctx.cache.key(a),
          events: (startMs) => workload({ accounts, events: count, seed: t.seed + rate, startMs, spanMs: t.latencySeconds * 1000, idPrefix: `lat${rate}` }),
          count, rate, idPrefix: `lat${rate}`, sample, pollMs: 10, drainTimeoutMs: t.drainTimeoutMs,
        });
        result.latency.push(r);
        say(`latency: ${rate}/s offered, ${Math.round(r.achievedRate)}/s achieved: Redis p50 ${Math.round(r.redis.p50)} p95 ${Math.round(r.redis.p95)} p99 ${Math.round(r.redis.p99)} ms`
          + ` (${r.redis.count} timed, ${r.unseen} unseen); ledger p50 ${Math.round(r.ledger.p50)} p99 ${Math.round(r.ledger.p99)} ms`);
        await waitRaterDone(ctx, await topicEnds(ctx.admin, ctx.topics.events), t.drainTimeoutMs, live);
      }
    }
  } finally {
    await producer.disconnect();
  }

  // 5. HTTP ingest and 7. the spend gate, on one ingest process
  if (!t.skip.has('http') || !t.skip.has('gate')) {
    say('http: starting ingest/src/main.ts');
    const ingest = await startIngest(ctx.serviceEnv, artifactsDir, join(ctx.chdbDir, 'ingest'), t.profile ? profDir('ingest') : []);
    services.push(ingest.service);
    let ingestExit: number | string = 0;
    try {
      const httpStart = Date.now() - 60_000;
      for (const batch of t.skip.has('http') ? [] : t.httpBatches) {
        const before = totalOf(await topicEnds(ctx.admin, ctx.topics.events));
        say(`http: batches of ${batch}, ${t.httpConnections} connections, ${t.httpSeconds} s`);
        const events = workload({ accounts, events: 1e9, seed: t.seed + batch, startMs: httpStart, spanMs: 60_000, idPrefix: `http${batch}` });
        const h = await runHttp({ url: ingest.url, adminKey: ingest.adminKey, batch, seconds: t.httpSeconds, connections: t.httpConnections, events });
        const after = totalOf(await topicEnds(ctx.admin, ctx.topics.events));
        result.http.push({ ...h, eventsOnTopic: Number(after - before) });
        say(`http: ${Math.round(h.eventsPerSecond)} events/s (${h.requests} requests, p99 ${h.latencyMs.p99} ms, ${h.non2xx} non-2xx)`);
      }
      if (!t.skip.has('gate')) {
        say(`gate: ${gateAccounts.length} accounts, rates ${t.gateRates.join(', ')}/s for ${t.gateSeconds} s each, `
          + (t.gateSettle ? 'captures and releases flowing' : 'holds left to expire (--gate-no-settle)'));
        result.gate = await runGate({
          url: ingest.url, adminKey: ingest.adminKey, accounts: gateAccounts, rates: t.gateRates, seconds: t.gateSeconds,
          connections: (rate) => t.gateConnections ?? Math.min(64, Math.max(2, Math.ceil(rate / 100))),
          seed: t.seed + 13, p99TargetMs: GATE_P99_TARGET_MS, holds, settle: t.gateSettle, say,
        });
        // Quiescence: every capture rated, every release answered; then the gate's figures against the books.
        await waitRaterDone(ctx, await topicEnds(ctx.admin, ctx.topics.events), t.drainTimeoutMs, live);
        gateChecks.push(...await checkGate(ctx.pool, ctx.cache, ctx.redis, ingest.url, ingest.adminKey, gateAccounts));
      }
    } finally {
      result.memory.ingest = procStats(ingest.service.pid);
      ingestExit = await ingest.service.stop();
    }
    if (ingestExit !== 0) throw new Error(`ingest exited with ${ingestExit}:\n${ingest.service.tail()}`);
  }

  // everything rated, published, cached and in ClickHouse, then the services stop
  const finalEnds = await topicEnds(ctx.admin, ctx.topics.events);
  say('draining: waiting for the rater and the sink to finish everything');
  await waitRaterDone(ctx, finalEnds, t.drainTimeoutMs, live);
  await waitSinkDone(ctx, t.drainTimeoutMs, live);
  result.memory.rater = procStats(rater.pid);
  result.memory.sink = procStats(sink.pid);
  const [raterExit, sinkExit] = await Promise.all([rater.stop(), sink.stop()]);
  if (raterExit !== 0) throw new Error(`rater exited with ${raterExit}:\n${rater.tail()}`);
  if (sinkExit !== 0) throw new Error(`sink exited with ${sinkExit}:\n${sink.tail()}`);

  // exactness
  say(`verifying: replaying ${totalOf(finalEnds)} messages of usage.events`);
  const checks: Check[] = [];
  const replay = await replayTopic(ctx.kafka, ctx.topics.events, `bench-verify-${runId}`, finalEnds, giftMid, giftLate, t.e2eTimeoutMs, holds);
  const pg = await checkPostgres(ctx.pool, replay);
  checks.push(...pg.checks);
  const redisIds = redisSample(replay, t.mode === 'quick' ? 200 : 1000, t.seed + 11);
  checks.push(await checkRedis(ctx.pool, ctx.cache, redisIds));
  const dlq = totalOf(await topicEnds(ctx.admin, ctx.topics.dlq));
  checks.push({ name: 'dead-letter topic empty', ok: dlq === 0n, detail: `${dlq} messages` });
  const ch = await createClickHouse({ url: process.env.CLICKHOUSE_URL, chdbPath: join(ctx.chdbDir, 'sink') });
  let chTotals: ClickHouseTotals;
  try {
    chTotals = await clickHouseTotals(ch, ctx.chDatabase);
  } finally {
    await ch.close();
  }
  checks.push(...checkClickHouse(chTotals, pg.totals));
  checks.push(...gateChecks);
  if (result.naive) checks.push({ name: 'naive baseline exact', ok: result.naive.exact.ok, detail: result.naive.exact.detail });
  checks.push(await selfCheck(ctx.pool, ctx.cache, ctx.redis, replay, redisIds, chTotals, pg.totals));
  // 8. the invoicer, after the main checks: its accounts and rows never enter them
  if (!t.skip.has('invoicer')) {
    const inv = await runInvoicerPhase(ctx, t.invoiceAccounts, say);
    result.invoicer = inv.result;
    checks.push(...inv.checks);
    say(`invoicer: dry run ${Math.round(inv.result.dryRunAccountsPerSecond)} accounts/s, run ${Math.round(inv.result.runAccountsPerSecond)} accounts/s`);
  }
  result.checks = checks;

  if (t.profile) {
    result.profiles = {};
    for (const name of ['rater', 'sink', 'ingest']) {
      // tsx's loader thread writes a small profile of its own: the main thread's is the big one
      const dir = join(artifactsDir, `${name}-profile`);
      if (!existsSync(dir)) continue; // ingest runs only with the http or gate phase
      const prof = readdirSync(dir).filter((f) => f.endsWith('.cpuprofile'))
        .map((f) => ({ f, size: statSync(join(dir, f)).size })).sort((a, b) => b.size - a.size)[0];
      if (prof) result.profiles[name] = summarizeProfile(join(dir, prof.f));
    }
  }
}

let ctx: RunContext | undefined;
try {
  ctx = await openContext(opts, runId, artifactsDir);
  await run(ctx);
  result.ok = result.checks.length > 0 && result.checks.every((c) => c.ok) && !interrupted;
} catch (e) {
  result.error = interrupted ? 'interrupted' : (e as Error).stack ?? String(e);
  result.ok = false;
} finally {
  await Promise.all(services.map((s) => s.stop(10_000)));
  if (ctx) {
    const problems = await closeContext(ctx, opts.keep);
    if (problems.length > 0) result.cleanupProblems = problems;
  }
  result.finishedAt = new Date().toISOString();
  writeResult(outFile, result);
  for (const [name, p] of Object.entries(result.profiles ?? {})) {
    console.log(`\n=== ${name}`);
    printProfile(p);
  }
  printResult(result);
  say(`finished in ${((now() - Date.parse(result.startedAt)) / 1000).toFixed(0)} s`);
}
process.exit(result.ok ? 0 : 1);
