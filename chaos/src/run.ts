import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { topicNames } from '@meterstream/schemas';
import { createKafka, ensureTopics } from '@meterstream/platform/kafka';
import { BalanceCache } from '@meterstream/ledger/balance-cache';
import { migratePostgres } from '@meterstream/platform/migrate';
import { createPool } from '@meterstream/platform/postgres';
import { UsageEventProducer } from '@meterstream/ingest';
import { newRunId, ROOT } from '@meterstream/bench/context';
import { freePort, waitHealthy } from '@meterstream/bench/http';
import { waitGroupStable } from '@meterstream/bench/services';
import { seedAccounts, setPrices } from '@meterstream/bench/setup';
import { startPrivateRedis } from '../../tests/support/redis-server.js';
import {
  checkBalanceApi, checkBooks, checkClickHouse, checkExits, checkLag, checkLedgerAgainstSent, checkRedisAll, checkRedisHeld, checkWorkload,
  readDeadLetters, type Check,
} from './checks.js';
import { chaosClickHouse } from './clickhouse.js';
import { FAULT_KINDS, planFaults, runFaults, type FaultRecord } from './faults.js';
import type { ChaosOptions } from './options.js';
import { ownKafka } from './own-kafka.js';
import { waitQuiescent } from './quiescence.js';
import { Supervisor, type Role } from './supervisor.js';
import { ChaosWorkload } from './workload.js';
import { formatSeconds as seconds } from '@meterstream/platform/clock';

export interface ChaosResult {
  ok: boolean;
  seed: number;
  checks: Check[];
  faults: FaultRecord[];
  /** where the run's log, the services' logs and (when kept) the data are */
  dir: string;
  seconds: number;
}

const HARNESS_APP = 'meterstream-chaos-harness';
const RATER_GROUP = 'chaos-rater';
const SINK_GROUP = 'chaos-sink';
const CH_DATABASE = 'chaos';
const DAY_MS = 86_400_000;

// The running run's cleanup steps, for abortChaos (a Ctrl-C must not leave the broker behind: it
// runs in a session of its own and outlives the harness).
let activeTeardown: [string, () => Promise<unknown>][] | undefined;

/** Stops what the current run started (services, ClickHouse, broker, Redis); its data is kept. */
export async function abortChaos(): Promise<void> {
  const steps = activeTeardown ?? [];
  activeTeardown = undefined;
  for (const [what, step] of [...steps].reverse()) {
    if (what !== 'drop the database') await step().catch(() => undefined);
  }
}

/**
 * One run of the fault matrix on a stack of its own (Kafka broker, redis-server, Postgres database,
 * ClickHouse), see chaos/README.md. Prints a line per fault and per check through `say`.
 */
export async function runChaos(opts: ChaosOptions, say: (line: string) => void = console.log, now: () => number = Date.now): Promise<ChaosResult> {
  const runId = newRunId();
  const dir = join(ROOT, 'deploy', '.stack', 'chaos', runId);
  const logDir = join(dir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const began = now();
  // Times are printed from the moment the workload (and the fault plan's clock) starts.
  let startMs: number | undefined;
  const line = (msg: string) => {
    const at = startMs === undefined ? 'setup' : `${now() < startMs ? '' : '+'}${seconds(now() - startMs).replace(' ', '')}`;
    const text = `[chaos ${at}] ${msg}`;
    say(text);
    appendFileSync(join(dir, 'chaos.log'), `${text}\n`);
  };
  const teardown: [string, () => Promise<unknown>][] = [];
  activeTeardown = teardown;
  const checks: Check[] = [];
  let faults: FaultRecord[] = [];
  const chMode = opts.clickhouse;
  if (opts.servicesRoot) line(`services run from ${opts.servicesRoot} (CHAOS_SERVICES_ROOT)`);
  line(`${opts.form} form, seed ${opts.seed}: replay with CHAOS_SEED=${opts.seed} CHAOS_SECONDS=${opts.seconds} CHAOS_RATE=${opts.eventsPerSecond}`
    + `${chMode === 'chdb' ? ' CHAOS_CLICKHOUSE=chdb' : ''} npm run chaos${opts.form === 'quick' ? ' -- --quick' : ''}; files in ${dir}`);
  try {
    // ---- the run's own stack
    const base = new URL(process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres');
    const databaseName = `chaos_${runId}`;
    base.pathname = `/${databaseName}`;
    const databaseUrl = base.toString();
    await migratePostgres(databaseUrl);
    teardown.push(['drop the database', () => dropDatabase(databaseUrl, databaseName)]);
    const harnessUrl = new URL(databaseUrl);
    harnessUrl.searchParams.set('application_name', HARNESS_APP);
    const pool = createPool(harnessUrl.toString(), 4);
    pool.on('error', () => undefined);
    teardown.push(['close the pool', () => pool.end()]);

    const redis = await startPrivateRedis();
    teardown.push(['stop redis-server', () => redis.kill()]);
    const kafka = await ownKafka(join(dir, 'stack'), redis.url, databaseUrl);
    teardown.push(['stop the Kafka broker', () => kafka.stop()]);
    await kafka.start();
    const kafkaClient = createKafka(kafka.brokers, 'chaos-harness');
    const admin = kafkaClient.admin();
    await admin.connect();
    teardown.push(['disconnect the admin', () => admin.disconnect()]);
    await ensureTopics(admin, '', opts.partitions);
    const topics = topicNames('');

    const inherited = Object.fromEntries(Object.entries(process.env).filter((e): e is [string, string] => e[1] !== undefined));
    delete inherited.CLICKHOUSE_URL;
    const ch = await chaosClickHouse(chMode, dir, inherited);
    teardown.push(['stop ClickHouse', () => ch.stop()]);
    line(`stack: Kafka ${kafka.brokers}, Redis ${redis.url}, Postgres database ${databaseName}, ClickHouse: ${ch.describe}`);

    // ---- services
    await setPrices(pool);
    const adminKey = `chaos-admin-${randomBytes(12).toString('hex')}`;
    const ingestPort = await freePort();
    const ingestUrl = `http://127.0.0.1:${ingestPort}`;
    const serviceEnv: Record<string, string> = {
      ...inherited,
      LOG_LEVEL: 'info',
      DATABASE_URL: databaseUrl,
      REDIS_URL: redis.url,
      REDIS_PREFIX: 'chaos:',
      KAFKA_BROKERS: kafka.brokers,
      KAFKA_TOPIC_PREFIX: '',
      KAFKA_EVENTS_PARTITIONS: String(opts.partitions),
      CLICKHOUSE_DATABASE: CH_DATABASE,
      ADMIN_API_KEY: adminKey,
      INGEST_HOST: '127.0.0.1',
      INGEST_PORT: String(ingestPort),
      INGEST_ACK_TIMEOUT_MS: '5000',
      RATER_GROUP_ID: RATER_GROUP,
      SINK_GROUP_ID: SINK_GROUP,
      // A SIGKILLed member holds its partitions until its session expires: the shortest the broker allows.
      RATER_SESSION_TIMEOUT_MS: '6000',
      SINK_SESSION_TIMEOUT_MS: '6000',
      SINK_FETCH_MIN_BYTES: '1',
      SINK_FETCH_MAX_WAIT_MS: '200',
      SINK_RETRY_MAX_MS: '2000',
    };
    const supervisor = new Supervisor((role: Role) => ({ ...serviceEnv, ...ch.env(role) }), logDir, line, now, opts.servicesRoot);
    teardown.push(['stop the services', () => supervisor.stopAll()]);
    const ingest = supervisor.start('ingest');
    const rater = supervisor.start('rater');
    const sink = supervisor.start('sink');
    // The supervisor restarts an ingest that exits: keep waiting for the one that answers.
    await waitHealthy(ingestUrl, { isRunning: () => true, tail: ingest.tail });
    await waitGroupStable(admin, RATER_GROUP, rater);
    await waitGroupStable(admin, SINK_GROUP, sink);

    // ---- workload and faults
    const workloadStart = now() + 1_000;
    startMs = workloadStart;
    const giftMidMs = startMs + opts.seconds * 500; // half the gifts expire halfway through the workload
    const giftLateMs = startMs + 30 * DAY_MS;
    const accounts = (await seedAccounts(pool, opts.accounts, giftMidMs, giftLateMs)).map((a) => a.id);
    const producer = await UsageEventProducer.connect(createKafka(kafka.brokers, 'chaos-producer-client'), { topic: topics.events });
    const plan = planFaults(opts.seed, opts.seconds, opts.form);
    line(`workload: ${opts.seconds} s at ${opts.eventsPerSecond} events/s over ${accounts.length} accounts (every third postpaid, a gift and a purchased grant each); `
      + `${plan.length} faults planned: ${FAULT_KINDS.map((k) => `${k} x${plan.filter((f) => f.kind === k).length}`).join(', ')}`);
    const workload = new ChaosWorkload({
      ingestUrl, adminKey, producer, accounts, seed: opts.seed, idPrefix: `c${runId}`,
      startMs: workloadStart, seconds: opts.seconds, eventsPerSecond: opts.eventsPerSecond, retryForMs: 90_000, now,
    });
    const ledgerRows = async () => (await pool.query<{ n: bigint }>('SELECT count(*) AS n FROM usage_ledger')).rows[0]!.n;
    const targets = {
      supervisor, kafka, redis, pool, databaseName, harnessAppName: HARNESS_APP, ledgerRows,
      failClickHouseInserts: ch.failInserts, ...(ch.secondSinkUnsupported ? { secondSinkUnsupported: ch.secondSinkUnsupported } : {}),
    };
    const [records] = await Promise.all([
      runFaults(plan, targets, workloadStart, line, now),
      workload.run().then(() => line(`workload: all ${workload.generated} events sent; waiting for the last faults to end`)),
    ]);
    faults = records;
    await producer.close(30_000).catch((e: unknown) => line(`producer client close: ${(e as Error).message}`));
    line(`workload outcomes: ${[...workload.outcomes].sort().map(([k, n]) => `${k} x${n}`).join(', ')}`);

    // ---- quiescence
    for (const role of ['ingest', 'rater', 'sink'] as const) if (!supervisor.get(role)) supervisor.start(role);
    await kafka.start(); // a no-op unless the broker died on its own
    const lag = await waitQuiescent({ admin, pool, topics, raterGroup: RATER_GROUP, sinkGroup: SINK_GROUP }, opts.quiesceTimeoutMs, now);
    line(lag.behind.length === 0 ? `quiescent after ${seconds(lag.waitedMs)}: every partition drained` : 'NOT quiescent: checking anyway');
    const messages = (topic: string) => lag.partitions.filter((p) => p.topic === topic).reduce((n, p) => n + p.end, 0n);
    line(`topics: usage.events ${messages(topics.events)} messages (re-sends and retries included), usage.rated ${messages(topics.rated)} `
      + `for ${await ledgerRows()} ledger rows (a rated event is published again after a crash between commit and publish)`);

    // ---- checks, one line each
    const report = (...cs: Check[]) => {
      for (const c of cs) {
        checks.push(c);
        line(`${c.ok ? 'PASS' : 'FAIL'} ${c.name}: ${c.detail}`);
      }
    };
    const attempt = async (name: string, fn: () => Promise<Check[]>) => {
      try {
        report(...(await fn()));
      } catch (e) {
        report({ name, ok: false, detail: `the check itself failed: ${(e as Error).message}` });
      }
    };
    const cache = new BalanceCache(redis.admin, serviceEnv.REDIS_PREFIX!);
    report(checkWorkload(workload.sent));
    await attempt('ledger against the confirmed events', async () =>
      checkLedgerAgainstSent(pool, workload.sent, await readDeadLetters(kafkaClient, topics.dlq)));
    await attempt('books replayed from usage.events', () =>
      checkBooks(kafkaClient, admin, pool, topics.events, `chaos-replay-${runId}`, giftMidMs, giftLateMs));
    await attempt('Redis held states', async () => [await checkRedisHeld(pool, cache, accounts)]);
    await attempt('balance API', async () => [await checkBalanceApi(pool, ingestUrl, adminKey, accounts)]);
    await attempt('Redis after reads', async () => [await checkRedisAll(pool, cache, accounts)]);
    report(checkLag(lag));
    await supervisor.stopAll();
    await attempt('ClickHouse against the ledger', async () => {
      const client = await ch.open();
      try {
        return await checkClickHouse(pool, client, CH_DATABASE);
      } finally {
        await client.close();
      }
    });
    report(checkExits(supervisor.unexpectedExits, workloadStart));
  } catch (e) {
    checks.push({ name: 'the run itself', ok: false, detail: (e as Error).stack ?? String(e) });
    line(`FAIL the run itself: ${(e as Error).stack ?? String(e)}`);
  } finally {
    const injected = FAULT_KINDS.map((k) => {
      const of = faults.filter((f) => f.fault.kind === k);
      const skipped = of.filter((f) => f.skipped).length;
      return `${k} ${of.length - skipped}${skipped ? ` (+${skipped} skipped)` : ''}`;
    });
    line(`faults injected: ${injected.join(', ')}`);
    const failed = checks.filter((c) => !c.ok).length;
    const ok = failed === 0 && checks.length > 0;
    const took = `${seconds(now() - began)} in all`;
    line(ok ? `all ${checks.length} checks passed (${took})` : `${failed} of ${checks.length} checks FAILED (seed ${opts.seed}; ${took})`);
    activeTeardown = undefined;
    const keep = opts.keep || !ok;
    for (const [what, step] of teardown.reverse()) {
      if (keep && what === 'drop the database') continue;
      await step().catch((e: unknown) => line(`cleanup: ${what}: ${(e as Error).message.split('\n')[0]}`));
    }
    if (keep) line(`kept for inspection: ${dir} and the database chaos_${runId}`);
    else rmSync(dir, { recursive: true, force: true });
  }
  const ok = checks.length > 0 && checks.every((c) => c.ok);
  return { ok, seed: opts.seed, checks, faults, dir, seconds: opts.seconds };
}

async function dropDatabase(databaseUrl: string, name: string): Promise<void> {
  const server = new URL(databaseUrl);
  server.pathname = '/postgres';
  const pool = createPool(server.toString(), 1);
  try {
    await pool.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  } finally {
    await pool.end();
  }
}
