import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import type { Pool } from '@meterstream/platform/postgres';

export interface PartitionLag {
  topic: string;
  group: string;
  partition: number;
  end: bigint;
  /** the group's committed offset in Kafka (-1: none) */
  committed: bigint;
  /** rater only: where the Postgres fence says the partition is rated, published and cached */
  published?: bigint;
}

export interface LagReport {
  partitions: PartitionLag[];
  /** partitions whose group is behind (Kafka's committed offset or, for the rater, Postgres's published offset) */
  behind: PartitionLag[];
}

export interface LagSources {
  admin: Admin;
  pool: Pool;
  topics: { events: string; rated: string };
  raterGroup: string;
  sinkGroup: string;
}

/** Lag as an operator measures it: each partition's end against the group's committed offset. */
export async function measureLag(s: LagSources): Promise<LagReport> {
  const partitions: PartitionLag[] = [];
  const fence = await s.pool.query<{ partition: number; published_offset: bigint }>(
    'SELECT partition, published_offset FROM consumer_offsets WHERE group_id = $1 AND topic = $2',
    [s.raterGroup, s.topics.events],
  );
  const published = new Map(fence.rows.map((r) => [r.partition, r.published_offset]));
  for (const [topic, group] of [[s.topics.events, s.raterGroup], [s.topics.rated, s.sinkGroup]] as const) {
    const ends = await s.admin.fetchTopicOffsets(topic);
    const [committed] = await s.admin.fetchOffsets({ groupId: group, topics: [topic] });
    const at = new Map((committed?.partitions ?? []).map((p) => [p.partition, BigInt(p.offset)]));
    for (const p of ends) {
      partitions.push({
        topic, group, partition: p.partition, end: BigInt(p.high), committed: at.get(p.partition) ?? -1n,
        ...(topic === s.topics.events ? { published: published.get(p.partition) ?? 0n } : {}),
      });
    }
  }
  // An empty partition has nothing to commit; any other must be committed (and published) to its end.
  const behind = partitions.filter((p) => p.end > 0n && (p.committed < p.end || (p.published !== undefined && p.published < p.end)));
  return { partitions, behind };
}

export const describeLag = (p: PartitionLag): string =>
  `${p.group} ${p.topic}[${p.partition}] end ${p.end} committed ${p.committed}${p.published === undefined ? '' : ` published ${p.published}`}`;

/**
 * Waits until every partition of usage.events is rated (Kafka commit and Postgres fence at the end)
 * and every partition of usage.rated is committed by the sink, twice in a row a second apart (the
 * rater may still be re-publishing). Returns the last measurement, caught up or not.
 */
export async function waitQuiescent(s: LagSources, timeoutMs: number, now: () => number = Date.now): Promise<LagReport & { waitedMs: number }> {
  const started = now();
  let settled = 0;
  for (;;) {
    let report: LagReport;
    try {
      report = await measureLag(s);
    } catch (e) {
      // the broker may still be electing leaders after its last restart
      if (now() - started > timeoutMs) throw new Error(`cannot measure the lag: ${(e as Error).message}`);
      await sleep(1_000);
      continue;
    }
    settled = report.behind.length === 0 ? settled + 1 : 0;
    const waitedMs = now() - started;
    if (settled >= 2 || waitedMs > timeoutMs) return { ...report, waitedMs };
    await sleep(1_000);
  }
}
