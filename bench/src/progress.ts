import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import type { RunContext } from './context.js';
import { assertAlive, type ServiceProcess } from './services.js';

export type Offsets = Map<number, bigint>;

export async function topicEnds(admin: Admin, topic: string): Promise<Offsets> {
  return new Map((await admin.fetchTopicOffsets(topic)).map((p) => [p.partition, BigInt(p.high)]));
}

export const totalOf = (o: Offsets): bigint => [...o.values()].reduce((a, b) => a + b, 0n);

/** Where the rater's Postgres fence says each partition is fully rated, published and cached. */
export async function raterPublished(ctx: RunContext): Promise<Offsets> {
  const r = await ctx.pool.query<{ partition: number; published_offset: bigint }>(
    'SELECT partition, published_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
    [ctx.raterGroup, ctx.topics.events],
  );
  return new Map(r.rows.map((x) => [x.partition, x.published_offset]));
}

async function groupCommitted(admin: Admin, groupId: string, topic: string): Promise<Offsets> {
  const [t] = await admin.fetchOffsets({ groupId, topics: [topic] });
  return new Map((t?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
}

const reached = (at: Offsets, ends: Offsets) => [...ends].every(([p, high]) => high === 0n || (at.get(p) ?? -1n) >= high);

function behind(at: Offsets, ends: Offsets): string {
  let n = 0n;
  for (const [p, high] of ends) n += high - ((at.get(p) ?? 0n) < 0n ? 0n : (at.get(p) ?? 0n));
  return n.toString();
}

/**
 * Polls until every event up to `ends` of usage.events is committed in Postgres and written to Redis
 * (the rater moves published_offset only after both). Returns the wall time it saw that, epoch ms.
 */
export async function waitRaterDone(
  ctx: RunContext, ends: Offsets, timeoutMs: number, services: ServiceProcess[], pollMs = 100, stallMs = 60_000,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = -1n;
  let movedAt = Date.now();
  for (;;) {
    const published = await raterPublished(ctx);
    if (reached(published, ends)) return Date.now();
    assertAlive(...services);
    const total = totalOf(published);
    if (total !== last) {
      last = total;
      movedAt = Date.now();
    }
    if (Date.now() - movedAt > stallMs) {
      throw new Error(`rater stalled: no partition advanced for ${stallMs / 1000} s, ${behind(published, ends)} events behind`
        + ` (published per partition: ${[...published].sort((a, b) => a[0] - b[0]).map(([p, o]) => `p${p}=${o}/${ends.get(p) ?? '?'}`).join(' ')})`);
    }
    if (Date.now() > deadline) throw new Error(`rater still ${behind(published, ends)} events behind after ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}

/**
 * Polls until the sink group has committed the whole of usage.rated, as it stands once the rater is
 * done; the sink commits only after its ClickHouse insert returned, so everything is visible there.
 */
export async function waitSinkDone(ctx: RunContext, timeoutMs: number, services: ServiceProcess[], pollMs = 100): Promise<number> {
  const ends = await topicEnds(ctx.admin, ctx.topics.rated);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const committed = await groupCommitted(ctx.admin, ctx.sinkGroup, ctx.topics.rated);
    if (reached(committed, ends)) return Date.now();
    assertAlive(...services);
    if (Date.now() > deadline) throw new Error(`sink still ${behind(committed, ends)} rated events behind after ${timeoutMs} ms`);
    await sleep(pollMs);
  }
}
