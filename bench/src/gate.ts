import { randomBytes } from 'node:crypto';
import autocannon, { type Result as AutocannonResult } from 'autocannon';
import { formatMicros, toMicros } from '@meterstream/schemas';
import type { Redis } from 'ioredis';
import type { BalanceCache } from '@meterstream/ledger/balance-cache';
import type { Pool } from '@meterstream/platform/postgres';
import { percentiles, type Percentiles } from './latency.js';
import { n1 } from './report.js';
import { now } from './produce.js';
import type { Check } from './verify.js';
import { rng } from './workload.js';

/** What a gated call may use at most, per product of PRICE_LIST: holds of a few cents, as API calls are. */
const MAX_QUANTITY: Record<string, string> = { voice: '60', chat: '4000', image: '2', text: '800', call: '1' };
const PRODUCTS = Object.keys(MAX_QUANTITY);

/** Of the holds the gate grants, this share is released (the call failed); the rest is captured. */
const RELEASE_SHARE = 0.2;

export interface GateRateResult {
  offeredRate: number;
  seconds: number;
  connections: number;
  /** answered authorizations per second (any status) */
  achievedRate: number;
  requests: number;
  /** per request, ms, measured by autocannon from write to the last byte of the answer */
  latencyMs: Percentiles;
  statusCodes: Record<string, number>;
  /** refusals by code (402 PAYMENT_REQUIRED, MONTHLY_LIMIT_REACHED, ...) */
  refusals: Record<string, number>;
  errors: number;
  timeouts: number;
}

export interface GateResult {
  accounts: number;
  /** whether granted holds were captured and released while it ran (false: --gate-no-settle) */
  settled: boolean;
  rates: GateRateResult[];
  /** the largest offered rate whose p99 stayed within the target and that was achieved (>= 95%) */
  largestRateWithinP99: number | null;
  p99TargetMs: number;
  holds: number;
  captured: number;
  released: number;
  /** captures whose quantity was above the authorized maximum: charged the hold */
  capturedOverHold: number;
  captureFailures: number;
  releaseFailures: number;
}

/** A hold the gate granted, and what the bench does with it. */
interface Granted {
  holdId: string;
  accountId: string;
  product: string;
  maxQuantity: bigint;
}

/**
 * Captures and releases flowing while authorizations run: every granted hold is either released
 * (POST /v1/holds/{id}/release) or captured by a usage event carrying its id (POST /v1/events, in
 * batches), with a quantity from 20% to 120% of the authorized maximum, so that some captures
 * are capped at the hold.
 */
class HoldSettler {
  private queue: Granted[] = [];
  private readonly inFlight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private readonly random: () => number;
  captured = 0;
  released = 0;
  overHold = 0;
  captureFailures = 0;
  releaseFailures = 0;

  constructor(private readonly url: string, private readonly adminKey: string, seed: number) {
    this.random = rng(seed);
  }

  start(): void {
    this.timer = setInterval(() => this.flush(), 20);
  }

  add(g: Granted): void {
    this.queue.push(g);
  }

  private flush(): void {
    if (this.queue.length === 0 || this.inFlight.size >= 16) return;
    const batch = this.queue;
    this.queue = [];
    const events: unknown[] = [];
    const releases: string[] = [];
    const ts = new Date(now()).toISOString();
    for (const g of batch) {
      if (this.random() < RELEASE_SHARE) {
        releases.push(g.holdId);
        continue;
      }
      const permille = BigInt(200 + Math.floor(this.random() * 1001));
      const quantity = (g.maxQuantity * permille) / 1000n;
      if (permille > 1000n) this.overHold++;
      events.push({ id: `capture:${g.holdId}`, account_id: g.accountId, product: g.product, quantity: formatMicros(quantity), timestamp: ts, hold_id: g.holdId });
    }
    for (let i = 0; i < events.length; i += 500) this.track(this.capture(events.slice(i, i + 500)));
    for (let i = 0; i < releases.length; i += 50) this.track(this.release(releases.slice(i, i + 50)));
  }

  private track(p: Promise<void>): void {
    this.inFlight.add(p);
    void p.finally(() => this.inFlight.delete(p));
  }

  private headers = () => ({ authorization: `Bearer ${this.adminKey}`, 'content-type': 'application/json' });

  private async capture(events: unknown[]): Promise<void> {
    // Retried with the same event ids until accepted: the rater charges each once.
    for (let attempt = 0; attempt < 5; attempt++) {
      const res = await fetch(`${this.url}/v1/events`, { method: 'POST', headers: this.headers(), body: JSON.stringify(events) }).catch(() => undefined);
      if (res?.status === 202) {
        const body = (await res.json()) as { accepted: string[] };
        this.captured += body.accepted.length;
        this.captureFailures += events.length - body.accepted.length;
        return;
      }
      await res?.body?.cancel();
      await new Promise((r) => setTimeout(r, 200));
    }
    this.captureFailures += events.length;
  }

  private async release(ids: string[]): Promise<void> {
    await Promise.all(ids.map(async (id) => {
      const res = await fetch(`${this.url}/v1/holds/${id}/release`, { method: 'POST', headers: { authorization: `Bearer ${this.adminKey}` } }).catch(() => undefined);
      await res?.body?.cancel();
      if (res?.status === 200) this.released++;
      else this.releaseFailures++;
    }));
  }

  /** Settles everything granted so far, then stops. */
  async drain(): Promise<void> {
    while (this.queue.length > 0 || this.inFlight.size > 0) {
      this.flush();
      await Promise.all([...this.inFlight]);
    }
    clearInterval(this.timer);
  }
}

/** One offered rate: autocannon paced at `rate` requests/s overall, every request a fresh Idempotency-Key. */
async function authorizeAt(o: {
  url: string; adminKey: string; accounts: readonly string[]; rate: number; seconds: number; connections: number;
  random: () => number; settler: HoldSettler; settle: boolean; holds: Map<string, bigint>;
}): Promise<GateRateResult> {
  const refusals: Record<string, number> = {};
  const durations: number[] = [];
  const pending = new Map<string, Granted>();
  const instance = autocannon({
    url: `${o.url}/v1/authorize`,
    connections: o.connections,
    duration: o.seconds,
    overallRate: o.rate,
    pacedRate: true,
    timeout: 10,
    method: 'POST',
    headers: { authorization: `Bearer ${o.adminKey}`, 'content-type': 'application/json' },
    requests: [{
      setupRequest: (req, context) => {
        const accountId = o.accounts[Math.floor(o.random() * o.accounts.length)]!;
        const product = PRODUCTS[Math.floor(o.random() * PRODUCTS.length)]!;
        const key = randomBytes(12).toString('hex');
        context.key = key;
        pending.set(key, { holdId: '', accountId, product, maxQuantity: toMicros(MAX_QUANTITY[product]!) });
        return {
          ...req,
          headers: { ...req.headers, 'idempotency-key': key },
          body: JSON.stringify({ account_id: accountId, product, max_quantity: MAX_QUANTITY[product] }),
        };
      },
      onResponse: (status, body, context) => {
        const asked = pending.get(context.key as string);
        pending.delete(context.key as string);
        if (status === 200 && asked) {
          const hold = JSON.parse(body) as { hold_id: string; amount: string };
          o.holds.set(hold.hold_id, toMicros(hold.amount));
          if (o.settle) o.settler.add({ ...asked, holdId: hold.hold_id });
        } else if (status >= 400) {
          const code = (JSON.parse(body) as { error?: { code?: string } }).error?.code ?? String(status);
          refusals[code] = (refusals[code] ?? 0) + 1;
        }
      },
    }],
  }, () => undefined);
  instance.on('response', (_client, _status, _bytes, responseTime) => durations.push(responseTime));
  const result = await new Promise<AutocannonResult>((resolve, reject) => {
    instance.on('done', resolve);
    instance.on('error', reject);
  });
  return {
    offeredRate: o.rate,
    seconds: result.duration,
    connections: o.connections,
    achievedRate: durations.length / result.duration,
    requests: durations.length,
    latencyMs: percentiles(durations),
    statusCodes: Object.fromEntries(Object.entries(result.statusCodeStats).map(([k, v]) => [k, v.count])),
    refusals,
    errors: result.errors,
    timeouts: result.timeouts,
  };
}

/**
 * One authorization and its release per account, before anything is timed: the gate loads an
 * account from Postgres on its first call (its holds, its limits), as it does once per account
 * after a start or a Redis flush; the phase measures the gate as it runs, not its warm-up.
 */
async function warmUp(url: string, adminKey: string, accounts: readonly string[]): Promise<void> {
  const headers = { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' };
  let next = 0;
  const worker = async () => {
    while (next < accounts.length) {
      const accountId = accounts[next++]!;
      let res: Response;
      // A 503 (the gate could not decide yet, on a loaded machine) is asked again with the same key.
      for (let attempt = 1; ; attempt++) {
        res = await fetch(`${url}/v1/authorize`, {
          method: 'POST', headers: { ...headers, 'idempotency-key': `warm-up-${accountId}` },
          body: JSON.stringify({ account_id: accountId, product: 'call', max_quantity: '1' }),
        });
        if (res.status !== 503 || attempt === 5) break;
        await res.body?.cancel();
        await new Promise((r) => setTimeout(r, 200));
      }
      const body = (await res.json()) as { hold_id?: string };
      if (res.status !== 200 || !body.hold_id) throw new Error(`gate warm-up: ${accountId} answered ${res.status} ${JSON.stringify(body)}`);
      const released = await fetch(`${url}/v1/holds/${body.hold_id}/release`, { method: 'POST', headers: { authorization: headers.authorization } });
      await released.body?.cancel();
      if (released.status !== 200) throw new Error(`gate warm-up: releasing ${body.hold_id} answered ${released.status}`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

/**
 * The gate phase: autocannon against POST /v1/authorize at each offered rate in turn, over
 * prepaid and postpaid accounts seeded for it (so accounts run dry and answer 402 while it runs),
 * with the granted holds captured or released meanwhile and the rater rating the captures.
 * `holds` collects every granted hold's amount: the replay charges a capture min(price, hold).
 */
export async function runGate(o: {
  url: string; adminKey: string; accounts: readonly string[]; rates: readonly number[]; seconds: number;
  connections: (rate: number) => number; seed: number; p99TargetMs: number; holds: Map<string, bigint>;
  /** false: granted holds are left to expire (--gate-no-settle) */
  settle: boolean;
  say: (msg: string) => void;
}): Promise<GateResult> {
  const random = rng(o.seed);
  await warmUp(o.url, o.adminKey, o.accounts);
  const settler = new HoldSettler(o.url, o.adminKey, o.seed + 1);
  if (o.settle) settler.start();
  const rates: GateRateResult[] = [];
  try {
    for (const rate of o.rates) {
      const r = await authorizeAt({ ...o, rate, seconds: o.seconds, connections: o.connections(rate), random, settler });
      rates.push(r);
      const l = r.latencyMs;
      o.say(`gate: ${rate}/s offered, ${Math.round(r.achievedRate)}/s answered: p50 ${n1(l.p50)} p95 ${n1(l.p95)} p99 ${n1(l.p99)} max ${n1(l.max)} ms; `
        + `${JSON.stringify(r.statusCodes)} ${JSON.stringify(r.refusals)}`);
    }
  } finally {
    await settler.drain();
  }
  const within = rates.filter((r) => r.latencyMs.p99 <= o.p99TargetMs && r.achievedRate >= 0.95 * r.offeredRate && r.errors === 0);
  return {
    accounts: o.accounts.length,
    settled: o.settle,
    rates,
    largestRateWithinP99: within.length > 0 ? Math.max(...within.map((r) => r.offeredRate)) : null,
    p99TargetMs: o.p99TargetMs,
    holds: o.holds.size,
    captured: settler.captured,
    released: settler.released,
    capturedOverHold: settler.overHold,
    captureFailures: settler.captureFailures,
    releaseFailures: settler.releaseFailures,
  };
}

/**
 * After quiescence (every capture rated, every release answered): the rater, the gate and the
 * balance API agree on what each gated account may spend, to the micro-unit. Per account, from
 * Postgres (the truth): balance = unexpired grants - overdraft, held = open unexpired holds, and
 * spendable = balance - held; against the balance API's balance (and its held and spendable,
 * where it shows them) and the gate's held sum in Redis (where the gate has the account loaded).
 * And no gated prepaid account below zero.
 */
export async function checkGate(
  pool: Pool, cache: BalanceCache, redis: Redis, url: string, adminKey: string, accounts: readonly string[],
): Promise<Check[]> {
  const books = await pool.query<{ id: string; billing_mode: string; overdraft: bigint; credits: bigint; held: bigint; open: bigint }>(
    `SELECT a.id, a.billing_mode, a.overdraft,
            coalesce((SELECT sum(remaining) FROM grants g WHERE g.account_id = a.id AND (g.expires_at IS NULL OR g.expires_at > now())), 0)::bigint AS credits,
            coalesce((SELECT sum(amount) FROM holds h WHERE h.account_id = a.id AND h.status = 'open' AND h.expires_at > now()), 0)::bigint AS held,
            (SELECT count(*) FROM holds h WHERE h.account_id = a.id AND h.status = 'open') AS open
       FROM accounts a WHERE a.id = ANY($1::text[]) ORDER BY a.id`, [accounts]);
  const mismatches: string[] = [];
  const negative: string[] = [];
  let open = 0n;
  let inRedis = 0;
  for (const b of books.rows) {
    open += b.open;
    const balance = b.credits - b.overdraft;
    if (b.billing_mode === 'prepaid' && (b.overdraft > 0n || balance < 0n)) negative.push(`${b.id}: balance ${formatMicros(balance)}`);
    const want = { balance: formatMicros(balance), held: formatMicros(b.held), spendable: formatMicros(balance - b.held) };
    const res = await fetch(`${url}/v1/accounts/${b.id}/balance`, { headers: { authorization: `Bearer ${adminKey}` } });
    const api = (await res.json()) as { balance?: string; held?: string; spendable?: string };
    const redisHeld = await redis.hget(cache.gate.keys(b.id).holds, 'held');
    if (redisHeld !== null) inRedis++;
    const got = {
      balance: api.balance,
      held: api.held ?? want.held,
      spendable: api.spendable ?? want.spendable,
      redisHeld: redisHeld === null ? want.held : formatMicros(BigInt(redisHeld)),
    };
    if (got.balance !== want.balance || got.held !== want.held || got.spendable !== want.spendable || got.redisHeld !== want.held) {
      mismatches.push(`${b.id}: API/Redis ${JSON.stringify(got)}, Postgres ${JSON.stringify(want)}`);
    }
  }
  return [
    {
      name: 'gate: spendable = balance - open holds to the micro-unit (Postgres = balance API = the gate in Redis, gated accounts)',
      ok: mismatches.length === 0 && books.rows.length === accounts.length,
      detail: mismatches.length === 0
        ? `${books.rows.length} accounts exact (${inRedis} with the gate loaded in Redis); ${open} holds still open `
          + '(answers autocannon stopped waiting for when its time was up: they expire by their TTL)'
        : `${mismatches.length}/${books.rows.length} differ, e.g. ${mismatches.slice(0, 3).join(' | ')}`,
    },
    {
      name: 'gate: no gated prepaid account below zero',
      ok: negative.length === 0,
      detail: negative.length === 0
        ? `${books.rows.filter((b) => b.billing_mode === 'prepaid').length} prepaid accounts at or above zero`
        : `${negative.length} below zero, e.g. ${negative.slice(0, 3).join(' | ')}`,
    },
  ];
}
