import type { Message, Producer } from 'kafkajs';
import type { Redis } from 'ioredis';
import type { UsageEventInput } from '@meterstream/schemas';
import type { Pool } from '@meterstream/platform/postgres';
import { ratingDelaysMs } from '@meterstream/platform/stores/usage-ledger';
import { now, producePaced, toMessage, type PacedResult } from './produce.js';
import { rng } from './workload.js';

export interface Percentiles {
  count: number;
  p50: number;
  p95: number;
  p99: number;
  max: number;
  mean: number;
}

export function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { count: 0, p50: NaN, p95: NaN, p99: NaN, max: NaN, mean: NaN };
  const s = Float64Array.from(values).sort();
  const at = (q: number) => s[Math.min(s.length - 1, Math.ceil(q * s.length) - 1)]!;
  return { count: s.length, p50: at(0.5), p95: at(0.95), p99: at(0.99), max: s[s.length - 1]!, mean: s.reduce((a, b) => a + b, 0) / s.length };
}

/** Busy accounts and quiet ones: the top ranks (most of the traffic) plus a seeded random spread. */
export function sampleAccounts(accounts: readonly string[], n: number, seed: number): string[] {
  const pick = new Set(accounts.slice(0, Math.min(10, n)));
  const random = rng(seed);
  while (pick.size < Math.min(n, accounts.length)) pick.add(accounts[Math.floor(random() * accounts.length)]!);
  return [...pick];
}

export interface LatencyResult {
  offeredRate: number;
  seconds: number;
  events: number;
  achievedRate: number;
  producer: Pick<PacedResult, 'maxBatch' | 'sends'>;
  sampledAccounts: number;
  /** produce (scheduled send time) -> the account's new ledger_seq seen in Redis; sampled accounts */
  redis: Percentiles;
  /** sampled events never seen in Redis before the drain timeout */
  unseen: number;
  /** produce (scheduled time = event timestamp) -> rated_at in the ledger (the rater's batch start), every event */
  ledger: Percentiles;
  pollIntervalMs: number;
}

interface Tracked {
  key: string;
  base: bigint;
  seen: bigint;
  /** scheduled send times of this account's events, in produce order */
  pending: number[];
  head: number;
}

/**
 * One fixed offered load: an open-loop producer, and a poller that reads only the sampled accounts
 * with events in flight (HGET seq of the hash BalanceCache writes, one pipeline per poll), so the
 * measurement costs a few hundred Redis reads per second whatever the load.
 */
export async function runLatencyPhase(o: {
  producer: Producer; topic: string; redis: Redis; pool: Pool; redisKey: (account: string) => string;
  events: (startMs: number) => Generator<UsageEventInput>; count: number; rate: number; idPrefix: string;
  sample: string[]; pollMs: number; drainTimeoutMs: number; onTick?: () => void;
}): Promise<LatencyResult> {
  const spanMs = (o.count / o.rate) * 1000;
  // The events carry their scheduled send time as timestamp, so they are encoded before the clock
  // starts: with a start far enough ahead that encoding never eats into the schedule.
  let margin = 1000 + o.count * 0.02;
  let startMs: number;
  let events: UsageEventInput[];
  let messages: Message[];
  for (;;) {
    startMs = Math.ceil(now() + margin);
    events = [...o.events(startMs)];
    messages = events.map(toMessage);
    if (now() < startMs - 100) break;
    margin *= 2;
  }
  const scheduledAt = (i: number) => startMs + Math.floor((i / o.count) * spanMs);

  const seqs = await o.pool.query<{ id: string; ledger_seq: bigint }>('SELECT id, ledger_seq FROM accounts WHERE id = ANY($1)', [o.sample]);
  const tracked = new Map<string, Tracked>(seqs.rows.map((r) => [r.id, { key: o.redisKey(r.id), base: r.ledger_seq, seen: r.ledger_seq, pending: [], head: 0 }]));
  const latencies: number[] = [];
  let stop = false;
  let inFlight = 0;

  const poll = async () => {
    while (!stop) {
      const t = now();
      const active = [...tracked.values()].filter((a) => a.head < a.pending.length);
      if (active.length > 0) {
        const pipe = o.redis.pipeline();
        for (const a of active) pipe.hget(a.key, 'seq');
        const res = (await pipe.exec()) ?? [];
        const seenAt = now();
        res.forEach(([err, v], i) => {
          if (err || typeof v !== 'string') return;
          const a = active[i]!;
          const seq = BigInt(v);
          while (a.seen < seq && a.head < a.pending.length) {
            a.seen++;
            latencies.push(seenAt - a.pending[a.head++]!);
            inFlight--;
          }
          a.seen = seq > a.seen ? seq : a.seen;
        });
      }
      o.onTick?.();
      const rest = o.pollMs - (now() - t);
      if (rest > 0) await new Promise((r) => setTimeout(r, rest));
    }
  };
  const poller = poll();
  let paced: PacedResult;
  try {
    paced = await producePaced(o.producer, o.topic, messages, startMs, scheduledAt, (from, to) => {
      for (let i = from; i < to; i++) {
        const a = tracked.get(events[i]!.account_id);
        if (a) {
          a.pending.push(scheduledAt(i));
          inFlight++;
        }
      }
    });
    const deadline = now() + o.drainTimeoutMs;
    while (inFlight > 0 && now() < deadline) await new Promise((r) => setTimeout(r, 50));
  } finally {
    stop = true;
    await poller;
  }

  // Cross-check over every event of the phase, straight from the ledger: rated_at - event time.
  const led = await ratingDelaysMs(o.pool, `${o.idPrefix}-`);
  return {
    offeredRate: o.rate,
    seconds: spanMs / 1000,
    events: o.count,
    achievedRate: o.count / ((paced.endedAt - startMs) / 1000),
    producer: { maxBatch: paced.maxBatch, sends: paced.sends },
    sampledAccounts: tracked.size,
    redis: percentiles(latencies),
    unseen: inFlight,
    ledger: percentiles(led),
    pollIntervalMs: o.pollMs,
  };
}
