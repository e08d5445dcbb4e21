import { systemClock } from '@meterstream/platform/clock';
import { isDeepStrictEqual } from 'node:util';
import type { Kafka } from 'kafkajs';
import type { Redis } from 'ioredis';
import { formatMicros, priceMicros, toMicros } from '@meterstream/schemas';
import type { ClickHouseClient } from '@meterstream/platform/clickhouse';
import { cachedPart, loadAccountStates } from '@meterstream/ledger/account-state';
import type { BalanceCache } from '@meterstream/ledger/balance-cache';
import type { Pool } from '@meterstream/platform/postgres';
import { accountIndex, grantPlan } from './setup.js';
import { rng, PRICE_LIST } from './workload.js';
import type { Offsets } from './progress.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

interface Expected {
  count: bigint;
  charged: bigint;
  gift: bigint; // remaining
  purchased: bigint; // remaining
  postpaid: bigint;
  overdraft: bigint;
}

export interface Replay {
  messages: number;
  distinct: number;
  charged: bigint;
  perAccount: Map<string, Expected>;
  unknown: number;
}

const PRICES = new Map(Object.entries(PRICE_LIST).map(([p, v]) => [p, { unitPrice: toMicros(v.unit_price), per: BigInt(v.per) }]));

/**
 * The independent recomputation: every message on usage.events, read back in partition order (the
 * order the rater sees each account's events), priced with priceMicros from the price list (not the
 * database), charged once per (account, event id), burned against the grants each account was given
 * (gift before purchased; a gift only while unexpired at the event's own time), the rest postpaid or
 * prepaid overdraft. An event capturing a hold (the gate phase) is charged at most the hold's
 * amount, as the gate answered it (`holds`); a hold id the gate never granted counts as unknown.
 */
export async function replayTopic(
  kafka: Kafka, topic: string, groupId: string, ends: Offsets, giftMidMs: number, giftLateMs: number, timeoutMs: number,
  holds: ReadonlyMap<string, bigint> = new Map(),
): Promise<Replay> {
  const perAccount = new Map<string, Expected>();
  const seen = new Set<string>();
  let messages = 0;
  let unknown = 0;
  let charged = 0n;
  const apply = (raw: Buffer) => {
    messages++;
    const e = JSON.parse(raw.toString('utf8')) as {
      id: string; account_id: string; product: string; quantity: string | number; timestamp: string; hold_id?: string;
    };
    const key = `${e.account_id}\u0000${e.id}`;
    if (seen.has(key)) return;
    const i = accountIndex(e.account_id);
    const price = PRICES.get(e.product);
    const hold = e.hold_id === undefined ? undefined : holds.get(e.hold_id);
    if (i < 0 || !price || (e.hold_id !== undefined && hold === undefined)) {
      unknown++;
      return;
    }
    seen.add(key);
    const plan = grantPlan(i, giftMidMs, giftLateMs);
    let x = perAccount.get(e.account_id);
    if (!x) {
      x = { count: 0n, charged: 0n, gift: plan.gift.amount, purchased: plan.purchased.amount, postpaid: 0n, overdraft: 0n };
      perAccount.set(e.account_id, x);
    }
    const priced = priceMicros(toMicros(e.quantity), price.unitPrice, price.per);
    const amount = hold !== undefined && hold < priced ? hold : priced;
    x.count++;
    x.charged += amount;
    charged += amount;
    let left = amount;
    if (x.gift > 0n && plan.gift.expiresAt > Date.parse(e.timestamp)) {
      const t = x.gift < left ? x.gift : left;
      x.gift -= t;
      left -= t;
    }
    const t = x.purchased < left ? x.purchased : left;
    x.purchased -= t;
    left -= t;
    if (plan.billingMode === 'postpaid') x.postpaid += left;
    else x.overdraft += left;
  };

  const consumer = kafka.consumer({ groupId, maxBytesPerPartition: 4 * 1024 * 1024, maxBytes: 16 * 1024 * 1024 });
  const pending = new Set([...ends].filter(([, high]) => high > 0n).map(([p]) => p));
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  let timer: NodeJS.Timeout | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`replaying ${topic} timed out after ${messages} messages`)), timeoutMs);
      if (pending.size === 0) resolve();
      void consumer.run({
        eachBatch: async ({ batch }) => {
          const high = ends.get(batch.partition) ?? 0n;
          for (const m of batch.messages) {
            if (BigInt(m.offset) >= high) break;
            apply(m.value!);
          }
          if (BigInt(batch.lastOffset()) + 1n >= high) pending.delete(batch.partition);
          if (pending.size === 0) resolve();
        },
      }).catch(reject);
    });
  } finally {
    clearTimeout(timer);
    await consumer.disconnect();
  }
  return { messages, distinct: seen.size, charged, perAccount, unknown };
}

const fmt = (v: bigint) => formatMicros(v);

function sample<T>(items: T[], n: number, seed: number): T[] {
  const random = rng(seed);
  const copy = [...items];
  for (let i = copy.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [copy[i], copy[j]] = [copy[j]!, copy[i]!];
  }
  return copy.slice(0, n);
}

/** The Postgres ledger, the grants and the accounts against the replay, account by account. */
export async function checkPostgres(pool: Pool, replay: Replay): Promise<{ checks: Check[]; totals: { rows: bigint; amount: bigint } }> {
  const checks: Check[] = [];
  const ledger = await pool.query<{ id: string; n: bigint; amount: bigint; from_grants: bigint; postpaid: bigint; overdraft: bigint; bad: bigint }>(
    `SELECT account_id AS id, count(*) AS n, sum(amount)::bigint AS amount, sum(from_grants)::bigint AS from_grants,
            sum(postpaid)::bigint AS postpaid, sum(overdraft)::bigint AS overdraft,
            count(*) FILTER (WHERE amount <> from_grants + postpaid + overdraft) AS bad
       FROM usage_ledger GROUP BY account_id`,
  );
  const grants = await pool.query<{ id: string; account_id: string; kind: string; amount: bigint; remaining: bigint }>(
    'SELECT id, account_id, kind, amount, remaining FROM grants',
  );
  const accounts = await pool.query<{ id: string; overdraft: bigint; ledger_seq: bigint }>('SELECT id, overdraft, ledger_seq FROM accounts');
  const postpaid = await pool.query<{ id: string; amount: bigint }>('SELECT account_id AS id, sum(amount)::bigint AS amount FROM postpaid_usage GROUP BY 1');

  const led = new Map(ledger.rows.map((r) => [r.id, r]));
  const remaining = new Map(grants.rows.map((g) => [g.id, g.remaining]));
  const burned = new Map<string, bigint>();
  for (const g of grants.rows) burned.set(g.account_id, (burned.get(g.account_id) ?? 0n) + g.amount - g.remaining);
  const pp = new Map(postpaid.rows.map((r) => [r.id, r.amount]));
  const acc = new Map(accounts.rows.map((r) => [r.id, r]));

  let rows = 0n;
  let amount = 0n;
  for (const r of ledger.rows) {
    rows += r.n;
    amount += r.amount;
  }
  checks.push({
    name: 'ledger: every distinct event charged exactly once (count)',
    ok: rows === BigInt(replay.distinct),
    detail: `ledger rows ${rows}, distinct events on usage.events ${replay.distinct} (${replay.messages} messages)`,
  });
  checks.push({
    name: 'ledger: sum of amounts = independent recomputation (priceMicros)',
    ok: amount === replay.charged,
    detail: `ledger ${fmt(amount)}, recomputed ${fmt(replay.charged)}`,
  });
  checks.push({ name: 'no event of an unknown account or product', ok: replay.unknown === 0, detail: `${replay.unknown} such events` });

  const mismatches: string[] = [];
  let coveredTotal = 0n;
  let burnedTotal = 0n;
  let postpaidTotal = 0n;
  let overdraftTotal = 0n;
  let badRows = 0n;
  const ids = new Set([...acc.keys()]);
  for (const id of ids) {
    const want = replay.perAccount.get(id);
    const l = led.get(id);
    const i = accountIndex(id);
    const plan = grantPlan(i, 0, 0);
    const got = {
      count: l?.n ?? 0n,
      charged: l?.amount ?? 0n,
      gift: remaining.get(plan.gift.id),
      purchased: remaining.get(plan.purchased.id),
      postpaid: pp.get(id) ?? 0n,
      overdraft: acc.get(id)!.overdraft,
      seq: acc.get(id)!.ledger_seq,
    };
    badRows += l?.bad ?? 0n;
    const b = burned.get(id) ?? 0n;
    burnedTotal += b;
    postpaidTotal += got.postpaid;
    overdraftTotal += got.overdraft;
    coveredTotal += b + got.postpaid + got.overdraft;
    if (b + got.postpaid + got.overdraft !== got.charged) mismatches.push(`${id}: burned ${fmt(b)} + postpaid ${fmt(got.postpaid)} + overdraft ${fmt(got.overdraft)} != charged ${fmt(got.charged)}`);
    if (!want) {
      if (got.count !== 0n) mismatches.push(`${id}: ${got.count} ledger rows, no events expected`);
      continue;
    }
    const expect = {
      count: want.count, charged: want.charged, gift: want.gift, purchased: want.purchased,
      postpaid: want.postpaid, overdraft: want.overdraft, seq: 2n + want.count,
    };
    if (!isDeepStrictEqual(got, expect)) {
      mismatches.push(`${id}: got ${JSON.stringify(got, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))} want ${JSON.stringify(expect, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    }
  }
  checks.push({
    name: 'grants burned + postpaid + overdraft = priced usage',
    ok: coveredTotal === amount && coveredTotal === replay.charged,
    detail: `burned ${fmt(burnedTotal)} + postpaid ${fmt(postpaidTotal)} + overdraft ${fmt(overdraftTotal)} = ${fmt(coveredTotal)}; priced ${fmt(replay.charged)}`,
  });
  checks.push({ name: 'ledger rows: amount = from_grants + postpaid + overdraft', ok: badRows === 0n, detail: `${badRows} rows violate it` });
  checks.push({
    name: 'per account: count, charge, each grant, postpaid, overdraft, ledger_seq = replay',
    ok: mismatches.length === 0,
    detail: mismatches.length === 0 ? `${ids.size} accounts exact` : `${mismatches.length} accounts differ, e.g. ${mismatches.slice(0, 3).join(' | ')}`,
  });
  return { checks, totals: { rows, amount } };
}

export function redisSample(replay: Replay, n: number, seed: number): string[] {
  return sample([...replay.perAccount.keys()].sort(), n, seed);
}

/** Redis's cached state of a sample of accounts with usage, against Postgres. */
export async function checkRedis(pool: Pool, cache: BalanceCache, ids: string[]): Promise<Check> {
  const [cached, truth] = await Promise.all([cache.readMany(ids), loadAccountStates(pool, ids, { forUpdate: false, nowMs: systemClock.now() })]);
  const bad = ids.filter((id) => !cached.has(id) || !truth.has(id) || !isDeepStrictEqual(cached.get(id), cachedPart(truth.get(id)!)));
  return {
    name: 'Redis states = Postgres (sample of accounts with usage)',
    ok: bad.length === 0 && ids.length > 0,
    detail: bad.length === 0 ? `${ids.length} accounts identical` : `${bad.length}/${ids.length} differ or are missing, e.g. ${bad.slice(0, 5).join(', ')}`,
  };
}

/**
 * The checker checks itself: after the real verification, one micro-unit is added to one ledger row,
 * one cached state in Redis is altered and ClickHouse is handed a total one row off; each of these
 * must turn its check red. (Runs last: the run's data is thrown away afterwards.)
 */
export async function selfCheck(
  pool: Pool, cache: BalanceCache, redis: Redis, replay: Replay, redisIds: string[], ch: ClickHouseTotals, pgTotals: { rows: bigint; amount: bigint },
): Promise<Check> {
  const caught: string[] = [];
  const missed: string[] = [];
  const expectRed = (what: string, checks: Check[]) => (checks.some((c) => !c.ok) ? caught : missed).push(what);

  const key = cache.key(redisIds[0]!);
  const wire = JSON.parse((await redis.hget(key, 'state'))!) as { o: string };
  await redis.hset(key, 'state', JSON.stringify({ ...wire, o: String(BigInt(wire.o) + 1n) }));
  expectRed('altered Redis state', [await checkRedis(pool, cache, redisIds)]);

  await pool.query(
    `UPDATE usage_ledger SET amount = amount + 1, from_grants = from_grants + 1
      WHERE (account_id, event_id) = (SELECT account_id, event_id FROM usage_ledger ORDER BY account_id, event_id LIMIT 1)`,
  );
  expectRed('one ledger row 1 micro-unit off', (await checkPostgres(pool, replay)).checks);
  expectRed('ClickHouse missing one row', checkClickHouse({ ...ch, rows: ch.rows - 1n, distinct: ch.distinct - 1n }, pgTotals));
  return {
    name: 'checker self-test: planted errors are caught',
    ok: missed.length === 0,
    detail: missed.length === 0 ? `caught: ${caught.join(', ')}` : `MISSED: ${missed.join(', ')}`,
  };
}

export interface ClickHouseTotals {
  rows: bigint;
  distinct: bigint;
  amount: bigint;
  dailyEvents: bigint;
  dailyAmount: bigint;
}

export async function clickHouseTotals(ch: ClickHouseClient, database: string): Promise<ClickHouseTotals> {
  const one = async (query: string) => (await (await ch.query({ query, format: 'JSONEachRow' })).json<Record<string, string>>())[0]!;
  const r = await one(`SELECT toString(count()) AS rows, toString(uniqExact(account_id, event_id)) AS distinct,
                              toString(sum(amount)) AS amount FROM ${database}.rated_events`);
  const d = await one(`SELECT toString(sum(events)) AS events, toString(sum(amount)) AS amount FROM ${database}.usage_daily`);
  return { rows: BigInt(r.rows!), distinct: BigInt(r.distinct!), amount: BigInt(r.amount!), dailyEvents: BigInt(d.events!), dailyAmount: BigInt(d.amount!) };
}

export function checkClickHouse(t: ClickHouseTotals, pgTotals: { rows: bigint; amount: bigint }): Check[] {
  return [
    {
      name: 'ClickHouse rated_events: count and sum(amount) = Postgres ledger, no duplicate rows',
      ok: t.rows === pgTotals.rows && t.distinct === t.rows && t.amount === pgTotals.amount,
      detail: `ClickHouse ${t.rows} rows (${t.distinct} distinct) sum ${fmt(t.amount)}; Postgres ${pgTotals.rows} rows sum ${fmt(pgTotals.amount)}`,
    },
    {
      name: 'ClickHouse usage_daily view totals = Postgres ledger',
      ok: t.dailyEvents === pgTotals.rows && t.dailyAmount === pgTotals.amount,
      detail: `usage_daily ${t.dailyEvents} events sum ${fmt(t.dailyAmount)}`,
    },
  ];
}
